// Plain Node SSE servers (no Walera, no Effect) used as the bench's yardsticks: node:http for HTTP/1.1 and the
// node:http2 core API for prior-knowledge h2c. Each holds the same streams and fans out pre-built frames of Walera's
// sizes at the same rate, so memory per stream and CPU can be compared with Walera in one run.
import http from "node:http"
import http2 from "node:http2"
import { parseArgs } from "node:util"

/** Where a held stream's bytes go: a ServerResponse (HTTP/1.1) or a ServerHttp2Stream (h2c). */
interface Out {
  write(chunk: Buffer): boolean
}

interface Sub {
  readonly out: Out
  readonly token: string
  lastWrite: number
  /** position in Fanout.all, kept so a close removes the stream in O(1) */
  slot: number
}

export type BaselineProtocol = "http1" | "h2c"

export interface BaselineRun {
  /** transactions per second; each goes to the exact streams of one random pk and to every /all stream */
  readonly rate: number
  readonly durationSec: number
  /** sample Walera frames keyed "exact:<token>" / "all:<token>" (see loadgen samples) */
  readonly samples: Record<string, string>
  readonly pks: ReadonlyArray<string>
}

export interface BaselineResult {
  readonly txs: number
  readonly deliveries: number
  readonly bytes: number
  readonly heartbeats: number
  /** most heartbeats written in one sweep tick: shows they are spread rather than sent in bursts */
  readonly heartbeatsPerTickMax: number
  readonly seconds: number
}

const HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
  "x-content-type-options": "nosniff",
}
const RETRY = Buffer.from("retry: 15000\n\n")
const HEARTBEAT = Buffer.from(":\n\n")
const HEARTBEAT_INTERVAL_MS = 15_000
/**
 * Each stream is checked once a second, a twentieth of them every 50 ms: at 100 000 streams the ~6 700 heartbeats a
 * second leave in slices of ~330 instead of one burst that would delay the transactions queued behind it. A slice is
 * every twentieth stream, not a contiguous run: streams opened one after the other fall due one after the other, so
 * a contiguous run of them would all beat in the same tick (4 900 in one tick at 100 000 streams).
 */
const SWEEP_TICK_MS = 50
const SWEEP_PERIOD_MS = 1000
const SWEEP_SLICES = SWEEP_PERIOD_MS / SWEEP_TICK_MS
const DEFAULT_FRAME = `event: tx\nid: 1\ndata: {"tx_id":1,"commit_ts":"2026-01-01T00:00:00.000000Z","changes":[]}\n\n`
const SSE_PATH = /^\/sse\/v1\/([a-z_][a-z0-9_]*)\/([^/?]+)/

/** Splits a sample frame into the part after commit_ts's value, so new ids and timestamps can be spliced in. */
const tailOf = (frame: string): string => {
  const at = frame.indexOf('"commit_ts":"')
  if (at < 0) return tailOf(DEFAULT_FRAME)
  return frame.slice(frame.indexOf('"', at + 13))
}

const commitTs = (): string => {
  const t = performance.timeOrigin + performance.now()
  const iso = new Date(Math.floor(t)).toISOString()
  return `${iso.slice(0, 23)}${String(Math.floor((t % 1) * 1000)).padStart(3, "0")}Z`
}

/** The held streams of either protocol and the synthetic transactions sent to them. */
class Fanout {
  readonly exact = new Map<string, Sub[]>()
  readonly wildcard: Sub[] = []
  private readonly all: Sub[] = []
  private sweepTicks = 0
  deliveries = 0
  bytes = 0
  heartbeats = 0
  heartbeatsPerTickMax = 0
  private readonly sweep = setInterval(() => this.heartbeat(), SWEEP_TICK_MS)

  get streams(): number {
    return this.all.length
  }

  /** Registers a stream on `/sse/v1/<table>/<pk>` and returns what to call when it closes. */
  add(out: Out, token: string, pk: string): () => void {
    const sub: Sub = { out, token, lastWrite: Date.now(), slot: this.all.length }
    this.all.push(sub)
    if (pk === "all") this.wildcard.push(sub)
    else {
      let list = this.exact.get(pk)
      if (list === undefined) this.exact.set(pk, (list = []))
      list.push(sub)
    }
    return () => {
      const last = this.all.pop()!
      if (last !== sub) {
        last.slot = sub.slot
        this.all[sub.slot] = last
      }
      if (pk === "all") this.wildcard.splice(this.wildcard.indexOf(sub), 1)
      else {
        const list = this.exact.get(pk)
        if (list !== undefined) {
          list.splice(list.indexOf(sub), 1)
          if (list.length === 0) this.exact.delete(pk)
        }
      }
    }
  }

  private heartbeat(): void {
    const n = this.all.length
    if (n === 0) return
    const before = Date.now() - HEARTBEAT_INTERVAL_MS
    let beats = 0
    for (let i = this.sweepTicks++ % SWEEP_SLICES; i < n; i += SWEEP_SLICES) {
      const s = this.all[i]!
      if (s.lastWrite <= before) {
        s.out.write(HEARTBEAT)
        s.lastWrite = Date.now()
        beats++
      }
    }
    this.heartbeats += beats
    if (beats > this.heartbeatsPerTickMax) this.heartbeatsPerTickMax = beats
  }

  /** Fans out `rate` tx/s for `durationSec` (5 ms ticks, like WAL batches), each encoded once per token as bytes. */
  run(o: BaselineRun): Promise<BaselineResult> {
    const tails = new Map<string, string>()
    for (const [k, v] of Object.entries(o.samples)) tails.set(k, tailOf(v))
    const fallback = tailOf(DEFAULT_FRAME)
    let xid = 1000
    let txs = 0
    const d0 = this.deliveries
    const b0 = this.bytes
    const h0 = this.heartbeats
    this.heartbeatsPerTickMax = 0
    return new Promise((resolve) => {
      const t0 = performance.now()
      let last = t0
      let due = 0
      const tick = () => {
        const now = performance.now()
        if (now - t0 >= o.durationSec * 1000) {
          resolve({
            txs,
            deliveries: this.deliveries - d0,
            bytes: this.bytes - b0,
            heartbeats: this.heartbeats - h0,
            heartbeatsPerTickMax: this.heartbeatsPerTickMax,
            seconds: (now - t0) / 1000,
          })
          return
        }
        due += (o.rate * (now - last)) / 1000
        last = now
        const wall = Date.now()
        while (due >= 1) {
          due -= 1
          xid++
          txs++
          const ts = commitTs()
          const encoded = new Map<string, Buffer>()
          const frame = (kind: string, token: string): Buffer => {
            const key = `${kind}:${token}`
            let b = encoded.get(key)
            if (b === undefined) {
              const tail = tails.get(key) ?? fallback
              b = Buffer.from(`event: tx\nid: ${xid}\ndata: {"tx_id":${xid},"commit_ts":"${ts}${tail}`, "latin1")
              encoded.set(key, b)
            }
            return b
          }
          const pk = o.pks[Math.floor(Math.random() * o.pks.length)]!
          const targets = this.exact.get(pk)
          if (targets !== undefined)
            for (const s of targets) {
              const b = frame("exact", s.token)
              s.out.write(b)
              s.lastWrite = wall
              this.deliveries++
              this.bytes += b.length
            }
          for (const s of this.wildcard) {
            const b = frame("all", s.token)
            s.out.write(b)
            s.lastWrite = wall
            this.deliveries++
            this.bytes += b.length
          }
        }
        setTimeout(tick, 5)
      }
      tick()
    })
  }

  stop(): void {
    clearInterval(this.sweep)
  }
}

const parsePath = (path: string | undefined): { pk: string } | null => {
  const m = SSE_PATH.exec(path ?? "")
  return m === null ? null : { pk: decodeURIComponent(m[2]!) }
}

const tokenOf = (authorization: string | undefined): string => (authorization ?? "").replace(/^Bearer\s+/i, "")

export interface BaselineServer {
  readonly fanout: { readonly streams: number }
  listen(port?: number): Promise<number>
  run(o: BaselineRun): Promise<BaselineResult>
  close(): Promise<void>
}

const listenOn = (server: http.Server | http2.Http2Server, port: number): Promise<number> =>
  new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () => {
      const a = server.address()
      resolve(typeof a === "object" && a !== null ? a.port : 0)
    }),
  )

/** HTTP/1.1 on node:http: one socket per stream. */
export class Http1Baseline implements BaselineServer {
  readonly fanout = new Fanout()
  private readonly server: http.Server

  /**
   * With an auth URL the baseline also makes Walera's per-open auth call (same keep-alive agent
   * settings) before it answers: it shows what that call alone costs in memory.
   */
  private readonly authUrl: URL | undefined
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

  constructor(authUrl?: string) {
    this.authUrl = authUrl === undefined || authUrl === "" ? undefined : new URL(`${authUrl}/auth/sessions`)
    this.server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) =>
      this.authUrl === undefined ? this.handle(req, res) : this.authorize(req, res),
    )
    this.server.maxConnections = 1_000_000
  }

  listen(port = 0): Promise<number> {
    return listenOn(this.server, port)
  }

  private authorize(req: http.IncomingMessage, res: http.ServerResponse): void {
    const call = http.request(
      this.authUrl!,
      {
        method: "POST",
        agent: this.agent,
        headers: { "content-type": "application/json", authorization: req.headers.authorization ?? "" },
      },
      (answer) => {
        let body = ""
        answer.on("data", (c) => {
          body += c
        })
        answer.on("end", () => {
          JSON.parse(body)
          this.handle(req, res)
        })
      },
    )
    call.on("error", () => res.writeHead(503).end())
    call.end(JSON.stringify({ channel: req.url }))
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const p = parsePath(req.url)
    if (p === null || req.method !== "GET") {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, HEADERS)
    res.socket?.setNoDelay(true)
    res.write(RETRY)
    res.on("close", this.fanout.add(res, tokenOf(req.headers.authorization), p.pk))
  }

  run(o: BaselineRun): Promise<BaselineResult> {
    return this.fanout.run(o)
  }

  close(): Promise<void> {
    this.fanout.stop()
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** Prior-knowledge h2c on the node:http2 core API (`respond` + `write`): many streams per connection. */
export class H2Baseline implements BaselineServer {
  readonly fanout = new Fanout()
  private readonly server: http2.Http2Server
  private readonly sessions = new Set<http2.ServerHttp2Session>()

  constructor(maxConcurrentStreams = 1000) {
    this.server = http2.createServer({ settings: { maxConcurrentStreams } })
    this.server.on("session", (session) => {
      this.sessions.add(session)
      session.on("close", () => this.sessions.delete(session))
      session.on("error", () => {})
    })
    this.server.on("stream", (stream, headers) => {
      stream.on("error", () => {})
      const p = parsePath(headers[":path"])
      if (p === null || headers[":method"] !== "GET") {
        stream.respond({ ":status": 404 }, { endStream: true })
        return
      }
      stream.respond({ ":status": 200, ...HEADERS })
      stream.write(RETRY)
      stream.on("close", this.fanout.add(stream, tokenOf(headers.authorization), p.pk))
    })
  }

  listen(port = 0): Promise<number> {
    return listenOn(this.server, port)
  }

  run(o: BaselineRun): Promise<BaselineResult> {
    return this.fanout.run(o)
  }

  close(): Promise<void> {
    this.fanout.stop()
    for (const s of this.sessions) s.destroy()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

type Msg = { type: "listen" } | { type: "run"; run: BaselineRun } | { type: "memory" } | { type: "close" }

/**
 * Standalone: serve until Ctrl-C, fanning out `--rate` tx/s over orders `--pks` (default frames, no PostgreSQL);
 * `--auth-url` makes the HTTP/1.1 server call that auth backend per open, as Walera does.
 */
const runCli = async () => {
  const { values } = parseArgs({
    options: {
      protocol: { type: "string", default: "http1" },
      port: { type: "string", default: "8090" },
      rate: { type: "string", default: "0" },
      pks: { type: "string", default: "1-9990" },
      duration: { type: "string", default: "3600" },
      "auth-url": { type: "string" },
    },
  })
  const server: BaselineServer = values.protocol === "h2c" ? new H2Baseline() : new Http1Baseline(values["auth-url"])
  const port = await server.listen(Number(values.port))
  process.stdout.write(`plain ${values.protocol} SSE server on http://127.0.0.1:${port}\n`)
  const stop = async () => {
    await server.close()
    process.exit(0)
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
  const [from, to] = values.pks.split("-").map(Number)
  const pks = Array.from({ length: to! - from! + 1 }, (_, i) => String(from! + i))
  const timer = setInterval(() => process.stdout.write(`streams=${server.fanout.streams}\n`), 5000)
  if (Number(values.rate) > 0) {
    // wait for the first stream so the load generator sees the whole run
    while (server.fanout.streams === 0) await new Promise((r) => setTimeout(r, 200))
    const r = await server.run({ rate: Number(values.rate), durationSec: Number(values.duration), samples: {}, pks })
    process.stdout.write(`${JSON.stringify(r)}\n`)
  } else await new Promise((r) => setTimeout(r, Number(values.duration) * 1000))
  clearInterval(timer)
  await stop()
}

if (import.meta.main) {
  if (process.send === undefined) await runCli()
  else {
    // Forked by the bench (IPC channel); BASELINE_PROTOCOL=h2c for HTTP/2.
    const server: BaselineServer =
      process.env["BASELINE_PROTOCOL"] === "h2c"
        ? new H2Baseline(Number(process.env["BASELINE_H2_MAX_STREAMS"] || 1000))
        : new Http1Baseline(process.env["BASELINE_AUTH_URL"])
    process.on("message", async (m: Msg) => {
      if (m.type === "listen") process.send?.({ type: "listening", port: await server.listen() })
      else if (m.type === "run") process.send?.({ type: "ran", result: await server.run(m.run) })
      else if (m.type === "memory") process.send?.({ type: "memory", memory: process.memoryUsage() })
      else if (m.type === "close") {
        await server.close()
        process.exit(0)
      }
    })
    process.on("disconnect", () => process.exit(0))
  }
}
