// The built client in headless Chromium against a scripted SSE server on another origin, for what the demo cannot
// show while the server has no resume: a resumed reconnect over fetch (Authorization and Last-Event-ID through a
// CORS preflight), the server's retry: before shutdown, and the native EventSource path with ?last_event_id=.
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import http from "node:http"
import type { AddressInfo } from "node:net"
import { extname, join, normalize, resolve, sep } from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { buildClient } from "../../testbench/demo/webServer.ts"

const CHROMIUM = "/usr/bin/chromium"
const CLIENT_ROOT = resolve(import.meta.dirname, "..", "..", "client")

type Req = { n: number; url: URL; headers: http.IncomingHttpHeaders }
type Script = (req: Req, res: http.ServerResponse) => void

const listen = async (handler: http.RequestListener): Promise<{ origin: string; server: http.Server }> => {
  const server = http.createServer(handler)
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

const PAGE = `<!doctype html>
<script type="importmap">{ "imports": { "@walera/client": "/client/dist/index.js" } }</script>
<script type="module">
  import { applyTx, connect } from "@walera/client"
  window.log = []
  window.follow = (url, extra) => {
    const mirror = new Map()
    const conn = connect({
      url,
      backoff: { baseMs: 10, maxMs: 50 },
      onOpen: () => log.push("open"),
      onResync: () => log.push("resync"),
      onResumed: (info) => log.push("resumed:" + info.last_event_id),
      onInitialData: (d) => log.push("initial:" + JSON.stringify(d)),
      onTx: (tx) => {
        applyTx(mirror, tx)
        log.push("tx:" + tx.tx_id + ":" + mirror.get("orders").get("42").status)
      },
      onError: (r) => log.push("error:" + r),
      onShutdown: () => log.push("shutdown"),
      onClose: (i) => log.push("close:" + i.reason + ":" + i.retryInMs),
      ...extra,
      EventSource: extra.native ? EventSource : undefined,
    })
    window.conn = conn
  }
  window.ready = true
</script>`

let browser: Browser | undefined
let page: { origin: string; server: http.Server } | undefined
let stream: { origin: string; server: http.Server } | undefined
let script: Script = () => {}
const requests: Req[] = []

const frame = (event: string, data: unknown, id?: number) =>
  `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`
const txFrame = (id: number, status: string) =>
  frame(
    "tx",
    {
      tx_id: id,
      commit_ts: "2026-05-18T08:30:12Z",
      changes: [{ op: "update", table: "orders", pk: "42", data: { status } }],
    },
    id,
  )

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: the e2e test needs Debian's Chromium — run: apt-get install -y chromium`)
  }
  await buildClient()
  page = await listen((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname
    if (path === "/") return void res.writeHead(200, { "content-type": "text/html" }).end(PAGE)
    const file = normalize(join(CLIENT_ROOT, path.replace(/^\/client\//, "")))
    if (!path.startsWith("/client/") || !file.startsWith(CLIENT_ROOT + sep)) return void res.writeHead(404).end()
    readFile(file).then(
      (body) =>
        res.writeHead(200, { "content-type": extname(file) === ".js" ? "text/javascript" : "text/plain" }).end(body),
      () => res.writeHead(404).end(),
    )
  })
  const pageOrigin = page.origin
  // Answers like Walera's CORS rules: the page's origin only, credentials allowed, the headers the client sends.
  stream = await listen((req, res) => {
    const cors = { "access-control-allow-origin": pageOrigin, "access-control-allow-credentials": "true" }
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        ...cors,
        "access-control-allow-methods": "GET, OPTIONS",
        "access-control-allow-headers": "Authorization, X-Request-ID, Last-Event-ID",
      })
      return void res.end()
    }
    const r: Req = { n: requests.length + 1, url: new URL(req.url ?? "/", "http://x"), headers: req.headers }
    requests.push(r)
    res.setHeader("access-control-allow-origin", pageOrigin)
    res.setHeader("access-control-allow-credentials", "true")
    script(r, res)
  })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  })
})

afterAll(async () => {
  await browser?.close().catch(() => {})
  for (const s of [page?.server, stream?.server]) {
    s?.closeAllConnections()
    await new Promise((r) => (s ? s.close(() => r(undefined)) : r(undefined)))
  }
})

const openPage = async (): Promise<Page> => {
  const p = await browser!.newPage()
  const errors: string[] = []
  p.on("pageerror", (e) => errors.push(e.message))
  await p.goto(`${page!.origin}/`)
  await expect
    .poll(() => p.evaluate(() => (globalThis as unknown as { ready?: boolean }).ready), { timeout: 10_000 })
    .toBe(true)
  expect(errors).toEqual([])
  return p
}
const logOf = (p: Page) => p.evaluate(() => (globalThis as unknown as { log: string[] }).log)
const openSse = (res: http.ServerResponse, prelude = "retry: 15000\n\n") => {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
  res.write(prelude)
}

describe("the built client in Chromium", () => {
  it("over fetch: bearer and Last-Event-ID cross-origin, a resumed reconnect, the retry: before shutdown", async () => {
    requests.length = 0
    script = (req, res) => {
      openSse(res)
      if (req.n === 1) {
        res.write(frame("initial_data", { id: 42 }))
        res.end(txFrame(101, "paid") + txFrame(102, "packed"))
      } else if (req.n === 2) {
        res.write(frame("resumed", { last_event_id: req.headers["last-event-id"] }) + txFrame(103, "shipped"))
        res.end(`retry: 200\n\n${frame("shutdown", { reason: "service_restart" })}`)
      } else res.write(frame("resumed", { last_event_id: req.headers["last-event-id"] }))
    }
    const p = await openPage()
    await p.evaluate(
      (url) =>
        (globalThis as unknown as { follow: (u: string, o: object) => void }).follow(url, {
          headers: { Authorization: "Bearer from-the-page" },
        }),
      `${stream!.origin}/sse/v1/orders/42`,
    )
    await expect.poll(() => logOf(p), { timeout: 10_000 }).toContain("resumed:103")
    const log = await logOf(p)
    const shutdownClose = log.find((l) => l.startsWith("close:shutdown:"))!
    expect(log).toEqual([
      "open",
      "resync",
      'initial:{"id":42}',
      "tx:101:paid",
      "tx:102:packed",
      log[5], // close:end:<backoff>
      "open",
      "resumed:102",
      "tx:103:shipped",
      "shutdown",
      shutdownClose,
      "open",
      "resumed:103",
    ])
    expect(log[5]).toMatch(/^close:end:\d+$/)
    const waited = Number(shutdownClose.split(":")[2])
    expect(waited).toBeGreaterThanOrEqual(200)
    expect(waited).toBeLessThanOrEqual(220)
    expect(requests.map((r) => r.headers.authorization)).toEqual(Array(3).fill("Bearer from-the-page"))
    expect(requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "102", "103"])
    await p.evaluate(() => (globalThis as unknown as { conn: { close(): void } }).conn.close())
    await p.close()
  })

  it("over the browser's EventSource: ?last_event_id= on reconnect, a server error frame told from a failure", async () => {
    requests.length = 0
    script = (req, res) => {
      if (req.n === 2) return void res.writeHead(503).end() // a refusal: EventSource only reports a failure
      openSse(res)
      if (req.n === 1) res.write(txFrame(11, "paid") + frame("error", { reason: "wal_disconnected" }))
      else res.write(frame("resumed", { last_event_id: req.url.searchParams.get("last_event_id") }) + txFrame(12, "x"))
    }
    const p = await openPage()
    await p.evaluate(
      (url) => (globalThis as unknown as { follow: (u: string, o: object) => void }).follow(url, { native: true }),
      `${stream!.origin}/sse/v1/orders/42`,
    )
    await expect.poll(() => logOf(p), { timeout: 10_000 }).toContain("tx:12:x")
    const log = await logOf(p)
    expect(log.map((l) => l.replace(/^(close:[a-z_]+):\d+$/, "$1"))).toEqual([
      "open",
      "resync",
      "tx:11:paid",
      "error:wal_disconnected",
      "close:wal_disconnected",
      "close:network",
      "open",
      "resumed:11",
      "tx:12:x",
    ])
    expect(requests.map((r) => r.url.searchParams.get("last_event_id"))).toEqual([null, "11", "11"])
    await p.evaluate(() => (globalThis as unknown as { conn: { close(): void } }).conn.close())
    await p.close()
  })
})
