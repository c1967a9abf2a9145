// The soak's SSE clients, run as a child process of the soak so that parsing thousands of streams
// does not delay the writer's or the auth backend's clocks. Each client reconnects the way
// EventSource does (after the last `retry:` it was given, no extra jitter), and records every
// request: timings, status, raw frames. The parent reads the records back as NDJSON.
import { createWriteStream } from "node:fs"
import http from "node:http"
import { canonical } from "./schema.ts"
import { SseParser } from "./sse.ts"
import type { FrameRec, Json, StreamRec } from "./types.ts"

export type Behaviour = "steady" | "churn" | "slow" | "staller" | "hangup" | "all" | "storm"

export interface ClientsOptions {
  readonly clients: number
  readonly hot: number
  readonly seed: number
  readonly resume: boolean
  /** A pause at least this long may have filled the socket (http.write_timeout / 2). */
  readonly stallMs: number
}

export type ToClients =
  | { readonly type: "start"; readonly options: ClientsOptions }
  | { readonly type: "pool"; readonly instances: ReadonlyArray<{ id: string; url: string }> }
  | { readonly type: "storm"; readonly n: number }
  | { readonly type: "finish" }
  | { readonly type: "dump"; readonly path: string }

export type FromClients =
  | { readonly type: "finished"; readonly open: number }
  | { readonly type: "dumped"; readonly streams: number }
  | { readonly type: "stats"; readonly open: number; readonly requests: number }
  | { readonly type: "log"; readonly line: string }

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)))

/** Deterministic per-run randomness (mulberry32). */
export const seeded = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface ClientSpec {
  readonly id: number
  readonly behaviour: Behaviour
  readonly user: string
  readonly table: string
  readonly pk: string | null
}

const BIG_FRAME = 4096

/** Who subscribes to what: mostly single orders, a few /all streams, some line items, a stalled attachments reader. */
export const planClients = (options: ClientsOptions, random: () => number): ClientSpec[] => {
  const specs: ClientSpec[] = []
  const rowUsers = ["alice", "bob", "carol", "dave", "frank", "hana", "erin"]
  const add = (behaviour: Behaviour, user: string, table: string, pk: string | null) =>
    specs.push({ id: specs.length + 1, behaviour, user, table, pk })
  for (const user of ["alice", "bob", "carol", "dave", "erin"]) add("all", user, "orders", null)
  add("all", "erin", "line_items", null)
  add("all", "alice", "line_items", null)
  add("staller", "alice", "attachments", null)
  if (options.clients >= 200) add("staller", "alice", "attachments", null)
  const hotPk = () => String(1 + Math.floor(random() * options.hot))
  while (specs.length < options.clients) {
    const r = random()
    const user = rowUsers[specs.length % rowUsers.length]!
    if (r < 0.04) add("hangup", "hana", "orders", hotPk())
    else if (r < 0.19) add("churn", user, "orders", hotPk())
    else if (r < 0.27) add("slow", user, "orders", hotPk())
    else if (r < 0.32) {
      const order = 1 + Math.floor(random() * options.hot)
      add(
        "steady",
        random() < 0.5 ? "erin" : "alice",
        "line_items",
        String((order - 1) * 2 + 1 + Math.floor(random() * 2)),
      )
    } else add("steady", user, "orders", hotPk())
  }
  return specs
}

export const runClients = (send: (m: FromClients) => void) => {
  let options: ClientsOptions | null = null
  let random = Math.random
  let pool: ReadonlyArray<{ id: string; url: string }> = []
  let finishing = false
  const records: StreamRec[] = []
  const live = new Set<{ close: () => void; resume: () => void }>()
  const log = (line: string) => send({ type: "log", line })

  const pickInstance = () => (pool.length === 0 ? undefined : pool[Math.floor(random() * pool.length)])

  /** One request; resolves when the handshake failed or the stream ended. */
  const openOnce = (
    spec: ClientSpec,
    attempt: number,
    target: { id: string; url: string },
    state: { lastEventId: string | null; retryMs: number },
  ): Promise<StreamRec> =>
    new Promise((resolve) => {
      const id = `soak-${spec.id}-${attempt}`
      const token = `soak.${spec.user}.${spec.id}.${attempt}`
      const path = `/sse/v1/${spec.table}/${spec.pk ?? "all"}`
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, "x-request-id": id }
      const lastEventIdSent = options?.resume === true ? state.lastEventId : null
      if (lastEventIdSent !== null) headers["last-event-id"] = lastEventIdSent
      const rec: StreamRec = {
        id,
        client: spec.id,
        behaviour: spec.behaviour,
        path,
        table: spec.table,
        pk: spec.pk,
        user: spec.user,
        token,
        instance: target.id,
        lastEventIdSent,
        tReq: now(),
        tSent: null,
        tHdr: null,
        status: 0,
        contentType: null,
        retryAfter: null,
        body: null,
        abortedByClient: false,
        frames: [],
        heartbeats: 0,
        maxPauseMs: 0,
        stallFrom: null,
        end: null,
      }
      records.push(rec)
      let done = false
      let closedByUs = false
      let final = false
      const timers: NodeJS.Timeout[] = []
      let pausedAt: number | null = null
      let resumeReading = () => {}
      const handle = {
        close: () => {
          final = true
          closedByUs = true
          req.destroy()
        },
        resume: () => resumeReading(),
      }
      live.add(handle)
      const finish = (by: "client" | "server" | "error") => {
        if (done) return
        done = true
        for (const t of timers) clearTimeout(t)
        live.delete(handle)
        rec.end = { t: now(), by: closedByUs ? "client" : by, final }
        resolve(rec)
      }
      const req = http.get(`${target.url}${path}`, { headers, agent: false }, (res) => {
        rec.tHdr = now()
        rec.status = res.statusCode ?? 0
        rec.contentType = res.headers["content-type"] ?? null
        rec.retryAfter = (res.headers["retry-after"] as string | undefined) ?? null
        if (rec.status !== 200) {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (c: string) => {
            if (body.length < 500) body += c
          })
          res.on("end", () => {
            rec.body = body.slice(0, 500)
            finish("server")
          })
          res.on("error", () => finish("error"))
          res.on("close", () => finish("server"))
          return
        }
        if (spec.behaviour === "hangup") {
          rec.abortedByClient = true
          closedByUs = true
          req.destroy()
          finish("client")
          return
        }
        resumeReading = () => {
          if (pausedAt === null) return
          const pauseMs = now() - pausedAt
          rec.maxPauseMs = Math.max(rec.maxPauseMs, pauseMs)
          if (pauseMs >= (options?.stallMs ?? 2500) && rec.stallFrom === null) rec.stallFrom = pausedAt
          pausedAt = null
          if (!done) res.resume()
        }
        const parser = new SseParser()
        res.on("data", (chunk: Buffer) => {
          const t = now()
          for (const b of parser.push(chunk)) {
            if (b.retry !== undefined) state.retryMs = b.retry
            if (b.comment) {
              rec.heartbeats++
              continue
            }
            if (b.event === undefined && b.data === undefined) {
              if (b.retry !== undefined) rec.frames.push({ t, event: "retry", retry: b.retry })
              continue
            }
            if (b.id !== undefined) state.lastEventId = b.id
            const event = b.event ?? "message"
            let frame: FrameRec = {
              t,
              event,
              ...(b.id === undefined ? {} : { id: b.id }),
              ...(b.data === undefined ? {} : { data: b.data }),
              ...(b.retry === undefined ? {} : { retry: b.retry }),
            }
            if (event === "tx" && b.data !== undefined && b.data.length > BIG_FRAME) {
              try {
                frame = { ...frame, data: JSON.stringify(canonical(JSON.parse(b.data) as Json)), canon: true }
              } catch {
                frame = { ...frame, data: b.data.slice(0, BIG_FRAME) }
              }
            }
            rec.frames.push(frame)
          }
        })
        res.on("end", () => finish("server"))
        res.on("error", () => finish("error"))
        res.on("close", () => finish(res.complete ? "server" : "error"))
        // Behaviours that act on an open stream.
        if (spec.behaviour === "churn" || spec.behaviour === "storm") {
          const hold = spec.behaviour === "storm" ? 3000 + random() * 5000 : 5000 + random() * 35_000
          timers.push(
            setTimeout(() => {
              closedByUs = true
              req.destroy()
            }, hold),
          )
        }
        if (spec.behaviour === "slow" || spec.behaviour === "staller") {
          const pauseLoop = async () => {
            while (!done) {
              await sleep(spec.behaviour === "staller" ? 5000 + random() * 10_000 : 3000 + random() * 9000)
              if (done) return
              // A staller stops reading for good: Walera must drop it (slow_consumer) once the socket is full.
              const pauseMs = spec.behaviour === "staller" ? 3_600_000 : 500 + random() * 3500
              pausedAt = now()
              res.pause()
              await sleep(pauseMs)
              resumeReading()
            }
          }
          void pauseLoop()
        }
      })
      req.on("finish", () => {
        rec.tSent = now()
      })
      req.on("error", () => finish("error"))
      req.on("close", () => {
        if (rec.status === 0) finish(closedByUs ? "client" : "error")
      })
      if (spec.behaviour === "hangup" || (spec.behaviour === "storm" && random() < 0.2)) {
        // Hang up mid-handshake (usually while the auth call runs).
        timers.push(
          setTimeout(() => {
            if (rec.tHdr !== null) return
            rec.abortedByClient = true
            closedByUs = true
            req.destroy()
          }, random() * 40),
        )
      }
    })

  const runClient = async (spec: ClientSpec) => {
    const state = { lastEventId: null as string | null, retryMs: 15_000 }
    let attempt = 0
    await sleep(random() * 3000)
    while (!finishing) {
      const target = pickInstance()
      if (target === undefined) {
        await sleep(300)
        continue
      }
      const rec = await openOnce(spec, ++attempt, target, state)
      if (finishing || spec.behaviour === "storm") return
      let delay: number
      if (rec.abortedByClient) delay = 1000 + random() * 3000
      else if (rec.status === 200)
        delay = rec.end?.by === "client" ? 500 + random() * 2500 : state.retryMs // obey retry:, as EventSource does
      else if (rec.status === 0) delay = 1000
      else if (rec.status === 401 || rec.status === 403 || rec.status === 404) delay = 10_000
      else delay = rec.retryAfter !== null && /^\d+$/.test(rec.retryAfter) ? Number(rec.retryAfter) * 1000 : 5000
      const until = now() + delay
      while (!finishing && now() < until) await sleep(Math.min(250, until - now()))
    }
  }

  let nextStormId = 1_000_000
  const receive = async (m: ToClients) => {
    if (m.type === "start") {
      options = m.options
      random = seeded(m.options.seed)
      const specs = planClients(m.options, random)
      log(`${specs.length} clients planned`)
      for (const s of specs) void runClient(s)
      setInterval(() => send({ type: "stats", open: live.size, requests: records.length }), 5000).unref()
    } else if (m.type === "pool") pool = m.instances
    else if (m.type === "storm") {
      const users = ["hana", "alice", "bob"]
      for (let i = 0; i < m.n; i++) {
        const pk = String(1 + Math.floor(random() * (options?.hot ?? 100)))
        void runClient({ id: nextStormId++, behaviour: "storm", user: users[i % users.length]!, table: "orders", pk })
      }
    } else if (m.type === "finish") {
      finishing = true
      // Paused readers read what is waiting for them first, so the last transactions are not lost to the close.
      for (const h of live) h.resume()
      await sleep(2000)
      for (const h of [...live]) h.close()
      const deadline = now() + 10_000
      while (live.size > 0 && now() < deadline) await sleep(50)
      send({ type: "finished", open: live.size })
    } else if (m.type === "dump") {
      const out = createWriteStream(m.path)
      for (const r of records) {
        if (!out.write(`${JSON.stringify(r)}\n`)) await new Promise<void>((r) => out.once("drain", () => r()))
      }
      await new Promise<void>((r) => out.end(r))
      send({ type: "dumped", streams: records.length })
    }
  }
  return receive
}

if (process.send !== undefined && process.argv.includes("--child")) {
  const send = (m: FromClients) => process.send?.(m)
  const receive = runClients(send)
  process.on("message", (m: ToClients) => void receive(m))
  process.on("disconnect", () => process.exit(0))
}
