// Pins the client helper: the SSE parser against the HTML rules, mirror application, and reconnect behaviour
// against a real scripted node:http SSE server (no mocks of fetch), so what front ends copy is what was tested.
import http from "node:http"
import type { AddressInfo } from "node:net"
import fc from "fast-check"
import { afterEach, describe, expect, it, vi } from "vitest"
import {
  applyTx,
  backoffDelayMs,
  type CloseInfo,
  type ConnectOptions,
  connect,
  parseRetryAfterMs,
  parseSse,
  type SseEvent,
  type WaleraChange,
  type WaleraConnection,
  type WaleraMirror,
  type WaleraTx,
} from "../../client/WaleraClient.ts"

// ---------------------------------------------------------------------------------------------------------------
// parseSse
// ---------------------------------------------------------------------------------------------------------------

const parseAll = (...chunks: string[]): SseEvent[] => {
  const parser = parseSse()
  return chunks.flatMap((c) => parser.push(c))
}

type GenEvent = { event?: string; dataLines: string[]; id?: string; comment?: string }

const noNewline = (s: string) => !s.includes("\r") && !s.includes("\n")
const lineText = fc.string({ unit: "binary", maxLength: 12 }).filter(noNewline)
const genEvent: fc.Arbitrary<GenEvent> = fc.record(
  {
    event: fc.constantFrom("tx", "initial_data", "error", "shutdown", "message"),
    dataLines: fc.array(lineText, { minLength: 1, maxLength: 4 }),
    id: lineText.filter((s) => !s.includes("\0")),
    comment: lineText,
  },
  { requiredKeys: ["dataLines"] },
)

const serialize = (events: GenEvent[], eol: string, heartbeats: boolean): string =>
  events
    .map((e) => {
      const lines: string[] = []
      if (e.comment !== undefined) lines.push(`:${e.comment}`)
      if (e.event !== undefined) lines.push(`event: ${e.event}`)
      if (e.id !== undefined) lines.push(`id: ${e.id}`)
      for (const d of e.dataLines) lines.push(`data: ${d}`)
      return (heartbeats ? `:${eol}${eol}` : "") + lines.map((l) => l + eol).join("") + eol
    })
    .join("")

const expected = (events: GenEvent[]): SseEvent[] => {
  let lastId = ""
  return events.map((e) => {
    if (e.id !== undefined) lastId = e.id
    return { event: e.event ?? "message", data: e.dataLines.join("\n"), id: lastId }
  })
}

/** Splits bytes at the given offsets and decodes them the way the client does (streaming TextDecoder). */
const parseBytes = (bytes: Uint8Array, cuts: number[]): SseEvent[] => {
  const decoder = new TextDecoder()
  const parser = parseSse()
  const out: SseEvent[] = []
  let from = 0
  for (const cut of [...cuts].sort((a, b) => a - b).concat(bytes.length)) {
    out.push(...parser.push(decoder.decode(bytes.subarray(from, cut), { stream: true })))
    from = cut
  }
  out.push(...parser.push(decoder.decode()))
  return out
}

describe("parseSse", () => {
  it("parses a Walera stream: retry line, initial_data, tx with id, heartbeat, error", () => {
    const parser = parseSse()
    const events = parser.push(
      "retry: 15000\n\n" +
        'event: initial_data\ndata: {"order":{"id":"42"}}\n\n' +
        'event: tx\nid: 735\ndata: {"tx_id":735}\n\n' +
        ":\n\n" +
        'event: error\ndata: {"reason":"wal_disconnected"}\n\n',
    )
    expect(parser.retry).toBe(15000)
    expect(events).toEqual([
      { event: "initial_data", data: '{"order":{"id":"42"}}', id: "" },
      { event: "tx", data: '{"tx_id":735}', id: "735" },
      { event: "error", data: '{"reason":"wal_disconnected"}', id: "735" },
    ])
  })

  it("accepts CRLF, LF and CR line endings, including a CRLF split across chunks", () => {
    const want = [{ event: "tx", data: "a\nb", id: "1" }]
    expect(parseAll("event: tx\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\n")).toEqual(want)
    expect(parseAll("event: tx\rid: 1\rdata: a\rdata: b\r\r")).toEqual(want)
    expect(parseAll("event: tx\r", "\nid: 1\r", "\ndata: a\r\ndata: b\r", "\n\r", "\n")).toEqual(want)
    // A CR at the end of a chunk ends the line at once: the event is dispatched without waiting for more bytes.
    const parser = parseSse()
    expect(parser.push("data: x\r\r")).toEqual([{ event: "message", data: "x", id: "" }])
    expect(parser.push("\ndata: y\n\n")).toEqual([{ event: "message", data: "y", id: "" }])
  })

  it("joins multi-line data with \\n and keeps empty and space-prefixed lines", () => {
    expect(parseAll("data: one\ndata:\ndata\ndata:  two\ndata:three\n\n")).toEqual([
      { event: "message", data: "one\n\n\n two\nthree", id: "" },
    ])
  })

  it("ignores comments, heartbeats, unknown fields, bad retry values and events without data", () => {
    const parser = parseSse()
    expect(
      parser.push(":\n\n: keep-alive\n\nfoo: bar\nretry: 12x\n\nevent: tx\n\nid: 9\n\nevent: tx\n:c\ndata: d\n\n"),
    ).toEqual([{ event: "tx", data: "d", id: "9" }])
    expect(parser.retry).toBeUndefined()
  })

  it("drops a leading BOM, ignores ids containing NUL, and never dispatches an unfinished event", () => {
    expect(parseAll("\uFEFFdata: a\n\nid: x\0y\ndata: b\n\ndata: unfinished\n")).toEqual([
      { event: "message", data: "a", id: "" },
      { event: "message", data: "b", id: "" },
    ])
  })

  it("property: the same events are produced from any byte chunking, with any line ending", () => {
    fc.assert(
      fc.property(
        fc.array(genEvent, { maxLength: 6 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        (events, eol, heartbeats, rawCuts) => {
          const bytes = new TextEncoder().encode(`retry: 15000${eol}${eol}${serialize(events, eol, heartbeats)}`)
          const cuts = rawCuts.map((n) => n % (bytes.length + 1))
          const whole = parseBytes(bytes, [])
          expect(whole).toEqual(expected(events))
          expect(parseBytes(bytes, cuts)).toEqual(whole)
        },
      ),
      { numRuns: 300 },
    )
  })

  it("property: one character at a time equals all at once", () => {
    fc.assert(
      fc.property(fc.array(genEvent, { maxLength: 5 }), fc.constantFrom("\n", "\r\n", "\r"), (events, eol) => {
        const text = serialize(events, eol, true)
        expect(parseAll(...text)).toEqual(parseAll(text))
      }),
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------
// applyTx
// ---------------------------------------------------------------------------------------------------------------

const tx = (...changes: WaleraChange[]): WaleraTx => ({ tx_id: 1, commit_ts: "2026-05-18T08:30:12Z", changes })

/** The mirror as a plain, comparable object; empty tables are left out. */
const snapshot = (mirror: WaleraMirror): Record<string, Record<string, Record<string, unknown>>> =>
  Object.fromEntries(
    [...mirror].filter(([, rows]) => rows.size > 0).map(([table, rows]) => [table, Object.fromEntries(rows)]),
  )

const genChange: fc.Arbitrary<WaleraChange> = fc
  .record({
    op: fc.constantFrom("insert" as const, "update" as const, "delete" as const),
    table: fc.constantFrom("orders", "line_items"),
    pk: fc.constantFrom("1", "2", "3"),
    data: fc.dictionary(
      fc.constantFrom("id", "status", "qty", "note"),
      fc.oneof(fc.integer(), fc.constant(null), fc.string()),
    ),
  })
  .map((c) => (c.op === "delete" ? { op: c.op, table: c.table, pk: c.pk } : c))
const genTx = fc.array(genChange, { maxLength: 6 }).map((changes) => tx(...changes))

describe("applyTx", () => {
  it("insert sets the row, update merges (absent keys stay, null is a value), delete removes", () => {
    const mirror: WaleraMirror = new Map()
    const touched = applyTx(
      mirror,
      tx(
        { op: "insert", table: "orders", pk: "42", data: { id: 42, status: "new", note: "x" } },
        { op: "insert", table: "line_items", pk: "7", data: { id: 7, qty: 1 } },
      ),
    )
    expect(touched).toEqual(new Set(["orders", "line_items"]))
    const before = mirror.get("orders")!.get("42")
    applyTx(mirror, tx({ op: "update", table: "orders", pk: "42", data: { id: 42, status: "paid", note: null } }))
    expect(snapshot(mirror)).toEqual({
      orders: { "42": { id: 42, status: "paid", note: null } },
      line_items: { "7": { id: 7, qty: 1 } },
    })
    expect(mirror.get("orders")!.get("42")).not.toBe(before) // rows are replaced, never mutated
    expect(before).toEqual({ id: 42, status: "new", note: "x" })

    expect(applyTx(mirror, tx({ op: "delete", table: "line_items", pk: "7" }))).toEqual(new Set(["line_items"]))
    expect(snapshot(mirror)).toEqual({ orders: { "42": { id: 42, status: "paid", note: null } } })
  })

  it("an update of a row the mirror does not have creates it from data; a delete of a missing row is a no-op", () => {
    const mirror: WaleraMirror = new Map()
    applyTx(mirror, tx({ op: "update", table: "orders", pk: "1", data: { id: 1, status: "paid" } }))
    applyTx(mirror, tx({ op: "delete", table: "tasks", pk: "9" }))
    expect(snapshot(mirror)).toEqual({ orders: { "1": { id: 1, status: "paid" } } })
    expect(mirror.has("tasks")).toBe(false)
  })

  it("applies changes of one transaction in order (insert then update of the same row)", () => {
    const mirror: WaleraMirror = new Map()
    applyTx(
      mirror,
      tx(
        { op: "insert", table: "orders", pk: "1", data: { id: 1, status: "new", qty: 1 } },
        { op: "update", table: "orders", pk: "1", data: { id: 1, status: "paid" } },
        { op: "insert", table: "orders", pk: "2", data: { id: 2 } },
        { op: "delete", table: "orders", pk: "2" },
      ),
    )
    expect(snapshot(mirror)).toEqual({ orders: { "1": { id: 1, status: "paid", qty: 1 } } })
  })

  it("does not keep references to the event's data objects", () => {
    const mirror: WaleraMirror = new Map()
    const data = { id: 1, status: "new" }
    applyTx(mirror, tx({ op: "insert", table: "orders", pk: "1", data }))
    data.status = "mutated"
    expect(mirror.get("orders")!.get("1")).toEqual({ id: 1, status: "new" })
  })

  it("property: a sequence of transactions equals applying their changes one at a time, and a flat model", () => {
    fc.assert(
      fc.property(fc.array(genTx, { maxLength: 8 }), (txs) => {
        const byTx: WaleraMirror = new Map()
        const byChange: WaleraMirror = new Map()
        const model = new Map<string, Record<string, unknown>>()
        for (const t of txs) {
          expect(applyTx(byTx, t)).toEqual(new Set(t.changes.map((c) => c.table)))
          for (const c of t.changes) {
            applyTx(byChange, tx(c))
            const key = `${c.table}:${c.pk}`
            if (c.op === "delete") model.delete(key)
            else if (c.op === "insert") model.set(key, { ...c.data })
            else model.set(key, { ...model.get(key), ...c.data })
          }
        }
        expect(snapshot(byTx)).toEqual(snapshot(byChange))
        const flat = Object.fromEntries(
          [...byTx].flatMap(([table, rows]) => [...rows].map(([pk, row]) => [`${table}:${pk}`, row])),
        )
        expect(flat).toEqual(Object.fromEntries(model))
      }),
      { numRuns: 300 },
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------
// backoff helpers
// ---------------------------------------------------------------------------------------------------------------

describe("backoffDelayMs and parseRetryAfterMs", () => {
  it("property: full jitter within [max(min, 0), max(min, min(maxMs, baseMs·2^attempt))]", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 2000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.nat({ max: 60_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, maxMs, minMs, r) => {
          const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 52))
          const d = backoffDelayMs(attempt, { baseMs, maxMs }, minMs, () => r)
          expect(d).toBeGreaterThanOrEqual(minMs)
          expect(d).toBeLessThanOrEqual(Math.max(minMs, cap))
          expect(Number.isFinite(d)).toBe(true)
        },
      ),
    )
    expect(backoffDelayMs(0, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(500)
    expect(backoffDelayMs(3, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(4000)
    expect(backoffDelayMs(10, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(15_000)
  })

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfterMs("5")).toBe(5000)
    expect(parseRetryAfterMs(" 0 ")).toBe(0)
    expect(parseRetryAfterMs(null)).toBeUndefined()
    expect(parseRetryAfterMs("soon")).toBeUndefined()
    const now = Date.parse("2026-05-18T08:30:00Z")
    expect(parseRetryAfterMs("Mon, 18 May 2026 08:30:10 GMT", now)).toBe(10_000)
    expect(parseRetryAfterMs("Mon, 18 May 2026 08:29:10 GMT", now)).toBe(0)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// connect, against a real SSE server
// ---------------------------------------------------------------------------------------------------------------

type Req = { n: number; at: number; headers: http.IncomingHttpHeaders; closed: boolean }
type Script = (req: Req, res: http.ServerResponse) => void

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  vi.restoreAllMocks()
})

/** A node:http server on 127.0.0.1; `script` answers the n-th request (1-based). */
const startServer = async (script: Script) => {
  const requests: Req[] = []
  const server = http.createServer((req, res) => {
    const r: Req = { n: requests.length + 1, at: performance.now(), headers: req.headers, closed: false }
    requests.push(r)
    res.on("close", () => {
      r.closed = true
    })
    script(r, res)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { url: `http://127.0.0.1:${port}/sse/v1/orders/42`, requests }
}

const openSse = (res: http.ServerResponse): void => {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" })
  res.write("retry: 15000\n\n")
}
const frame = (event: string, data: unknown, id?: number): string =>
  `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`

const txFrame = (id: number, status: string): string =>
  frame("tx", { ...tx({ op: "update", table: "orders", pk: "42", data: { id: 42, status } }), tx_id: id }, id)

const waitFor = async (what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** connect() with every callback logged to `log`, closed after the test. */
const follow = (url: string, extra: Partial<ConnectOptions> = {}) => {
  const log: string[] = []
  const closes: CloseInfo[] = []
  const conn: WaleraConnection = connect({
    url,
    backoff: { baseMs: 10, maxMs: 50 },
    onOpen: () => log.push("open"),
    onInitialData: (d) => log.push(`initial:${JSON.stringify(d)}`),
    onTx: (t) => log.push(`tx:${t.tx_id}`),
    onError: (r) => log.push(`error:${r}`),
    onShutdown: () => log.push("shutdown"),
    onClose: (info) => {
      closes.push(info)
      log.push(`close:${info.reason}:${info.willRetry}`)
    },
    ...extra,
  })
  cleanups.push(() => conn.close())
  return { conn, log, closes }
}

describe("connect", () => {
  it("opens with Accept: text/event-stream and the given headers, and calls back in stream order", async () => {
    const server = await startServer((_req, res) => {
      openSse(res)
      res.write(frame("initial_data", { order: { id: 42, status: "new" } }))
      res.write(txFrame(735, "paid") + ":\n\n")
      res.write(frame("message", { ignored: true }))
      res.write(txFrame(736, "shipped"))
    })
    const { conn, log } = follow(server.url, { headers: { Authorization: "Bearer t0k" } })
    expect(conn.state).toBe("connecting")
    await waitFor("two tx", () => log.length >= 4)
    expect(log).toEqual(["open", 'initial:{"order":{"id":42,"status":"new"}}', "tx:735", "tx:736"])
    expect(conn.state).toBe("open")
    expect(server.requests).toHaveLength(1)
    expect(server.requests[0]!.headers.accept).toBe("text/event-stream")
    expect(server.requests[0]!.headers.authorization).toBe("Bearer t0k")
  })

  it("mirrors a stream with applyTx and resyncs from initial_data on every connection", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.write(frame("initial_data", { id: 42, status: `snapshot${req.n}` }))
      res.write(txFrame(100 + req.n, `live${req.n}`))
      if (req.n === 1) res.end() // plain end: the client must reconnect and resync
    })
    const mirror: WaleraMirror = new Map()
    const { log } = follow(server.url, {
      onInitialData: (d) => {
        mirror.clear()
        mirror.set("orders", new Map([["42", d as Record<string, unknown>]]))
        log.push("initial")
      },
      onTx: (t) => {
        applyTx(mirror, t)
        log.push(`tx:${t.tx_id}`)
      },
    })
    await waitFor("second connection's tx", () => log.includes("tx:102"))
    expect(log).toEqual(["open", "initial", "tx:101", "close:end:true", "open", "initial", "tx:102"])
    expect(mirror.get("orders")!.get("42")).toEqual({ id: 42, status: "live2" })
  })

  it("reconnects with backoff after the server ends the stream, and never sends Last-Event-ID", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.end(txFrame(req.n, "x"))
    })
    const { conn, closes } = follow(server.url)
    await waitFor("4 connections", () => server.requests.length >= 4)
    conn.close()
    expect(closes.length).toBeGreaterThanOrEqual(3)
    for (const c of closes) {
      expect(c).toMatchObject({ reason: "end", willRetry: true })
      expect(c.retryInMs).toBeGreaterThanOrEqual(0)
      expect(c.retryInMs).toBeLessThanOrEqual(50) // maxMs
    }
    for (const r of server.requests) expect(r.headers["last-event-id"]).toBeUndefined()
  })

  it("grows the backoff cap exponentially up to maxMs, and resets it after a stream stayed open long enough", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999)
    const quick = await startServer((_req, res) => {
      openSse(res)
      res.end()
    })
    const a = follow(quick.url, { backoff: { baseMs: 10, maxMs: 60 } })
    await waitFor("5 closes", () => a.closes.length >= 5)
    a.conn.close()
    expect(a.closes.slice(0, 5).map((c) => c.retryInMs)).toEqual([10, 20, 40, 60, 60])

    const long = await startServer((_req, res) => {
      openSse(res)
      setTimeout(() => res.end(), 200) // well over resetAfterMs even if the client sees the headers late
    })
    const b = follow(long.url, { backoff: { baseMs: 10, maxMs: 1000, resetAfterMs: 50 } })
    await waitFor("3 closes", () => b.closes.length >= 3)
    b.conn.close()
    expect(b.closes.slice(0, 3).map((c) => c.retryInMs)).toEqual([10, 10, 10])
  })

  it("does not retry a 401 (auth said no)", async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(401, { "Content-Type": "application/json" })
      res.end('{"error":"unauthorized"}')
    })
    const { conn, log, closes } = follow(server.url)
    await waitFor("close", () => closes.length === 1)
    expect(closes[0]).toEqual({ reason: "http_401", willRetry: false })
    expect(conn.state).toBe("closed")
    await sleep(200) // with baseMs 10, a retry would have happened by now
    expect(server.requests).toHaveLength(1)
    expect(log).toEqual(["close:http_401:false"])
  })

  it.each([403, 404, 400])("does not retry a %i", async (status) => {
    const server = await startServer((_req, res) => {
      res.writeHead(status)
      res.end()
    })
    const { conn, closes } = follow(server.url)
    await waitFor("close", () => closes.length === 1)
    expect(closes[0]).toEqual({ reason: `http_${status}`, willRetry: false })
    expect(conn.state).toBe("closed")
    await sleep(100)
    expect(server.requests).toHaveLength(1)
  })

  it("retries a 429 and a 502", async () => {
    const server = await startServer((req, res) => {
      if (req.n === 1) res.writeHead(429).end()
      else if (req.n === 2) res.writeHead(502).end()
      else openSse(res)
    })
    const { log } = follow(server.url)
    await waitFor("open", () => log.includes("open"))
    expect(log).toEqual(["close:http_429:true", "close:http_502:true", "open"])
  })

  it("waits at least Retry-After after a 503", async () => {
    const server = await startServer((req, res) => {
      if (req.n === 1) {
        res.writeHead(503, { "Retry-After": "1", "Content-Type": "application/json" })
        res.end('{"error":"wal_not_streaming"}')
      } else openSse(res)
    })
    const { log, closes } = follow(server.url)
    await waitFor("open after 503", () => log.includes("open"))
    expect(closes[0]).toMatchObject({ reason: "http_503", willRetry: true })
    expect(closes[0]!.retryInMs).toBeGreaterThanOrEqual(1000)
    // 1 s measured by the server; a few ms of slack for timer/clock rounding.
    expect(server.requests[1]!.at - server.requests[0]!.at).toBeGreaterThanOrEqual(990)
  })

  it("reports an error frame (wal_disconnected) via onError, then reconnects", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.write(txFrame(req.n, "x"))
      if (req.n === 1) res.write(frame("error", { reason: "wal_disconnected" })) // left open: the frame is terminal
    })
    const { log } = follow(server.url)
    await waitFor("second connection", () => log.includes("tx:2"))
    expect(log).toEqual(["open", "tx:1", "error:wal_disconnected", "close:wal_disconnected:true", "open", "tx:2"])
    await waitFor("first response closed", () => server.requests[0]!.closed)
  })

  it("reports a shutdown frame via onShutdown, then reconnects", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(frame("shutdown", { reason: "service_restart" }))
    })
    const { log } = follow(server.url)
    await waitFor("second open", () => log.filter((l) => l === "open").length === 2)
    expect(log).toEqual(["open", "shutdown", "close:shutdown:true", "open"])
  })

  it("retries network errors (connection reset before and during the stream)", async () => {
    const server = await startServer((req, res) => {
      if (req.n === 1) res.socket?.destroy()
      else if (req.n === 2) {
        openSse(res)
        res.write(txFrame(2, "x"), () => setTimeout(() => res.socket?.destroy(), 20))
      } else openSse(res)
    })
    const { log } = follow(server.url)
    await waitFor("third connection", () => server.requests.length === 3 && log.at(-1) === "open")
    expect(log).toEqual(["close:network:true", "open", "tx:2", "close:network:true", "open"])
  })

  it("resyncs after a malformed tx frame instead of applying it", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.write("event: tx\ndata: {not json\n\n")
    })
    const { log } = follow(server.url)
    await waitFor("reconnect", () => server.requests.length === 2 && log.at(-1) === "open")
    expect(log).toEqual(["open", "close:bad_frame:true", "open"])
  })

  it("treats a silent connection as dead after idleTimeoutMs, and heartbeats keep it alive", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) return // silent
      const beat = setInterval(() => res.write(":\n\n"), 20)
      res.on("close", () => clearInterval(beat))
    })
    const { log } = follow(server.url, { idleTimeoutMs: 300 })
    await waitFor("reconnect", () => log.includes("close:idle_timeout:true") && log.at(-1) === "open")
    await sleep(400) // heartbeats every 20 ms keep the second stream open
    expect(log).toEqual(["open", "close:idle_timeout:true", "open"])
    expect(server.requests).toHaveLength(2)
  })

  it("calls a headers function before every attempt (fresh credentials after auth_revoked)", async () => {
    let token = 0
    const server = await startServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${req.n}`) return void res.writeHead(401).end()
      openSse(res)
      if (req.n === 1) res.end(frame("error", { reason: "auth_revoked" }))
    })
    const { log } = follow(server.url, { headers: async () => ({ Authorization: `Bearer ${++token}` }) })
    await waitFor("second open", () => log.filter((l) => l === "open").length === 2)
    expect(log).toEqual(["open", "error:auth_revoked", "close:auth_revoked:true", "open"])
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(["Bearer 1", "Bearer 2"])
  })

  it("stops when the headers function throws", async () => {
    const server = await startServer((_req, res) => openSse(res))
    const { conn, closes } = follow(server.url, {
      headers: () => {
        throw new Error("logged out")
      },
    })
    await waitFor("close", () => closes.length === 1)
    expect(closes[0]).toMatchObject({ reason: "headers_failed", willRetry: false })
    expect(conn.state).toBe("closed")
    expect(server.requests).toHaveLength(0)
  })

  it("drops and resyncs the stream when a callback throws", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.write(txFrame(req.n, "x"))
    })
    const { log, closes } = follow(server.url, {
      onTx: (t) => {
        log.push(`tx:${t.tx_id}`)
        if (t.tx_id === 1) throw new Error("render failed")
      },
    })
    await waitFor("tx 2", () => log.includes("tx:2"))
    expect(log).toEqual(["open", "tx:1", "close:callback_error:true", "open", "tx:2"])
    expect((closes[0]!.error as Error).message).toBe("render failed")
  })

  it("close() on an open stream aborts it, and nothing follows", async () => {
    const server = await startServer((_req, res) => openSse(res))
    const { conn, log } = follow(server.url)
    await waitFor("open", () => log.includes("open"))
    conn.close()
    conn.close() // idempotent
    expect(conn.state).toBe("closed")
    await waitFor("server sees the close", () => server.requests[0]!.closed)
    await sleep(200)
    expect(server.requests).toHaveLength(1)
    expect(log).toEqual(["open"])
  })

  it("close() during the backoff wait, or from a callback, stops retrying", async () => {
    const server = await startServer((_req, res) => {
      openSse(res)
      res.end()
    })
    vi.spyOn(Math, "random").mockReturnValue(0.999) // a ~300 ms wait, so close() lands inside it
    const waiting = follow(server.url, { backoff: { baseMs: 300, maxMs: 300 } })
    await waitFor("first close", () => waiting.closes.length === 1)
    waiting.conn.close()
    expect(waiting.conn.state).toBe("closed")

    const fromCallback = follow(server.url, {
      onClose: (info) => {
        fromCallback.log.push(`close:${info.reason}`)
        fromCallback.conn.close()
      },
    })
    await waitFor("its close", () => fromCallback.log.length === 2)
    await sleep(600)
    expect(server.requests).toHaveLength(2)
    expect(fromCallback.log).toEqual(["open", "close:end"])
    expect(fromCallback.conn.state).toBe("closed")
  })

  it("close() while the request is still pending aborts it", async () => {
    const server = await startServer(() => {}) // never answers
    const { conn, log } = follow(server.url)
    await waitFor("request", () => server.requests.length === 1)
    conn.close()
    await waitFor("server sees the abort", () => server.requests[0]!.closed)
    await sleep(100)
    expect(log).toEqual([])
    expect(server.requests).toHaveLength(1)
  })

  it("accepts withCredentials and a custom fetch", async () => {
    const server = await startServer((_req, res) => openSse(res))
    const inits: RequestInit[] = []
    const { log } = follow(server.url, {
      withCredentials: true,
      fetch: (input, init) => {
        inits.push(init ?? {})
        return fetch(input, init)
      },
    })
    await waitFor("open", () => log.includes("open"))
    expect(inits[0]!.credentials).toBe("include")
  })
})
