// Plain node:http SSE server (no Walera, no Effect) used as the bench's yardstick: holds the same streams and fans
// out pre-built frames of Walera's sizes at the same rate, so memory per stream and CPU can be compared in one run.
import http from "node:http"

interface Sub {
  readonly res: http.ServerResponse
  readonly token: string
  lastWrite: number
}

export interface BaselineRun {
  /** transactions per second; each goes to the exact streams of one random pk and to every /all stream */
  readonly rate: number
  readonly durationSec: number
  /** sample Walera frames keyed "exact:<token>" / "all:<token>" (see loadgen samples) */
  readonly samples: Record<string, string>
  readonly pks: ReadonlyArray<string>
}

const HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
  "x-content-type-options": "nosniff",
}
const RETRY = Buffer.from("retry: 15000\n\n")
const HEARTBEAT = Buffer.from(":\n\n")
const DEFAULT_FRAME = `event: tx\nid: 1\ndata: {"tx_id":1,"commit_ts":"2026-01-01T00:00:00.000000Z","changes":[]}\n\n`

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

export class BaselineServer {
  readonly exact = new Map<string, Sub[]>()
  readonly wildcard: Sub[] = []
  streams = 0
  deliveries = 0
  bytes = 0
  private readonly server: http.Server
  private readonly sweep: NodeJS.Timeout

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
    this.sweep = setInterval(() => this.heartbeat(), 1000)
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve) =>
      this.server.listen(port, "127.0.0.1", () => {
        const a = this.server.address()
        resolve(typeof a === "object" && a !== null ? a.port : 0)
      }),
    )
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
    const m = /^\/sse\/v1\/([a-z_][a-z0-9_]*)\/([^/?]+)/.exec(req.url ?? "")
    if (m === null || req.method !== "GET") {
      res.writeHead(404).end()
      return
    }
    const token = (req.headers.authorization ?? "").replace(/^Bearer\s+/i, "")
    res.writeHead(200, HEADERS)
    res.socket?.setNoDelay(true)
    res.write(RETRY)
    const sub: Sub = { res, token, lastWrite: Date.now() }
    const pk = decodeURIComponent(m[2]!)
    if (pk === "all") this.wildcard.push(sub)
    else {
      let list = this.exact.get(pk)
      if (list === undefined) this.exact.set(pk, (list = []))
      list.push(sub)
    }
    this.streams++
    res.on("close", () => {
      this.streams--
      if (pk === "all") this.wildcard.splice(this.wildcard.indexOf(sub), 1)
      else {
        const list = this.exact.get(pk)
        if (list !== undefined) {
          list.splice(list.indexOf(sub), 1)
          if (list.length === 0) this.exact.delete(pk)
        }
      }
    })
  }

  private heartbeat(): void {
    const before = Date.now() - 15_000
    const beat = (s: Sub) => {
      if (s.lastWrite <= before) {
        s.res.write(HEARTBEAT)
        s.lastWrite = Date.now()
      }
    }
    for (const list of this.exact.values()) for (const s of list) beat(s)
    for (const s of this.wildcard) beat(s)
  }

  /** Fans out `rate` tx/s for `durationSec` (5 ms ticks, like WAL batches), each encoded once per token as bytes. */
  run(o: BaselineRun): Promise<{ txs: number; deliveries: number; bytes: number; seconds: number }> {
    const tails = new Map<string, string>()
    for (const [k, v] of Object.entries(o.samples)) tails.set(k, tailOf(v))
    const fallback = tailOf(DEFAULT_FRAME)
    let xid = 1000
    let txs = 0
    const d0 = this.deliveries
    const b0 = this.bytes
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
              s.res.write(b)
              s.lastWrite = wall
              this.deliveries++
              this.bytes += b.length
            }
          for (const s of this.wildcard) {
            const b = frame("all", s.token)
            s.res.write(b)
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

  close(): Promise<void> {
    clearInterval(this.sweep)
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

type Msg = { type: "listen" } | { type: "run"; run: BaselineRun } | { type: "memory" } | { type: "close" }

if (import.meta.main) {
  // Forked by the bench: node testbench/bench/baseline.ts (IPC channel)
  const server = new BaselineServer(process.env["BASELINE_AUTH_URL"])
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
