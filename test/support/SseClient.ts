// A real SSE client over a real socket: keeps the raw bytes (for "never on the wire"
// checks) and the parsed frames, and lets a test wait for what it expects.
import http from "node:http"
import { StringDecoder } from "node:string_decoder"

export interface Frame {
  readonly event: string | undefined
  readonly id: string | undefined
  readonly data: string | undefined
  readonly comment: boolean
  readonly retry: string | undefined
}

export interface SseClient {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  /** Body of a non-200 answer. */
  readonly body: () => string
  readonly raw: () => string
  readonly frames: () => Frame[]
  readonly events: (name: string) => Frame[]
  readonly txs: () => Array<{ tx_id: number; commit_ts: string; changes: Array<Record<string, unknown>> }>
  readonly waitFor: (predicate: (c: SseClient) => boolean, timeoutMs?: number, what?: string) => Promise<void>
  readonly ended: Promise<void>
  readonly isEnded: () => boolean
  readonly close: () => void
  /** Stops reading from the socket (a slow consumer). */
  readonly pause: () => void
}

export const parseFrames = (text: string): Frame[] => {
  const frames: Frame[] = []
  for (const block of text.split("\n\n")) {
    if (block === "") continue
    let event: string | undefined
    let id: string | undefined
    let data: string | undefined
    let retry: string | undefined
    let comment = false
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) comment = true
      else if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("id: ")) id = line.slice(4)
      else if (line.startsWith("data: ")) data = data === undefined ? line.slice(6) : `${data}\n${line.slice(6)}`
      else if (line.startsWith("retry: ")) retry = line.slice(7)
    }
    frames.push({ event, id, data, comment, retry })
  }
  return frames
}

export const openSse = (baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<SseClient> =>
  new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}${path}`, { headers, agent: false }, (res) => {
      const decoder = new StringDecoder("utf8")
      let received = ""
      let ended = false
      let endResolve: () => void = () => {}
      const endedP = new Promise<void>((r) => {
        endResolve = r
      })
      const text = () => received
      const complete = () =>
        received.endsWith("\n\n") ? received : received.slice(0, received.lastIndexOf("\n\n") + 2)
      res.on("data", (c: Buffer) => {
        received += decoder.write(c)
      })
      const finish = () => {
        if (ended) return
        ended = true
        endResolve()
      }
      res.on("end", finish)
      res.on("close", finish)
      res.on("error", finish)
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: text,
        raw: text,
        frames: () => parseFrames(complete()),
        events: (name) => parseFrames(complete()).filter((f) => f.event === name),
        txs: () =>
          parseFrames(complete())
            .filter((f) => f.event === "tx")
            .map((f) => JSON.parse(f.data ?? "null")),
        waitFor: (predicate, timeoutMs = 10_000, what = "condition") =>
          waitUntil(() => predicate(client), timeoutMs, what).catch((e: Error) => {
            throw new Error(`${e.message}; received:\n${text().slice(-2000)}`)
          }),
        ended: endedP,
        isEnded: () => ended,
        close: () => {
          req.destroy()
          res.destroy()
        },
        pause: () => {
          res.pause()
          res.socket.pause()
        },
      }
      resolve(client)
    })
    req.on("error", reject)
  })

export const waitUntil = async (
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
) => {
  const deadline = performance.now() + timeoutMs
  while (!(await predicate())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
