// Incremental SSE framing for the soak's clients: bytes in, complete blocks out, each with the raw
// text it came from (the oracle prints the bytes of any frame it objects to).
import { StringDecoder } from "node:string_decoder"

export interface Block {
  readonly raw: string
  readonly event: string | undefined
  readonly id: string | undefined
  readonly data: string | undefined
  readonly retry: number | undefined
  /** Only comment lines (a heartbeat). */
  readonly comment: boolean
}

export const parseBlock = (raw: string): Block => {
  let event: string | undefined
  let id: string | undefined
  let data: string | undefined
  let retry: number | undefined
  let fields = 0
  for (const line of raw.split("\n")) {
    if (line === "" || line.startsWith(":")) continue
    fields++
    const colon = line.indexOf(":")
    const name = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (name === "event") event = value
    else if (name === "id") id = value
    else if (name === "data") data = data === undefined ? value : `${data}\n${value}`
    else if (name === "retry" && /^\d+$/.test(value)) retry = Number(value)
  }
  return { raw, event, id, data, retry, comment: fields === 0 }
}

export class SseParser {
  private readonly decoder = new StringDecoder("utf8")
  private rest = ""

  /** Feeds a chunk; returns every block it completed. */
  push(chunk: Buffer): Block[] {
    this.rest += this.decoder.write(chunk)
    const out: Block[] = []
    let at = this.rest.indexOf("\n\n")
    while (at >= 0) {
      out.push(parseBlock(this.rest.slice(0, at)))
      this.rest = this.rest.slice(at + 2)
      at = this.rest.indexOf("\n\n")
    }
    return out
  }

  /** Bytes received after the last complete block (a frame cut by the close). */
  get pending(): string {
    return this.rest
  }
}
