// Pins connect() against a real scripted node:http SSE server (no mocks of fetch): the order of callbacks, which
// ends are retried and how long it waits, and resume versus resync on every reconnect, so what front ends rely on is
// what was tested.
import { afterEach, describe, expect, it, vi } from "vitest"
import {
  applyTx,
  type CloseInfo,
  type ConnectOptions,
  connect,
  type WaleraConnection,
  WaleraEventSource,
  type WaleraMirror,
} from "../../client/src/index.ts"
import { frame, openSse, type Script, sleep, startServer as start, txFrame, waitFor } from "./sseServer.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  vi.restoreAllMocks()
})

const startServer = async (script: Script) => {
  const server = await start(script)
  cleanups.push(server.close)
  return server
}

/** With resume off every open is a normal one: "open" is always followed by "resync". */
const withResync = (entry: string): string[] => (entry === "open" ? ["open", "resync"] : [entry])

/**
 * connect() with every callback logged to `log`, closed after the test. Resume is off unless a test turns it on,
 * so every open is decided at once (logged as "resync") and the logs are deterministic.
 */
const follow = (url: string, extra: Partial<ConnectOptions> = {}) => {
  const log: string[] = []
  const closes: CloseInfo[] = []
  const conn: WaleraConnection = connect({
    url,
    resume: false,
    backoff: { baseMs: 10, maxMs: 50 },
    onOpen: () => log.push("open"),
    onResync: () => log.push("resync"),
    onResumed: (info) => log.push(`resumed:${info.last_event_id}`),
    onInitialData: (d) => log.push(`initial:${JSON.stringify(d)}`),
    onTx: (t) => log.push(`tx:${t.tx_id}`),
    onError: (r) => log.push(`error:${r}`),
    onShutdown: (info) => log.push(`shutdown:${info.reason}`),
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
    await waitFor("two tx", () => log.length >= 5)
    expect(log).toEqual(["open", "resync", 'initial:{"order":{"id":42,"status":"new"}}', "tx:735", "tx:736"])
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
    expect(log).toEqual(
      ["open", "initial", "tx:101", "close:end:true", "open", "initial", "tx:102"].flatMap(withResync),
    )
    expect(mirror.get("orders")!.get("42")).toEqual({ id: 42, status: "live2" })
  })

  it("reconnects with backoff after the server ends the stream; with resume off it never sends Last-Event-ID", async () => {
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
    for (const r of server.requests) {
      expect(r.headers["last-event-id"]).toBeUndefined()
      expect(r.url).not.toContain("last_event_id")
    }
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
    expect(log).toEqual(["close:http_429:true", "close:http_502:true", "open", "resync"])
  })

  it("waits at least Retry-After after a 503", async () => {
    const server = await startServer((req, res) => {
      if (req.n === 1) {
        res.writeHead(503, { "Retry-After": "1", "Content-Type": "application/json" })
        res.end('{"error":"wal_not_streaming"}')
      } else openSse(res)
    })
    const { log, closes } = follow(server.url)
    await waitFor("open after 503", () => log.includes("resync"))
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
    expect(log).toEqual(
      ["open", "tx:1", "error:wal_disconnected", "close:wal_disconnected:true", "open", "tx:2"].flatMap(withResync),
    )
    await waitFor("first response closed", () => server.requests[0]!.closed)
  })

  it("after a shutdown frame waits the retry: the server sent before it (plus at most 10 %), not the backoff", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.write(txFrame(req.n, "x"))
      // What Walera does on SIGTERM: a per-stream random retry: block, then the shutdown frame, then the end.
      if (req.n === 1) res.end(`retry: 300\n\n${frame("shutdown", { reason: "service_restart" })}`)
    })
    const { log, closes } = follow(server.url)
    await waitFor("second connection", () => log.includes("tx:2"))
    expect(log).toEqual(
      ["open", "tx:1", "shutdown:service_restart", "close:shutdown:true", "open", "tx:2"].flatMap(withResync),
    )
    expect(closes[0]!.retryInMs).toBeGreaterThanOrEqual(300)
    expect(closes[0]!.retryInMs).toBeLessThanOrEqual(330)
    // Measured by the server (a few ms of slack for timer rounding): the wait really happened.
    expect(server.requests[1]!.at - server.requests[0]!.at).toBeGreaterThanOrEqual(290)
  })

  it("after a shutdown with only the opening retry: waits that (an older server spreads nothing itself)", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(frame("shutdown", { reason: "service_restart" }))
    })
    const { conn, closes } = follow(server.url)
    await waitFor("close", () => closes.length === 1)
    conn.close()
    expect(closes[0]!.reason).toBe("shutdown")
    expect(closes[0]!.retryInMs).toBeGreaterThanOrEqual(15_000)
    expect(closes[0]!.retryInMs).toBeLessThanOrEqual(16_500)
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
    await waitFor("third connection", () => server.requests.length === 3 && log.at(-1) === "resync")
    expect(log).toEqual(["close:network:true", "open", "tx:2", "close:network:true", "open"].flatMap(withResync))
  })

  it("resyncs after a malformed tx frame instead of applying it", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.write("event: tx\ndata: {not json\n\n")
    })
    const { log } = follow(server.url)
    await waitFor("reconnect", () => server.requests.length === 2 && log.at(-1) === "resync")
    expect(log).toEqual(["open", "close:bad_frame:true", "open"].flatMap(withResync))
  })

  it("treats a silent connection as dead after idleTimeoutMs, and heartbeats keep it alive", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) return // silent
      const beat = setInterval(() => res.write(":\n\n"), 20)
      res.on("close", () => clearInterval(beat))
    })
    const { log } = follow(server.url, { idleTimeoutMs: 300 })
    await waitFor("reconnect", () => log.includes("close:idle_timeout:true") && log.at(-1) === "resync")
    await sleep(400) // heartbeats every 20 ms keep the second stream open
    expect(log).toEqual(["open", "close:idle_timeout:true", "open"].flatMap(withResync))
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
    await waitFor("second open", () => log.filter((l) => l === "resync").length === 2)
    expect(log).toEqual(["open", "error:auth_revoked", "close:auth_revoked:true", "open"].flatMap(withResync))
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
    expect(log).toEqual(["open", "tx:1", "close:callback_error:true", "open", "tx:2"].flatMap(withResync))
    expect((closes[0]!.error as Error).message).toBe("render failed")
  })

  it("close() on an open stream aborts it, and nothing follows", async () => {
    const server = await startServer((_req, res) => openSse(res))
    const { conn, log } = follow(server.url)
    await waitFor("open", () => log.includes("resync"))
    conn.close()
    conn.close() // idempotent
    expect(conn.state).toBe("closed")
    await waitFor("server sees the close", () => server.requests[0]!.closed)
    await sleep(200)
    expect(server.requests).toHaveLength(1)
    expect(log).toEqual(["open", "resync"])
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
    await waitFor("its close", () => fromCallback.log.length === 3)
    await sleep(600)
    expect(server.requests).toHaveLength(2)
    expect(fromCallback.log).toEqual(["open", "resync", "close:end"])
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

describe("connect: resume or resync", () => {
  /** follow() with resume on, as connect() defaults to. */
  const resuming = (url: string, extra: Partial<ConnectOptions> = {}) => follow(url, { resume: true, ...extra })

  it("sends the last seen id as Last-Event-ID; a resumed open keeps the mirror and applies the replay", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) {
        res.write(frame("initial_data", { id: 42, status: "new" }))
        res.end(txFrame(101, "paid") + txFrame(102, "packed"))
      } else if (req.headers["last-event-id"] === "102") {
        // The replay of what was committed while the client was away, then live.
        res.write(frame("resumed", { last_event_id: "102" }) + txFrame(103, "shipped"))
      } else res.writeHead(500).end()
    })
    const mirror: WaleraMirror = new Map()
    let initialDataApplied = 0
    const idsInOnTx: Array<string | undefined> = []
    const { conn, log } = resuming(server.url, {
      onInitialData: (d) => {
        initialDataApplied++
        mirror.set("orders", new Map([["42", d as Record<string, unknown>]]))
        log.push("initial")
      },
      onTx: (t) => {
        applyTx(mirror, t)
        log.push(`tx:${t.tx_id}`)
        idsInOnTx.push(conn.lastEventId) // what an app would store with its mirror
      },
    })
    await waitFor("the replayed tx", () => log.includes("tx:103"))
    expect(log).toEqual([
      "open",
      "resync",
      "initial",
      "tx:101",
      "tx:102",
      "close:end:true",
      "open",
      "resumed:102",
      "tx:103",
    ])
    expect(server.requests[0]!.headers["last-event-id"]).toBeUndefined()
    expect(server.requests[1]!.headers["last-event-id"]).toBe("102")
    expect(mirror.get("orders")!.get("42")).toEqual({ id: 42, status: "shipped" })
    expect(initialDataApplied).toBe(1)
    expect(conn.lastEventId).toBe("103")
    expect(idsInOnTx).toEqual(["101", "102", "103"])
  })

  it("a reconnect the server answers with a normal open resyncs, and forgets the old id", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(txFrame(7, "paid"))
      else if (req.n === 2)
        res.end(frame("initial_data", { id: 42, status: "snapshot" })) // no resume, no id
      else res.write(txFrame(8, "live"))
    })
    const { log } = resuming(server.url)
    await waitFor("third connection's tx", () => log.includes("tx:8"))
    expect(log).toEqual([
      "open",
      "resync",
      "tx:7",
      "close:end:true",
      "open",
      "resync",
      'initial:{"id":42,"status":"snapshot"}',
      "close:end:true",
      "open",
      "resync",
      "tx:8",
    ])
    expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "7", undefined])
  })

  it("an initial_data with id (server resume on) becomes the resume point", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(frame("initial_data", { id: 42 }, 555))
      else res.write(frame("resumed", { last_event_id: "555" }))
    })
    const { log } = resuming(server.url)
    await waitFor("resumed", () => log.includes("resumed:555"))
    expect(server.requests[1]!.headers["last-event-id"]).toBe("555")
    expect(log).toEqual(["open", "resync", 'initial:{"id":42}', "close:end:true", "open", "resumed:555"])
  })

  it("decides a normal open after resumeWaitMs when a reconnect that sent an id gets no frame", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(txFrame(5, "x"))
      // the second stream stays silent: no initial_data, no resumed
    })
    const { conn, log } = resuming(server.url, { resumeWaitMs: 100 })
    await waitFor("the second resync", () => log.filter((l) => l === "resync").length === 2)
    expect(log).toEqual(["open", "resync", "tx:5", "close:end:true", "open", "resync"])
    expect(server.requests[1]!.headers["last-event-id"]).toBe("5")
    expect(conn.lastEventId).toBeUndefined()
  })

  it("a reconnect that ends with shutdown or error before any state keeps the id and does not resync", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      if (req.n === 1) res.end(txFrame(5, "x"))
      else if (req.n === 2) res.end(`retry: 10\n\n${frame("shutdown", { reason: "service_restart" })}`)
      else if (req.n === 3) res.end(frame("error", { reason: "auth_unavailable" }))
      else res.write(frame("resumed", { last_event_id: req.headers["last-event-id"] }))
    })
    const { log } = resuming(server.url)
    await waitFor("resumed", () => log.includes("resumed:5"))
    expect(log).toEqual([
      "open",
      "resync",
      "tx:5",
      "close:end:true",
      "open",
      "shutdown:service_restart",
      "close:shutdown:true",
      "open",
      "error:auth_unavailable",
      "close:auth_unavailable:true",
      "open",
      "resumed:5",
    ])
    expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "5", "5", "5"])
  })

  it("starts from a stored lastEventId and never resyncs when the server resumes it", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      res.write(frame("resumed", { last_event_id: req.headers["last-event-id"] }) + txFrame(901, "x"))
    })
    const { log } = resuming(server.url, { lastEventId: "900" })
    await waitFor("tx", () => log.includes("tx:901"))
    expect(log).toEqual(["open", "resumed:900", "tx:901"])
    expect(server.requests[0]!.headers["last-event-id"]).toBe("900")
  })

  it("reconnect() resumes at once; after a callback threw, the next open does not resume (the mirror may be wrong)", async () => {
    const server = await startServer((req, res) => {
      openSse(res)
      const sent = req.headers["last-event-id"]
      if (sent !== undefined) res.write(frame("resumed", { last_event_id: sent }))
      res.write(txFrame(10 + req.n, "x"))
    })
    const { conn, log, closes } = resuming(server.url, {
      onTx: (t) => {
        log.push(`tx:${t.tx_id}`)
        if (t.tx_id === 12) throw new Error("render failed")
      },
    })
    await waitFor("tx 11", () => log.includes("tx:11"))
    conn.reconnect()
    await waitFor("tx 13", () => log.includes("tx:13"))
    expect(log).toEqual([
      "open",
      "resync",
      "tx:11",
      "close:reconnect:true",
      "open",
      "resumed:11",
      "tx:12",
      "close:callback_error:true",
      "open",
      "resync",
      "tx:13",
    ])
    expect(closes[0]).toEqual({ reason: "reconnect", willRetry: true, retryInMs: 0 })
    expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "11", undefined])
    await waitFor("the first response closed", () => server.requests[0]!.closed)
  })

  it("over an EventSource transport, sends the id as ?last_event_id= and tells server error frames from failures", async () => {
    const server = await startServer((req, res) => {
      if (req.n === 2) return void res.writeHead(503, { "Retry-After": "0" }).end() // seen only as a failure
      openSse(res)
      if (req.n === 1) res.write(txFrame(11, "x") + frame("error", { reason: "wal_disconnected" }))
      else res.write(frame("resumed", { last_event_id: "11" }) + txFrame(12, "y"))
    })
    const { log } = resuming(server.url, {
      EventSource: WaleraEventSource,
      headers: { Authorization: "Bearer not-sent" },
    })
    await waitFor("tx 12", () => log.includes("tx:12"))
    expect(log).toEqual([
      "open",
      "resync",
      "tx:11",
      "error:wal_disconnected",
      "close:wal_disconnected:true",
      "close:network:true",
      "open",
      "resumed:11",
      "tx:12",
    ])
    const urls = server.requests.map((r) => new URL(r.url, "http://x").searchParams.get("last_event_id"))
    expect(urls).toEqual([null, "11", "11"])
    for (const r of server.requests) {
      expect(r.headers["last-event-id"]).toBeUndefined()
      expect(r.headers.authorization).toBeUndefined() // an EventSource cannot send headers
    }
  })
})
