// The attacks of docs/security.md at full size (or --quick size): each says which Walera
// configuration it needs when this tool starts Walera, sends its traffic and describes what it got.
import { fork } from "node:child_process"
import http from "node:http"
import net from "node:net"
import { resolve } from "node:path"
import type pg from "pg"
import type { AuthServer } from "../../test/support/AuthServer.ts"
import { get, metricTotal, type Target, track } from "./target.ts"

export interface AttackContext {
  readonly target: Target
  readonly auth: AuthServer
  readonly db: pg.Pool
  readonly quick: boolean
  readonly say: (line: string) => void
}

export interface AttackResult {
  readonly requests: number
  readonly outcome: string
}

export interface Attack {
  readonly name: string
  readonly what: string
  /** Walera configuration when this tool starts it (a running Walera should be configured alike). */
  readonly env: (quick: boolean) => Readonly<Record<string, string>>
  readonly nodeOptions?: string
  /** limits.global_concurrent small enough to fill afterwards, proving no slot leaked. */
  readonly capCheck?: (quick: boolean) => number
  readonly run: (ctx: AttackContext) => Promise<AttackResult>
}

export const TOKENS = {
  legit: "legit-token",
  slow: "slow-token",
  slow400: "slow400-token",
  fail: "fail-token",
  abuser: "abuser-token",
  pipe: "pipe-token",
} as const

const grant = (user: string) => ({
  user_id: user,
  tables: { orders: ["id", "status"] },
  roots: ["orders"],
  ttl_seconds: 600,
})
export const BACKEND_429_BODY = '{"error":"slow_down","detail":"too many opens for this session"}'

export const configureBackend = (auth: AuthServer): void => {
  auth.answers.set(TOKENS.legit, { status: 200, body: grant("legit") })
  auth.answers.set(TOKENS.slow, { delayMs: 1200, answer: { status: 200, body: grant("slow") } })
  auth.answers.set(TOKENS.slow400, { delayMs: 400, answer: { status: 200, body: grant("slow400") } })
  auth.answers.set(TOKENS.fail, { status: 500, body: "backend failing" })
  auth.answers.set(TOKENS.abuser, { status: 429, body: BACKEND_429_BODY, headers: { "retry-after": "7" } })
  auth.answers.set(TOKENS.pipe, { status: 200, body: grant("piper") })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const streamRequest = (path: string, token: string) =>
  `GET ${path} HTTP/1.1\r\nHost: walera\r\nAuthorization: Bearer ${token}\r\n\r\n`
const callsWith = (auth: AuthServer, token: string) =>
  auth.calls.filter((c) => c.headers.authorization === `Bearer ${token}`).length

interface Sent {
  readonly socket: net.Socket
  readonly answered: () => boolean
}

/** Connects and sends `text`; resolves once it is on its way. */
const send = (target: Target, text: string): Promise<Sent> =>
  new Promise((done) => {
    const socket = net.connect({ host: target.host, port: target.port })
    let answered = false
    socket.on("data", () => {
      answered = true
    })
    socket.on("error", () => {})
    const sent = { socket, answered: () => answered || socket.destroyed }
    socket.once("connect", () => {
      socket.write(text)
      done(sent)
    })
    socket.once("close", () => done(sent))
  })

/**
 * Sends stream requests with `token` and resets every connection once its auth call is at the
 * backend (or Walera answered it), so each hang-up lands during the auth call. Returns how many reached it.
 */
const sendAndHangUp = async (target: Target, auth: AuthServer, token: string, n: number): Promise<number> => {
  const before = callsWith(auth, token)
  const sent = await Promise.all(
    Array.from({ length: n }, () => send(target, streamRequest("/sse/v1/orders/1", token))),
  )
  const deadline = performance.now() + 3000
  while (
    callsWith(auth, token) - before + sent.filter((s) => s.answered()).length < n &&
    performance.now() < deadline
  ) {
    await sleep(10)
  }
  for (const s of sent) s.socket.resetAndDestroy()
  return callsWith(auth, token) - before
}

interface OpenAnswer {
  readonly status: number
  readonly retryAfter: string | undefined
}

const openOnce = (target: Target, token: string, id: string): Promise<OpenAnswer> =>
  new Promise((done) => {
    const req = http.get(
      `${target.url}/sse/v1/orders/1`,
      { agent: false, headers: { authorization: `Bearer ${token}`, "x-request-id": id } },
      (res) => {
        done({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] })
        res.destroy()
      },
    )
    req.setTimeout(30_000, () => req.destroy())
    req.on("error", () => done({ status: 0, retryAfter: undefined }))
  })

/** n opens, `concurrency` at a time (n = all at once); "200×3, 503 (Retry-After 1)×7". */
const openMany = async (target: Target, token: string, n: number, concurrency = n): Promise<string> => {
  const tally = new Map<string, number>()
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      const a = await openOnce(target, token, `attack-${i}`)
      const key =
        a.status === 0
          ? "no answer"
          : a.retryAfter === undefined
            ? `${a.status}`
            : `${a.status} (Retry-After ${a.retryAfter})`
      tally.set(key, (tally.get(key) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker))
  return [...tally]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}×${v}`)
    .join(", ")
}

const breakerState = async (target: Target) =>
  metricTotal((await get(`${target.adminUrl}/metrics`)).body, "walera_auth_circuit_breaker_state")

const abort: Attack = {
  name: "abort",
  what: "connections that reset right after sending a stream request, while the auth call (1.2 s) runs",
  env: (quick) => ({ WALERA_LIMITS_GLOBAL_CONCURRENT: quick ? "100" : "1000", WALERA_AUTH_REQUEST_TIMEOUT: "5s" }),
  capCheck: (quick) => (quick ? 100 : 1000),
  run: async ({ target, auth, quick }) => {
    const n = quick ? 100 : 1000
    let reached = 0
    for (let i = 0; i < n; i += 250) reached += await sendAndHangUp(target, auth, TOKENS.slow, Math.min(250, n - i))
    const deadline = performance.now() + 10_000
    while (auth.load.inFlight > 0 && performance.now() < deadline) await sleep(100)
    return { requests: n, outcome: `${reached} hung up while their auth call was at the backend` }
  },
}

const slowBackend: Attack = {
  name: "slow-backend",
  what: "concurrent opens against a healthy auth backend that takes 400 ms",
  // --quick: fewer opens, and a shorter timeout so that the same queueing would show.
  env: (quick) => ({ WALERA_AUTH_REQUEST_TIMEOUT: quick ? "1s" : "2s" }),
  run: async ({ target, auth, quick }) => {
    const n = quick ? 1000 : 2500
    const got = await openMany(target, TOKENS.slow400, n)
    return {
      requests: n,
      outcome: `${got}; backend max in flight ${auth.load.maxInFlight}; breaker ${await breakerState(target)}`,
    }
  },
}

const probeHangup: Attack = {
  name: "probe-hangup",
  what: "breaker opened by a failing backend, then ~4 clients/s hanging up while their open is the half-open probe",
  env: (quick) => ({ WALERA_AUTH_BREAKER_COOLDOWN: quick ? "2s" : "5s", WALERA_AUTH_REQUEST_TIMEOUT: "5s" }),
  run: async ({ target, auth, quick }) => {
    let failures = 0
    while ((await breakerState(target)) !== 1 && failures < 200) {
      await openOnce(target, TOKENS.fail, `fail-${failures++}`)
    }
    const seconds = quick ? 10 : 30
    const until = performance.now() + seconds * 1000
    let hangups = 0
    let probes = 0
    const pending: Array<Promise<void>> = []
    while (performance.now() < until) {
      pending.push(
        sendAndHangUp(target, auth, TOKENS.slow, 1).then((reached) => {
          probes += reached
        }),
      )
      hangups++
      await sleep(250)
    }
    await Promise.all(pending)
    return {
      requests: failures + hangups,
      outcome: `breaker opened after ${failures} failing opens; ${hangups} hang-ups over ${seconds} s, ${probes} of them during their probe call; breaker at the end ${await breakerState(target)}`,
    }
  },
}

const backend429: Attack = {
  name: "backend-429",
  what: "one abusive client the backend answers 429 (Retry-After 7), 50 opens at a time",
  env: () => ({}),
  run: async ({ target, quick }) => {
    const n = quick ? 300 : 3000
    const got = await openMany(target, TOKENS.abuser, n, 50)
    return { requests: n, outcome: `${got}; breaker ${await breakerState(target)}` }
  },
}

/** Waits until Walera decoded a transaction committed after the attack (or exited); seconds taken, or undefined. */
const settleWal = async (ctx: AttackContext, timeoutMs: number): Promise<number | undefined> => {
  const started = Date.now()
  const decoded = async () =>
    metricTotal((await get(`${ctx.target.adminUrl}/metrics`)).body, "walera_wal_transactions_total")
  const before = await decoded()
  await ctx.db.query("UPDATE orders SET status = 'settle' WHERE id = 10")
  while (Date.now() - started < timeoutMs && ctx.target.alive()) {
    if ((await decoded()) > before) return (Date.now() - started) / 1000
    await sleep(250)
  }
  return undefined
}

const exitNote = (target: Target) => {
  const lines = target
    .outputTail()
    .split("\n")
    .filter((l) => /Error|error/.test(l))
  return `EXITED with code ${target.exitCode()}: ${(lines.at(-1) ?? "").slice(0, 160)}`
}

const hugeValue: Attack = {
  name: "huge-value",
  what: "INSERT INTO audit(what) VALUES (repeat(chr(1), 90000000)), a table nobody subscribes to",
  env: () => ({}),
  run: async (ctx) => {
    const size = 90_000_000
    const started = Date.now()
    await ctx.db.query(`INSERT INTO audit (what) VALUES (repeat(chr(1), ${size}))`)
    const settled = await settleWal(ctx, 120_000)
    const outcome = !ctx.target.alive()
      ? exitNote(ctx.target)
      : settled === undefined
        ? "alive, but the next transaction was not decoded within 120 s"
        : `alive; decoded within ${Math.round((Date.now() - started) / 100) / 10} s of the INSERT`
    return { requests: 1, outcome: `${Math.round(size / 1e6)} MB value: ${outcome}` }
  },
}

const hiddenBytes: Attack = {
  name: "hidden-bytes",
  what: "one transaction of 300 × 1 MB into a column no grant shows, Walera on a 256 MB heap",
  env: () => ({}),
  nodeOptions: "--max-old-space-size=256",
  run: async (ctx) => {
    const n = ctx.quick ? 100 : 300
    // A subscriber of the row the transaction touches: it must be told (tx_too_large), not fed.
    let head = ""
    let tail = ""
    const req = http.get(
      `${ctx.target.url}/sse/v1/orders/2`,
      { agent: false, headers: { authorization: `Bearer ${TOKENS.legit}` } },
      (res) => {
        res.setEncoding("utf8")
        res.on("data", (c: string) => {
          if (head.length < 65_536) head += c.slice(0, 65_536 - head.length)
          tail = (tail + c).slice(-4000)
        })
        res.on("error", () => {})
      },
    )
    req.on("error", () => {})
    await sleep(500)
    await ctx.db.query(`DO $$ BEGIN
      FOR i IN 1..${n} LOOP
        UPDATE orders SET status = 'hidden-' || i, secret_note = repeat(chr(65 + i % 26), 1000000) || i WHERE id = 2;
      END LOOP; END $$`)
    const settled = await settleWal(ctx, 120_000)
    req.destroy()
    const events = [...`${head}\n\n${tail}`.matchAll(/event: (\w+)\n(?:id: \d+\n)?data: ([^\n]{0,60})/g)]
    const last = events.at(-1)
    const told = last === undefined ? "nothing" : last[1] === "error" ? `error ${last[2]}` : `${last[1]} frames`
    const outcome = !ctx.target.alive()
      ? exitNote(ctx.target)
      : settled === undefined
        ? "alive, but the next transaction was not decoded within 120 s"
        : "alive"
    return { requests: 1, outcome: `${n} MB in one transaction: ${outcome}; the touched stream got: ${told}` }
  },
}

const pipelining: Attack = {
  name: "pipelining",
  what: "stream requests pipelined on one HTTP/1.1 connection",
  env: () => ({}),
  run: async ({ target, auth, quick }) => {
    const n = quick ? 2000 : 20_000
    const before = callsWith(auth, TOKENS.pipe)
    const socket = net.connect({ host: target.host, port: target.port })
    let received = 0
    let closedAfter: number | undefined
    const started = Date.now()
    socket.on("data", (c: Buffer) => {
      received += c.length
    })
    socket.on("error", () => {})
    socket.once("close", () => {
      closedAfter = (Date.now() - started) / 1000
    })
    await new Promise<void>((r) => socket.once("connect", () => r()))
    socket.write(streamRequest("/sse/v1/orders/1", TOKENS.pipe).repeat(n))
    const deadline = performance.now() + 15_000
    while (closedAfter === undefined && performance.now() < deadline) await sleep(100)
    const byWalera = closedAfter
    socket.destroy()
    await sleep(1000)
    const closed = byWalera === undefined ? "still open after 15 s" : `closed by Walera after ${byWalera} s`
    return {
      requests: n,
      outcome: `${callsWith(auth, TOKENS.pipe) - before} auth calls; ${received} bytes back; connection ${closed}`,
    }
  },
}

interface HolderReport {
  readonly opened: number
  readonly closedByServer: number
  readonly failed: number
  readonly firstCloseMs: number
  readonly held: number
}

const halfHeaders: Attack = {
  name: "half-headers",
  what: "connections that send half a request header and wait (several processes: ulimit -n bounds each)",
  env: (quick) => ({ WALERA_HTTP_MAX_CONNECTIONS: quick ? "1500" : "15000" }),
  run: async ({ target, quick, say }) => {
    const n = quick ? 2000 : 20_000
    const perChild = 5000
    const holdSeconds = quick ? 15 : 30
    const children = Array.from({ length: Math.ceil(n / perChild) }, (_, i) =>
      track(
        fork(
          resolve(import.meta.dirname, "holder.ts"),
          [target.host, String(target.port), String(Math.min(perChild, n - i * perChild))],
          { stdio: ["ignore", "ignore", "inherit", "ipc"] },
        ),
      ),
    )
    const ask = (message: string) =>
      Promise.all(
        children.map(
          (c) =>
            new Promise<HolderReport>((r) => {
              c.once("message", (m) => r(m as HolderReport))
              c.send(message)
            }),
        ),
      )
    const until = performance.now() + holdSeconds * 1000
    while (performance.now() < until) {
      await sleep(5000)
      const reports = await ask("report")
      say(`  half-headers: held ${reports.reduce((a, r) => a + r.held, 0)} of ${n}`)
    }
    const reports = await ask("stop")
    const sum = (f: (r: HolderReport) => number) => reports.reduce((a, r) => a + f(r), 0)
    const firstClose = Math.min(...reports.map((r) => (r.firstCloseMs < 0 ? Number.POSITIVE_INFINITY : r.firstCloseMs)))
    const first = Number.isFinite(firstClose) ? `, first after ${Math.round(firstClose / 100) / 10} s` : ""
    return {
      requests: n,
      outcome: `opened ${sum((r) => r.opened)}, closed by Walera ${sum((r) => r.closedByServer)}${first}, connect failures ${sum((r) => r.failed)}; held for ${holdSeconds} s`,
    }
  },
}

const percentAll: Attack = {
  name: "percent-all",
  what: "/sse/v1/orders/%61ll and a%6Cl, which decode to all (the table stream)",
  env: () => ({}),
  run: async ({ target, auth, quick }) => {
    const paths = ["/sse/v1/orders/%61ll", "/sse/v1/orders/a%6Cl", "/sse/v1/orders/%61%6C%6C"]
    const rounds = quick ? 10 : 100
    const before = auth.calls.filter((c) => c.channel === "orders:all").length
    const tally = new Map<number, number>()
    for (let i = 0; i < rounds; i++) {
      for (const path of paths) {
        const status = await new Promise<number>((done) => {
          const req = http.get(
            `${target.url}${path}`,
            { agent: false, headers: { authorization: `Bearer ${TOKENS.legit}` } },
            (res) => {
              done(res.statusCode ?? 0)
              res.destroy()
            },
          )
          req.on("error", () => done(0))
        })
        tally.set(status, (tally.get(status) ?? 0) + 1)
      }
    }
    const reached = auth.calls.filter((c) => c.channel === "orders:all").length - before
    return {
      requests: rounds * paths.length,
      outcome: `${[...tally].map(([s, v]) => `${s}×${v}`).join(", ")}; backend asked for "orders:all" ${reached} times`,
    }
  },
}

export const ATTACKS: ReadonlyArray<Attack> = [
  abort,
  slowBackend,
  probeHangup,
  backend429,
  hugeValue,
  hiddenBytes,
  pipelining,
  halfHeaders,
  percentAll,
]
