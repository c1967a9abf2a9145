// A scripted SSE server on real HTTP (node:http, 127.0.0.1) for the client tests: each test says how the n-th
// request is answered, so reconnects, resumes and refusals are exercised through fetch exactly as in production.
import http from "node:http"
import type { AddressInfo } from "node:net"
import type { WaleraChange, WaleraTx } from "../../client/src/index.ts"

export type Req = { n: number; at: number; url: string; headers: http.IncomingHttpHeaders; closed: boolean }
export type Script = (req: Req, res: http.ServerResponse) => void

export type ScriptedServer = {
  /** A stream URL on this server (the path is not looked at). */
  readonly url: string
  readonly requests: Req[]
  readonly close: () => Promise<void>
}

/** Starts a node:http server whose `script` answers the n-th request (1-based). */
export const startServer = async (script: Script): Promise<ScriptedServer> => {
  const requests: Req[] = []
  const server = http.createServer((req, res) => {
    const r: Req = {
      n: requests.length + 1,
      at: performance.now(),
      url: req.url ?? "/",
      headers: req.headers,
      closed: false,
    }
    requests.push(r)
    res.on("close", () => {
      r.closed = true
    })
    script(r, res)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/sse/v1/orders/42`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** 200 text/event-stream and Walera's opening `retry:` line. */
export const openSse = (res: http.ServerResponse, prelude = "retry: 15000\n\n"): void => {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" })
  res.write(prelude)
}

export const frame = (event: string, data: unknown, id?: number | string): string =>
  `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`

export const tx = (...changes: WaleraChange[]): WaleraTx => ({ tx_id: 1, commit_ts: "2026-05-18T08:30:12Z", changes })

/** A `tx` frame with SSE id = tx_id that sets order 42's status. */
export const txFrame = (id: number, status: string): string =>
  frame("tx", { ...tx({ op: "update", table: "orders", pk: "42", data: { id: 42, status } }), tx_id: id }, id)

export const waitFor = async (what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
