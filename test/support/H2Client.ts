// An HTTP/2 client for tests: one session (h2c with prior knowledge, or TLS with ALPN), many SSE streams on it,
// each keeping its status, headers and bytes like SseClient does for HTTP/1.1.
import http2 from "node:http2"
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { StringDecoder } from "node:string_decoder"
import { parseFrames, waitUntil, type Frame } from "./SseClient.ts"

export const TLS_CERT = resolve(import.meta.dirname, "../../testbench/tls/localhost.crt")
export const TLS_KEY = resolve(import.meta.dirname, "../../testbench/tls/localhost.key")

export interface H2Stream {
  readonly status: () => number
  readonly headers: () => http2.IncomingHttpHeaders
  readonly raw: () => string
  readonly frames: () => Frame[]
  readonly txIds: () => number[]
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  readonly reset: () => void
  /** Stops reading: the stream's flow-control window fills and the server must buffer. */
  readonly pause: () => void
  readonly waitFor: (predicate: (s: H2Stream) => boolean, timeoutMs?: number, what?: string) => Promise<void>
}

export interface H2Session {
  readonly session: http2.ClientHttp2Session
  readonly open: (path: string, headers?: Record<string, string>) => Promise<H2Stream>
  /** GOAWAY received from the server. */
  readonly goaway: () => boolean
  readonly close: () => void
}

export const connectH2 = async (url: string, options: { readonly tls?: boolean } = {}): Promise<H2Session> => {
  const session = http2.connect(url, options.tls === true ? { ca: readFileSync(TLS_CERT) } : {})
  let goaway = false
  session.on("goaway", () => {
    goaway = true
  })
  session.on("error", () => {})
  await new Promise<void>((ok, fail) => {
    session.once("connect", () => ok())
    session.once("error", fail)
  })
  const open = (path: string, headers: Record<string, string> = {}): Promise<H2Stream> =>
    new Promise((ok) => {
      const req = session.request({ ":path": path, ...headers })
      const decoder = new StringDecoder("utf8")
      let received = ""
      let status = 0
      let responseHeaders: http2.IncomingHttpHeaders = {}
      let closed = false
      const closedP = new Promise<void>((r) =>
        req.once("close", () => {
          closed = true
          r()
        }),
      )
      req.on("error", () => {})
      req.on("data", (chunk: Buffer) => {
        received += decoder.write(chunk)
      })
      const stream: H2Stream = {
        status: () => status,
        headers: () => responseHeaders,
        raw: () => received,
        frames: () => parseFrames(received),
        txIds: () =>
          parseFrames(received)
            .filter((f) => f.event === "tx")
            .map((f) => Number(f.id)),
        closed: closedP,
        isClosed: () => closed,
        reset: () => req.close(http2.constants.NGHTTP2_CANCEL),
        pause: () => req.pause(),
        waitFor: (predicate, timeoutMs = 10_000, what = "the stream") =>
          waitUntil(() => predicate(stream), timeoutMs, what),
      }
      req.once("response", (h) => {
        status = Number(h[":status"])
        responseHeaders = h
        ok(stream)
      })
    })
  // Like a closed tab: the connection goes, whatever its streams were doing.
  return { session, open, goaway: () => goaway, close: () => session.destroy() }
}
