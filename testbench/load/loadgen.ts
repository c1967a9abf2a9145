// SSE load generator: holds many Walera streams, parses frames incrementally, records commit→receive latency,
// received xids per channel and disconnect reasons. Speaks HTTP/1.1 (a socket per stream) or prior-knowledge h2c
// (many streams per connection). Usable as a library, a CLI, or a forked child (IPC) of the bench.
import http from "node:http"
import http2 from "node:http2"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { Counter, Gauge, Registry } from "prom-client"
import { H2Sessions } from "./h2Sessions.ts"
import { Histogram } from "./histogram.ts"

export interface StreamSpec {
  /** e.g. "/sse/v1/orders/42" */
  readonly path: string
  readonly token: string
}

export type LoadProtocol = "http1" | "h2c"

export interface LoadGenOptions {
  /** Base URL of the SSE server, e.g. http://127.0.0.1:8080 */
  readonly url: string
  readonly streams: ReadonlyArray<StreamSpec>
  /** "http1" (default): one socket per stream; "h2c": HTTP/2 with prior knowledge, many streams per session. */
  readonly protocol?: LoadProtocol
  /** h2c: streams per session (default 100; keep it at or below the server's max concurrent streams). */
  readonly streamsPerSession?: number
  /** Streams started together before waiting for their response headers. Default 250. */
  readonly batchSize?: number
  /**
   * Source addresses to spread connections (h2c: sessions) over; default: 127.0.0.1 only, or 20 000 HTTP/1.1
   * streams per address.
   */
  readonly localAddresses?: ReadonlyArray<string>
  readonly reconnect?: boolean
  /** Keep every received xid per channel (for missing-event checks). Default true. */
  readonly recordXids?: boolean
  readonly metricsPort?: number
  readonly log?: (line: string) => void
}

export interface ConnectSummary {
  readonly ms: number
  readonly ok: number
  readonly failed: number
  readonly failures: Record<string, number>
}

export interface LoadGenStats {
  readonly open: number
  /** h2c: sessions open now and opened so far (replacements included); 0 for HTTP/1.1 */
  readonly sessionsOpen: number
  readonly sessionsOpened: number
  /** h2c: session-level errors by code (a refused connection shows here, its streams as connect errors) */
  readonly sessionErrors: Record<string, number>
  readonly connects: number
  readonly txEvents: number
  readonly txBytes: number
  readonly heartbeats: number
  readonly disconnects: Record<string, number>
  /** tx frames received per stream kind */
  readonly exactEvents: number
  readonly wildcardEvents: number
  readonly latency: ReturnType<Histogram["toJSON"]>
  readonly negativeLatencies: number
  /** the load generator's own event-loop delay p99 (ms) since the last reset: high values would inflate latency */
  readonly loopDelayP99Ms: number
  /** one sample frame per (kind, token): used to size the plain-Node baseline's frames */
  readonly samples: Record<string, string>
}

export interface LoadGen {
  readonly connectAll: () => Promise<ConnectSummary>
  readonly resetLatency: () => void
  readonly stats: () => LoadGenStats
  /** exact channel path → xids received on its streams; each /all stream separately as "<path>#<index>" */
  readonly received: () => Map<string, number[]>
  readonly stopReconnecting: () => void
  readonly openCount: () => number
  readonly close: () => Promise<void>
}

const DEFAULT_PER_ADDRESS = 20_000

/** One held stream; kept small because a run holds tens of thousands of them. */
interface Conn {
  readonly spec: StreamSpec
  readonly wildcard: boolean
  /** HTTP/1.1: source address; h2c: undefined (the session has it) */
  readonly local: string | undefined
  /** h2c: index of the session slot carrying this stream */
  readonly session: number
  req: { destroy(): void } | null
  rest: string
  events: number
  xids: number[] | null
  backoffMs: number
  open: boolean
  /** why the current connection ended (set by a terminal frame) */
  endReason: string | null
}

// Cache for commit_ts parsing: the whole-seconds prefix changes once per second.
let lastPrefix = ""
let lastPrefixMs = 0
const commitMs = (data: string, at: number): number => {
  // "2026-05-18T08:30:12.123456Z" or "2026-05-18T08:30:12Z"
  const prefix = data.slice(at, at + 19)
  if (prefix !== lastPrefix) {
    lastPrefix = prefix
    lastPrefixMs = Date.parse(`${prefix}Z`)
  }
  let ms = lastPrefixMs
  if (data.charCodeAt(at + 19) === 46) {
    let scale = 100
    for (let i = at + 20; ; i++) {
      const c = data.charCodeAt(i)
      if (c < 48 || c > 57) break
      ms += (c - 48) * scale
      scale /= 10
    }
  }
  return ms
}

const nowMs = (): number => performance.timeOrigin + performance.now()

export const startLoadGen = (options: LoadGenOptions): LoadGen => {
  const base = new URL(options.url)
  const host = base.hostname
  const port = Number(base.port || 80)
  const batchSize = options.batchSize ?? 250
  const recordXids = options.recordXids ?? true
  const log = options.log ?? (() => {})
  const h2 = options.protocol === "h2c"
  const addresses =
    options.localAddresses ??
    (!h2 && options.streams.length > DEFAULT_PER_ADDRESS
      ? Array.from({ length: Math.ceil(options.streams.length / DEFAULT_PER_ADDRESS) }, (_, i) => `127.0.0.${i + 1}`)
      : [])
  const perAddress = addresses.length === 0 ? 0 : Math.ceil(options.streams.length / addresses.length)
  const streamsPerSession = Math.max(1, options.streamsPerSession ?? 100)
  const sessions = h2
    ? new H2Sessions(
        base.origin,
        Math.max(1, Math.ceil(options.streams.length / streamsPerSession)),
        addresses,
        streamsPerSession,
        log,
      )
    : undefined

  const latency = new Histogram()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  let negative = 0
  let txEvents = 0
  let txBytes = 0
  let exactEvents = 0
  let wildcardEvents = 0
  let heartbeats = 0
  let connects = 0
  let open = 0
  let reconnect = options.reconnect ?? true
  let closing = false
  const disconnects: Record<string, number> = {}
  const samples: Record<string, string> = {}
  const timers = new Set<NodeJS.Timeout>()
  const count = (reason: string) => {
    disconnects[reason] = (disconnects[reason] ?? 0) + 1
  }

  // h2c: round-robin over the sessions, so the few /all streams (the busy ones) do not share one connection.
  const conns: Conn[] = options.streams.map((spec, i) => ({
    spec,
    wildcard: spec.path.endsWith("/all"),
    local: h2 || addresses.length === 0 ? undefined : addresses[Math.floor(i / perAddress)],
    session: sessions === undefined ? -1 : i % sessions.count,
    req: null,
    rest: "",
    events: 0,
    xids: recordXids ? [] : null,
    backoffMs: 500,
    open: false,
    endReason: null,
  }))

  const onFrame = (c: Conn, f: string, at: number) => {
    if (f.startsWith("event: tx\n")) {
      const idAt = f.indexOf("id: ")
      const xid = idAt < 0 ? -1 : Number.parseInt(f.slice(idAt + 4, f.indexOf("\n", idAt)), 10)
      const ts = f.indexOf('"commit_ts":"')
      if (ts >= 0) {
        const lat = at - commitMs(f, ts + 13)
        if (lat < 0) negative++
        latency.record(lat)
      }
      txEvents++
      txBytes += f.length + 2
      c.events++
      if (c.wildcard) wildcardEvents++
      else exactEvents++
      c.xids?.push(xid)
      const key = `${c.wildcard ? "all" : "exact"}:${c.spec.token}`
      if (samples[key] === undefined) samples[key] = `${f}\n\n`
    } else if (f.charCodeAt(0) === 58 /* ":" */) {
      heartbeats++
    } else if (f.startsWith("event: error")) {
      const m = /"reason":"([^"]*)"/.exec(f)
      c.endReason = `error:${m?.[1] ?? "unknown"}`
    } else if (f.startsWith("event: shutdown")) {
      c.endReason = "shutdown"
    }
    // "retry:" and "initial_data" need nothing.
  }

  const onData = (c: Conn, chunk: Buffer) => {
    const at = nowMs()
    let s = c.rest.length === 0 ? chunk.toString("latin1") : c.rest + chunk.toString("latin1")
    let pos = 0
    for (;;) {
      const end = s.indexOf("\n\n", pos)
      if (end < 0) break
      if (end > pos) onFrame(c, s.slice(pos, end), at)
      pos = end + 2
    }
    if (pos >= s.length) c.rest = ""
    else {
      s = s.slice(pos)
      c.rest = s
    }
  }

  const scheduleReconnect = (c: Conn) => {
    if (!reconnect || closing) return
    const delay = c.backoffMs * (0.5 + Math.random())
    c.backoffMs = Math.min(c.backoffMs * 2, 10_000)
    const t = setTimeout(() => {
      timers.delete(t)
      if (reconnect && !closing) void connect(c)
    }, delay)
    timers.add(t)
  }

  /** Resolves once the response headers arrived (ok) or the attempt failed (reason). */
  const connectHttp1 = (c: Conn): Promise<string | null> =>
    new Promise((resolve) => {
      let settled = false
      const settle = (r: string | null) => {
        if (!settled) {
          settled = true
          resolve(r)
        }
      }
      const req = http.request({
        host,
        port,
        path: c.spec.path,
        method: "GET",
        agent: false,
        localAddress: c.local,
        headers: { authorization: `Bearer ${c.spec.token}`, accept: "text/event-stream" },
      })
      c.req = req
      c.endReason = null
      c.rest = ""
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          const reason = `http_${res.statusCode}`
          count(reason)
          res.resume()
          req.destroy()
          c.req = null
          settle(reason)
          scheduleReconnect(c)
          return
        }
        connects++
        open++
        c.open = true
        c.backoffMs = 500
        settle(null)
        res.on("data", (chunk: Buffer) => onData(c, chunk))
        const ended = () => {
          if (!c.open) return
          c.open = false
          open--
          c.req = null
          count(c.endReason ?? (closing ? "closed_by_loadgen" : "socket_close"))
          scheduleReconnect(c)
        }
        res.on("end", ended)
        res.on("close", ended)
        res.on("error", () => {})
      })
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (c.open) return // the response's close handler counts it
        const reason = `connect_error:${e.code ?? e.message}`
        if (!settled) count(reason)
        c.req = null
        settle(reason)
        scheduleReconnect(c)
      })
      req.end()
    })

  const connectH2 = (c: Conn): Promise<string | null> =>
    new Promise((resolve) => {
      const pool = sessions!
      let settled = false
      const settle = (r: string | null) => {
        if (!settled) {
          settled = true
          resolve(r)
        }
      }
      const fail = (reason: string) => {
        count(reason)
        c.req = null
        settle(reason)
        scheduleReconnect(c)
      }
      let session: http2.ClientHttp2Session
      let stream: http2.ClientHttp2Stream
      try {
        session = pool.session(c.session)
        stream = session.request(
          {
            ":method": "GET",
            ":path": c.spec.path,
            authorization: `Bearer ${c.spec.token}`,
            accept: "text/event-stream",
          },
          { endStream: true },
        )
      } catch (e) {
        fail(`connect_error:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
        return
      }
      c.req = stream
      c.endReason = null
      c.rest = ""
      let error: string | undefined
      stream.on("response", (headers) => {
        const status = headers[":status"]
        if (status !== 200) {
          stream.close(http2.constants.NGHTTP2_CANCEL)
          fail(`http_${status}`)
          return
        }
        connects++
        open++
        c.open = true
        c.backoffMs = 500
        settle(null)
      })
      stream.on("data", (chunk: Buffer) => onData(c, chunk))
      stream.on("error", (e: NodeJS.ErrnoException) => {
        error = e.code ?? e.message
      })
      stream.on("close", () => {
        if (c.open) {
          c.open = false
          open--
          c.req = null
          count(c.endReason ?? (closing ? "closed_by_loadgen" : pool.endReason(c.session, session, stream.rstCode)))
          scheduleReconnect(c)
        } else if (!settled) fail(`connect_error:${error ?? pool.endReason(c.session, session, stream.rstCode)}`)
      })
    })

  const connect = h2 ? connectH2 : connectHttp1

  const connectAll = async (): Promise<ConnectSummary> => {
    const started = performance.now()
    const failures: Record<string, number> = {}
    let ok = 0
    for (let i = 0; i < conns.length; i += batchSize) {
      const batch = conns.slice(i, i + batchSize)
      const results = await Promise.all(batch.map(connect))
      for (const r of results) {
        if (r === null) ok++
        else failures[r] = (failures[r] ?? 0) + 1
      }
    }
    const summary = { ms: performance.now() - started, ok, failed: conns.length - ok, failures }
    const over = sessions === undefined ? "" : ` over ${sessions.openSessions()} h2c sessions`
    log(`[loadgen] connected ${ok}/${conns.length}${over} in ${(summary.ms / 1000).toFixed(1)} s`)
    return summary
  }

  const stats = (): LoadGenStats => ({
    open,
    sessionsOpen: sessions?.openSessions() ?? 0,
    sessionsOpened: sessions?.opened ?? 0,
    sessionErrors: { ...sessions?.errors },
    connects,
    txEvents,
    txBytes,
    heartbeats,
    disconnects: { ...disconnects },
    exactEvents,
    wildcardEvents,
    latency: latency.toJSON(),
    negativeLatencies: negative,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    samples: { ...samples },
  })

  let metricsServer: http.Server | undefined
  if (options.metricsPort !== undefined) {
    const registry = new Registry()
    new Gauge({
      name: "loadgen_streams_open",
      help: "Open SSE streams.",
      registers: [registry],
      collect() {
        this.set(open)
      },
    })
    new Counter({
      name: "loadgen_tx_events_total",
      help: "tx frames received.",
      registers: [registry],
      collect() {
        this.reset()
        this.inc(txEvents)
      },
    })
    new Counter({
      name: "loadgen_disconnects_total",
      help: "Streams ended, by reason.",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset()
        for (const [k, v] of Object.entries(disconnects)) this.labels(k).inc(v)
      },
    })
    new Gauge({
      name: "loadgen_latency_ms",
      help: "Commit→receive latency quantiles since the last reset.",
      labelNames: ["quantile"],
      registers: [registry],
      collect() {
        for (const q of [0.5, 0.9, 0.99, 0.999]) this.labels(String(q)).set(latency.quantile(q))
      },
    })
    metricsServer = http.createServer(async (_req, res) => {
      res.writeHead(200, { "content-type": registry.contentType })
      res.end(await registry.metrics())
    })
    metricsServer.listen(options.metricsPort, "127.0.0.1")
  }

  return {
    connectAll,
    resetLatency: () => {
      latency.reset()
      loopDelay.reset()
      negative = 0
    },
    stats,
    received: () => {
      const out = new Map<string, number[]>()
      conns.forEach((c, i) => {
        if (c.xids === null) return
        const key = c.wildcard ? `${c.spec.path}#${i}` : c.spec.path
        const prev = out.get(key)
        if (prev === undefined) out.set(key, c.xids.slice())
        else prev.push(...c.xids)
      })
      return out
    },
    stopReconnecting: () => {
      reconnect = false
      for (const t of timers) clearTimeout(t)
      timers.clear()
    },
    openCount: () => open,
    close: async () => {
      closing = true
      reconnect = false
      loopDelay.disable()
      for (const t of timers) clearTimeout(t)
      timers.clear()
      for (const c of conns) c.req?.destroy()
      sessions?.close()
      metricsServer?.close()
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Channel list syntax for the CLI and the bench: "orders/1-9990,orders/all*10,orders/42"

export const expandChannels = (list: string): string[] => {
  const out: string[] = []
  for (const part of list.split(",").map((p) => p.trim())) {
    if (part === "") continue
    const star = /^(.*)\*(\d+)$/.exec(part)
    const item = star ? star[1]! : part
    const times = star ? Number(star[2]) : 1
    const range = /^([a-z_][a-z0-9_]*)\/(\d+)-(\d+)$/.exec(item)
    for (let t = 0; t < times; t++) {
      if (range) for (let k = Number(range[2]); k <= Number(range[3]); k++) out.push(`/sse/v1/${range[1]}/${k}`)
      else out.push(`/sse/v1/${item}`)
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Child-process mode (forked by the bench with an IPC channel) and CLI mode.

type ChildMessage =
  | { type: "start"; options: Omit<LoadGenOptions, "log"> }
  | { type: "reset" }
  | { type: "stats"; id: number }
  | { type: "received"; id: number }
  | { type: "noReconnect" }
  | { type: "close"; id: number }

const runChild = () => {
  let lg: LoadGen | undefined
  const send = (m: unknown) => process.send?.(m)
  process.on("message", async (m: ChildMessage) => {
    switch (m.type) {
      case "start":
        lg = startLoadGen({ ...m.options, log: (l) => send({ type: "log", line: l }) })
        send({ type: "opened", summary: await lg.connectAll() })
        break
      case "reset":
        lg?.resetLatency()
        break
      case "stats":
        send({ type: "stats", id: m.id, stats: lg?.stats() })
        break
      case "received": {
        const r = lg?.received() ?? new Map()
        send({ type: "received", id: m.id, received: [...r.entries()] })
        break
      }
      case "noReconnect":
        lg?.stopReconnecting()
        break
      case "close":
        await lg?.close()
        send({ type: "closed", id: m.id })
        setTimeout(() => process.exit(0), 50)
        break
    }
  })
  process.on("disconnect", () => process.exit(0))
}

const runCli = async () => {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8080" },
      channels: { type: "string", default: "orders/1-9990,orders/all*10" },
      tokens: { type: "string", default: "bench-alice,bench-bob" },
      duration: { type: "string", default: "60" },
      batch: { type: "string", default: "250" },
      protocol: { type: "string", default: "http1" },
      "streams-per-session": { type: "string", default: "100" },
      "local-addresses": { type: "string" },
      "metrics-port": { type: "string" },
      help: { type: "boolean", default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`Usage: node testbench/load/loadgen.ts [--url http://127.0.0.1:8080]
  [--channels "orders/1-9990,orders/all*10"] [--tokens bench-alice,bench-bob] [--duration 60]
  [--batch 250] [--local-addresses 127.0.0.1,127.0.0.2] [--metrics-port 9401]
  [--protocol http1|h2c] [--streams-per-session 100]
Streams are assigned tokens round-robin. With --protocol h2c the streams share HTTP/2 sessions (prior knowledge),
assigned round-robin, and the sessions are spread over --local-addresses. Prints a line every 5 s and a summary.
`)
    return
  }
  if (values.protocol !== "http1" && values.protocol !== "h2c") throw new Error("--protocol must be http1 or h2c")
  const tokens = values.tokens.split(",")
  const streams = expandChannels(values.channels).map((path, i) => ({ path, token: tokens[i % tokens.length]! }))
  const lg = startLoadGen({
    url: values.url,
    streams,
    batchSize: Number(values.batch),
    protocol: values.protocol,
    streamsPerSession: Number(values["streams-per-session"]),
    localAddresses: values["local-addresses"]?.split(","),
    metricsPort: values["metrics-port"] === undefined ? undefined : Number(values["metrics-port"]),
    recordXids: false,
    log: (l) => process.stdout.write(`${l}\n`),
  })
  const stop = async () => {
    await lg.close()
    process.exit(0)
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
  await lg.connectAll()
  const started = Date.now()
  let last = 0
  const timer = setInterval(() => {
    const s = lg.stats()
    const h = Histogram.fromJSON(s.latency).summary()
    process.stdout.write(
      `[loadgen] open=${s.open}${s.sessionsOpened > 0 ? ` sessions=${s.sessionsOpen}` : ""} tx/s=${((s.txEvents - last) / 5).toFixed(0)} p50=${h.p50Ms.toFixed(1)}ms ` +
        `p99=${h.p99Ms.toFixed(1)}ms disconnects=${JSON.stringify(s.disconnects)}\n`,
    )
    last = s.txEvents
  }, 5000)
  await new Promise((r) => setTimeout(r, Number(values.duration) * 1000))
  clearInterval(timer)
  const s = lg.stats()
  process.stdout.write(
    `${JSON.stringify({ ...s, latency: Histogram.fromJSON(s.latency).summary(), elapsedS: (Date.now() - started) / 1000 }, null, 2)}\n`,
  )
  await stop()
}

if (import.meta.main) {
  if (process.send !== undefined && process.argv.includes("--ipc")) runChild()
  else await runCli()
}
