// `npm run bench`: the performance scenario of docs/performance.md end to end — PostgreSQL, auth backend, Walera, writer and SSE load
// generator on one machine — plus a plain node:http baseline, an optional rate sweep and an idle-streams phase.
// Writes bench-results/<timestamp>/report.{md,json} and exits non-zero when events went missing.
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import os from "node:os"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import { type EmbeddedPg, freePort, startEmbeddedPg } from "../../test/support/EmbeddedPg.ts"
import { Histogram, type Summary } from "../load/histogram.ts"
import type { ConnectSummary, LoadGenOptions, LoadGenStats, StreamSpec } from "../load/loadgen.ts"
import { startWriter, type Writer } from "../load/writer.ts"
import type { BaselineResult, BaselineRun } from "./baseline.ts"
import { SCHEMA, seed, startAuth, TOKENS, waleraBenchEnv } from "./fixtures.ts"
import {
  connectionsFor,
  H2_FULL,
  H2_QUICK,
  h2Transport,
  http1Transport,
  openBatch,
  SCENARIOS,
  splitStreams,
  waleraEnv,
} from "./h2.ts"
import { pidsNamed, Sampler, type WindowStats } from "./proc.ts"

const repoRoot = resolve(import.meta.dirname, "../..")
const LOADGEN = join(repoRoot, "testbench/load/loadgen.ts")
const BASELINE = join(repoRoot, "testbench/bench/baseline.ts")
/** The Walera to measure: this checkout, or another one (BENCH_WALERA_ROOT) to compare commits with the same bench. */
const waleraRoot = resolve(process.env["BENCH_WALERA_ROOT"] ?? repoRoot)
const P99_TARGET_MS = 100

const HELP = `Usage: npm run bench -- [options]

  --quick                 2 000 streams, 500 tx/s, 20 s measurement, 5 s warm-up (< 2 minutes)
  --streams N             SSE streams to Walera (default 10000)
  --mix "E:W"             exact orders/{pk} streams : orders/all streams (default N-10:10)
  --rate R                writer transactions per second (default 2000)
  --duration S            measured seconds (default 60)
  --warmup S              warm-up seconds with the writer running (default 10)
  --database-url URL      use this PostgreSQL (DROPS and recreates tables orders, line_items and publication
                          walera_pub) instead of an embedded one
  --idle-streams N        also open N idle streams to a fresh Walera and to the baseline; report RSS per stream
  --find-max              sweep the rate (1000, 2000, …) with short runs; report the highest with p99 < 100 ms
  --step-duration S       measured seconds per sweep step (default 15)
  --no-baseline           skip the plain node:http baseline
  --out DIR               results directory (default bench-results/<timestamp>)
  --drop-one-event        forget one received event, so the run must report it missing and exit 1 (CI's check
                          that a missing event fails the bench)

  --scenario h2-100k      (or --h2) the HTTP/2 scenario over prior-knowledge h2c: 99 990 orders/{pk} + 10 orders/all over
                          1 000 HTTP/2 connections, 1 000 tx/s, 60 s, against a plain node:http2 server;
                          with --quick 5 000 streams over 50 connections, 20 s
  --sessions N            h2c connections (default 1 000, --quick 50); streams are shared evenly among them
  --loadgen-processes N   load generator processes (default: one per 15 000 HTTP/1.1 or 25 000 h2c streams)
`

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    streams: { type: "string" },
    mix: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string" },
    warmup: { type: "string" },
    "database-url": { type: "string" },
    "idle-streams": { type: "string" },
    "find-max": { type: "boolean", default: false },
    "step-duration": { type: "string", default: "15" },
    "no-baseline": { type: "boolean", default: false },
    out: { type: "string" },
    "drop-one-event": { type: "boolean", default: false },
    scenario: { type: "string", default: "spec12" },
    h2: { type: "boolean", default: false },
    sessions: { type: "string" },
    "loadgen-processes": { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
})
if (!(SCENARIOS as ReadonlyArray<string>).includes(args.scenario))
  throw new Error(`--scenario must be one of ${SCENARIOS.join(", ")}, got ${args.scenario}`)
if (args.help) {
  process.stdout.write(HELP)
  process.exit(0)
}

const quick = args.quick
const h2 = args.h2 || args.scenario === "h2-100k"
const h2Defaults = quick ? H2_QUICK : H2_FULL
const streamCount = Number(args.streams ?? (h2 ? h2Defaults.streams : quick ? 2000 : 10_000))
const [exactCount, wildcardCount] = (() => {
  if (args.mix !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(args.mix)
    if (m === null) throw new Error(`--mix must look like 9990:10, got ${args.mix}`)
    return [Number(m[1]), Number(m[2])]
  }
  const w = Math.min(10, streamCount)
  return [streamCount - w, w]
})()
const rate = Number(args.rate ?? (h2 ? h2Defaults.rate : quick ? 500 : 2000))
const duration = Number(args.duration ?? (h2 ? h2Defaults.duration : quick ? 20 : 60))
const warmup = Number(args.warmup ?? (h2 ? h2Defaults.warmup : quick ? 5 : 10))
const idleStreams = args["idle-streams"] === undefined ? 0 : Number(args["idle-streams"])
const stepDuration = Number(args["step-duration"])
const totalStreams = exactCount + wildcardCount
const loadgenProcesses = args["loadgen-processes"] === undefined ? undefined : Number(args["loadgen-processes"])
const transport = h2
  ? h2Transport(totalStreams, Number(args.sessions ?? h2Defaults.sessions), loadgenProcesses)
  : loadgenProcesses === undefined
    ? http1Transport
    : { ...http1Transport, processes: () => loadgenProcesses }
const ordersToSeed = Math.max(10_000, exactCount)
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
const outDir = resolve(repoRoot, args.out ?? join("bench-results", stamp))

const say = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d
const mb = (bytes: number) => round(bytes / 1024 / 1024, 1)

// ---------------------------------------------------------------------------------------------------------------
// Cleanup: every child, server and the embedded PostgreSQL, on normal exit, error, Ctrl-C or SIGTERM.

const cleanups: Array<() => Promise<void> | void> = []
const children = new Set<ChildProcess>()
let cleaning: Promise<void> | undefined
const cleanup = () => {
  cleaning ??= (async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
    for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {})
  })()
  return cleaning
}
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    say(`${sig}: cleaning up`)
    void cleanup().then(() => process.exit(130))
  })
process.once("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
})

const track = (c: ChildProcess) => {
  children.add(c)
  c.once("exit", () => children.delete(c))
  return c
}

// ---------------------------------------------------------------------------------------------------------------
// Walera as a child process

interface WaleraChild {
  readonly child: ChildProcess
  readonly url: string
  readonly log: () => string
  readonly exited: Promise<{ code: number | null; signal: string | null }>
}

/** The NODE_OPTIONS that `npm start` puts before the caller's (package.json), so the bench runs Walera as it ships. */
const startNodeOptions = (root: string): string => {
  const start = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts?: { start?: string } })
    .scripts?.start
  return /NODE_OPTIONS="([^"$]*)/.exec(start ?? "")?.[1]?.trim() ?? ""
}

const startWalera = async (databaseUrl: string, authPort: number): Promise<WaleraChild> => {
  const port = await freePort()
  const child = track(
    spawn(process.execPath, ["src/main.ts"], {
      cwd: waleraRoot,
      env: {
        ...waleraBenchEnv(databaseUrl, authPort, port),
        ...waleraEnv(transport, Math.max(totalStreams, idleStreams)),
        // The V8 flags `npm start` gives Walera, then more for profiling, e.g.
        // BENCH_WALERA_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" (later flags win).
        NODE_OPTIONS: `${startNodeOptions(waleraRoot)} ${process.env["BENCH_WALERA_NODE_OPTIONS"] ?? ""}`.trim(),
        // Extra settings to measure, e.g. BENCH_WALERA_ENV="WALERA_ROUTER_RESUME_WINDOW=60s" (comma-separated K=V).
        ...Object.fromEntries(
          (process.env["BENCH_WALERA_ENV"] ?? "")
            .split(",")
            .filter((kv) => kv.includes("="))
            .map((kv) => [kv.slice(0, kv.indexOf("=")).trim(), kv.slice(kv.indexOf("=") + 1).trim()]),
        ),
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  )
  let out = ""
  const keep = (c: Buffer) => {
    if (out.length < 20_000_000) out += c.toString()
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  )
  const url = `http://127.0.0.1:${port}`
  const deadline = performance.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Walera exited during startup (code ${child.exitCode}):\n${out}`)
    const ok = await fetch(`${url}/healthz`)
      .then((r) => r.status === 200)
      .catch(() => false)
    if (ok) break
    if (performance.now() > deadline) throw new Error(`Walera not streaming after 60 s:\n${out}`)
    await sleep(200)
  }
  return { child, url, log: () => out, exited }
}

const scrape = async (url: string): Promise<Map<string, number>> => {
  const out = new Map<string, number>()
  const text = await fetch(`${url}/metrics`)
    .then((r) => r.text())
    .catch(() => "")
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue
    const sp = line.lastIndexOf(" ")
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)))
  }
  return out
}

const waleraHeap = (url: string) => async () => (await scrape(url)).get("nodejs_heap_size_used_bytes") ?? 0

const delta = (a: Map<string, number>, b: Map<string, number>, key: string) => (b.get(key) ?? 0) - (a.get(key) ?? 0)

/** Upper bucket bound of the q-quantile of a prom-client histogram, from the delta of two scrapes. */
const histQuantile = (a: Map<string, number>, b: Map<string, number>, name: string, q: number) => {
  const buckets: Array<[number, number]> = []
  for (const key of b.keys()) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key)
    if (m) buckets.push([m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), delta(a, b, key)])
  }
  buckets.sort((x, y) => x[0] - y[0])
  const total = buckets.at(-1)?.[1] ?? 0
  for (const [le, n] of buckets) if (n >= q * total) return le
  return Number.NaN
}

const histMean = (a: Map<string, number>, b: Map<string, number>, name: string) => {
  const n = delta(a, b, `${name}_count`)
  return n > 0 ? delta(a, b, `${name}_sum`) / n : 0
}

// ---------------------------------------------------------------------------------------------------------------
// Load generator children (one per 15 000 streams, each on its own source address)

class LoadGenChild {
  readonly child: ChildProcess
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>()
  private nextId = 1
  opened: Promise<ConnectSummary>

  constructor(options: Omit<LoadGenOptions, "log">) {
    this.child = track(
      fork(LOADGEN, ["--ipc"], {
        cwd: repoRoot,
        serialization: "advanced",
        execArgv: ["--max-old-space-size=4096"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }),
    )
    let resolveOpened: (s: ConnectSummary) => void = () => {}
    this.opened = new Promise((r) => {
      resolveOpened = r
    })
    this.child.on("message", (m: Record<string, unknown>) => {
      if (m["type"] === "opened") resolveOpened(m["summary"] as ConnectSummary)
      else if (m["type"] === "log") say(String(m["line"]))
      else {
        const f = this.waiting.get(m["id"] as number)
        this.waiting.delete(m["id"] as number)
        f?.(m)
      }
    })
    this.child.send({ type: "start", options })
  }

  private ask(type: string): Promise<Record<string, unknown>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, resolve)
      this.child.send({ type, id }, (e) => e && reject(e))
    })
  }

  send(type: string): void {
    if (this.child.connected) this.child.send({ type })
  }

  async stats(): Promise<LoadGenStats> {
    return (await this.ask("stats"))["stats"] as LoadGenStats
  }

  async received(): Promise<Array<[string, number[]]>> {
    return (await this.ask("received"))["received"] as Array<[string, number[]]>
  }

  async close(): Promise<void> {
    if (!this.child.connected) return
    await Promise.race([this.ask("close"), sleep(5000)])
    if (this.child.exitCode === null) this.child.kill("SIGKILL")
  }
}

class LoadGenGroup {
  readonly parts: LoadGenChild[]
  constructor(url: string, streams: ReadonlyArray<StreamSpec>, recordXids: boolean, addressOffset = 0) {
    const slices = splitStreams(streams, transport.processes(streams.length), transport)
    const n = slices.length
    this.parts = slices.map(
      (slice, i) =>
        new LoadGenChild({
          url,
          streams: slice,
          recordXids,
          protocol: transport.protocol,
          streamsPerSession: transport.streamsPerSession,
          batchSize: openBatch(transport, n),
          localAddresses: n > 1 || addressOffset > 0 ? [`127.0.0.${2 + addressOffset + i}`] : undefined,
        }),
    )
  }
  pids = () => this.parts.map((p) => p.child.pid ?? 0).filter((p) => p > 0)
  async opened(): Promise<ConnectSummary> {
    const all = await Promise.all(this.parts.map((p) => p.opened))
    const failures: Record<string, number> = {}
    for (const s of all) for (const [k, v] of Object.entries(s.failures)) failures[k] = (failures[k] ?? 0) + v
    return {
      ms: Math.max(...all.map((s) => s.ms)),
      ok: all.reduce((a, s) => a + s.ok, 0),
      failed: all.reduce((a, s) => a + s.failed, 0),
      failures,
    }
  }
  reset = () => {
    for (const p of this.parts) p.send("reset")
  }
  noReconnect = () => {
    for (const p of this.parts) p.send("noReconnect")
  }
  async stats(): Promise<LoadGenStats & { latencySummary: Summary }> {
    const all = await Promise.all(this.parts.map((p) => p.stats()))
    const h = new Histogram()
    for (const s of all) h.merge(Histogram.fromJSON(s.latency))
    const sum = (f: (s: LoadGenStats) => number) => all.reduce((a, s) => a + f(s), 0)
    const disconnects: Record<string, number> = {}
    for (const s of all) for (const [k, v] of Object.entries(s.disconnects)) disconnects[k] = (disconnects[k] ?? 0) + v
    const sessionErrors: Record<string, number> = {}
    for (const s of all)
      for (const [k, v] of Object.entries(s.sessionErrors)) sessionErrors[k] = (sessionErrors[k] ?? 0) + v
    return {
      open: sum((s) => s.open),
      sessionsOpen: sum((s) => s.sessionsOpen),
      sessionsOpened: sum((s) => s.sessionsOpened),
      sessionErrors,
      connects: sum((s) => s.connects),
      txEvents: sum((s) => s.txEvents),
      txBytes: sum((s) => s.txBytes),
      heartbeats: sum((s) => s.heartbeats),
      exactEvents: sum((s) => s.exactEvents),
      wildcardEvents: sum((s) => s.wildcardEvents),
      negativeLatencies: sum((s) => s.negativeLatencies),
      loopDelayP99Ms: Math.max(...all.map((s) => s.loopDelayP99Ms)),
      disconnects,
      samples: Object.assign({}, ...all.map((s) => s.samples)),
      latency: h.toJSON(),
      latencySummary: h.summary(),
    }
  }
  async received(): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>()
    for (const [i, p] of this.parts.entries())
      for (const [k, v] of await p.received()) out.set(k.includes("#") ? `${k}@${i}` : k, v)
    return out
  }
  close = () => Promise.all(this.parts.map((p) => p.close()))
}

const streamSpecs = (exact: number, wildcard: number): StreamSpec[] => {
  const out: StreamSpec[] = []
  for (let pk = 1; pk <= exact; pk++) out.push({ path: `/sse/v1/orders/${pk}`, token: TOKENS[pk % 2]! })
  for (let i = 0; i < wildcard; i++) out.push({ path: "/sse/v1/orders/all", token: TOKENS[i % 2]! })
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Missing-event accounting

interface Missing {
  readonly expected: number
  readonly received: number
  readonly missing: number
  readonly unexpected: number
  readonly examples: string[]
}

const countMissing = (committed: Map<number, number[]>, received: Map<string, number[]>, exact: number): Missing => {
  let expected = 0
  let got = 0
  let missing = 0
  let unexpected = 0
  const examples: string[] = []
  const all = new Set<number>()
  for (const [order, xids] of committed) {
    for (const x of xids) all.add(x)
    if (order > exact) continue
    const r = new Set(received.get(`/sse/v1/orders/${order}`) ?? [])
    expected += xids.length
    for (const x of xids) {
      if (r.has(x)) got++
      else {
        missing++
        if (examples.length < 10) examples.push(`orders/${order} xid ${x}`)
      }
    }
  }
  for (const [key, xids] of received) {
    if (!key.includes("/all#")) continue
    const r = new Set(xids)
    expected += all.size
    for (const x of all) {
      if (r.has(x)) got++
      else {
        missing++
        if (examples.length < 10) examples.push(`${key} xid ${x}`)
      }
    }
    for (const x of r) if (!all.has(x)) unexpected++
  }
  return { expected, received: got, missing, unexpected, examples }
}

/** --drop-one-event: forgets one received xid on one stream, so the run must count it missing and exit 1. */
const dropOneEvent = (received: Map<string, number[]>) => {
  const [key, xids = []] = [...received].find(([, x]) => x.length > 0) ?? []
  const forgotten = xids[0]
  if (key !== undefined)
    received.set(
      key,
      xids.filter((x) => x !== forgotten),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Phases

interface Env {
  readonly pg: EmbeddedPg | undefined
  readonly databaseUrl: string
  readonly auth: Awaited<ReturnType<typeof startAuth>>
  readonly sampler: Sampler
}

interface IdleMemory {
  readonly heapBefore: number
  readonly heapAfter: number
  readonly heapPerStream: number
  readonly streams: number
  readonly connectMs: number
  readonly connectFailures: Record<string, number>
  /** The server's CPU from the first open to the last, per stream opened (Walera's includes the auth call). */
  readonly cpuUsPerOpen: number
  readonly rssBefore: number
  readonly rssAfter: number
  readonly bytesPerStream: number
}

const measureIdle = async (
  sampler: Sampler,
  group: string,
  url: string,
  specs: StreamSpec[],
  recordXids: boolean,
  addressOffset = 0,
  heap: () => Promise<number> = async () => 0,
): Promise<{ lg: LoadGenGroup; idle: IdleMemory }> => {
  await sleep(2000)
  const before = sampler.snapshot().rss[group] ?? 0
  const heapBefore = await heap()
  const cpuBefore = sampler.snapshot().cpu[group] ?? 0
  const lg = new LoadGenGroup(url, specs, recordXids, addressOffset)
  sampler.track(`loadgen_${group}`, lg.pids)
  const opened = await lg.opened()
  const cpuOpening = (sampler.snapshot().cpu[group] ?? 0) - cpuBefore
  say(`${group}: ${opened.ok}/${specs.length} streams open in ${round(opened.ms / 1000)} s`)
  // Nothing to measure: say why (e.g. a server without h2c answers the HTTP/2 preface with a session error).
  if (opened.ok === 0 && specs.length > 0)
    throw new Error(`${group}: no stream could be opened at ${url}: ${JSON.stringify(opened.failures)}`)
  await sleep(3000)
  const after = sampler.snapshot().rss[group] ?? 0
  const heapAfter = await heap()
  return {
    lg,
    idle: {
      heapBefore,
      heapAfter,
      heapPerStream: opened.ok > 0 ? (heapAfter - heapBefore) / opened.ok : 0,
      streams: opened.ok,
      connectMs: round(opened.ms, 0),
      connectFailures: opened.failures,
      cpuUsPerOpen: opened.ok > 0 ? round((cpuOpening * 1e6) / opened.ok, 1) : 0,
      rssBefore: before,
      rssAfter: after,
      bytesPerStream: opened.ok > 0 ? (after - before) / opened.ok : 0,
    },
  }
}

interface RunWindow {
  readonly rateTarget: number
  readonly seconds: number
  readonly txCommitted: number
  readonly txPerSec: number
  readonly writerErrors: number
  readonly writerSkipped: number
  readonly writerCommitP99Ms: number
  readonly deliveries: number
  readonly deliveriesPerSec: number
  readonly heartbeatsPerSec: number
  readonly deliveriesPerTx: number
  readonly latency: Summary
  readonly negativeLatencies: number
  readonly cpu: WindowStats
  readonly waleraCpuUsPerTx: number
  /** PostgreSQL does the same work per transaction in every run: its CPU per transaction measures the box's speed. */
  readonly postgresCpuUsPerTx: number
  readonly waleraCpuUsPerDelivery: number
  readonly waleraTxDecoded: number
  readonly waleraWalLagMeanMs: number
  readonly waleraFanoutMeanMs: number
  /** bucket upper bounds of Walera's own commit→decoded histogram */
  readonly waleraWalLagP50Ms: number
  readonly waleraWalLagP99Ms: number
  readonly loadgenLoopDelayP99Ms: number
  readonly waleraEventLoopLagP99Ms: number
  readonly waleraHeapUsedMb: number
  readonly missing: Missing
}

/** Writer at `rateTarget` for warm-up + measured seconds, then drain; everything measured over the second part. */
const runLoad = async (
  env: Env,
  walera: WaleraChild,
  lg: LoadGenGroup,
  rateTarget: number,
  warmupSec: number,
  measureSec: number,
  exact: number,
): Promise<RunWindow> => {
  const writer: Writer = startWriter({
    databaseUrl: env.databaseUrl,
    rate: rateTarget,
    orderIds: Array.from({ length: exact }, (_, i) => i + 1),
    poolSize: 8,
    log: say,
  })
  const lStart = await lg.stats()
  const stopWriter = () => writer.stop()
  cleanups.push(stopWriter)
  await writer.start()
  say(`writer at ${rateTarget} tx/s: warm-up ${warmupSec} s`)
  await sleep(warmupSec * 1000)
  lg.reset()
  const m0 = await scrape(walera.url)
  const s0 = env.sampler.snapshot()
  const w0 = writer.stats()
  const l0 = await lg.stats()
  say(`measuring ${measureSec} s`)
  const progress = setInterval(async () => {
    const s = await lg.stats()
    const w = writer.stats()
    say(
      `  committed=${w.committed - w0.committed} received=${s.txEvents - l0.txEvents} open=${s.open} ` +
        `p99=${round(s.latencySummary.p99Ms)}ms writer in-flight=${w.inFlight} errors=${w.errors}`,
    )
  }, 10_000)
  await sleep(measureSec * 1000)
  clearInterval(progress)
  const s1 = env.sampler.snapshot()
  const w1 = writer.stats()
  const l1 = await lg.stats()
  const m1 = await scrape(walera.url)
  await writer.stop()
  cleanups.splice(cleanups.indexOf(stopWriter), 1)
  // drain: wait until every committed transaction could have arrived
  const committed = writer.committed()
  let expectedTotal = 0
  for (const [order, xids] of committed) if (order <= exact) expectedTotal += xids.length
  const allTx = [...committed.values()].reduce((a, x) => a + x.length, 0)
  expectedTotal += allTx * wildcardCount
  let last = -1
  let stableSince = performance.now()
  const drainDeadline = performance.now() + 20_000
  for (;;) {
    const s = await lg.stats()
    if (s.txEvents - lStart.txEvents >= expectedTotal) break
    if (s.txEvents !== last) {
      last = s.txEvents
      stableSince = performance.now()
    }
    if (performance.now() - stableSince > 2000 || performance.now() > drainDeadline) break
    await sleep(250)
  }
  const l2 = await lg.stats()
  const received = await lg.received()
  if (args["drop-one-event"]) dropOneEvent(received)
  const missing = countMissing(committed, received, exact)
  const cpu = env.sampler.window(s0, s1)
  const seconds = cpu.seconds
  const tx = w1.committed - w0.committed
  const deliveries = l1.txEvents - l0.txEvents
  const waleraCpu = cpu.cpuSeconds["walera"] ?? 0
  return {
    rateTarget,
    seconds: round(seconds, 2),
    txCommitted: tx,
    txPerSec: round(tx / seconds),
    writerErrors: w1.errors,
    writerSkipped: w1.skipped,
    writerCommitP99Ms: round(w1.commitLatency.p99Ms, 2),
    deliveries,
    deliveriesPerSec: round(deliveries / seconds),
    heartbeatsPerSec: round((l1.heartbeats - l0.heartbeats) / seconds),
    deliveriesPerTx: round(deliveries / Math.max(1, tx), 2),
    latency: l2.latencySummary,
    negativeLatencies: l2.negativeLatencies,
    cpu,
    waleraCpuUsPerTx: round((waleraCpu * 1e6) / Math.max(1, tx)),
    postgresCpuUsPerTx: round(((cpu.cpuSeconds["postgres"] ?? 0) * 1e6) / Math.max(1, tx)),
    waleraCpuUsPerDelivery: round((waleraCpu * 1e6) / Math.max(1, deliveries), 2),
    waleraTxDecoded: delta(m0, m1, "walera_wal_transactions_total"),
    waleraWalLagMeanMs: round(histMean(m0, m1, "walera_wal_lag_seconds") * 1000, 2),
    waleraFanoutMeanMs: round(histMean(m0, m1, "walera_fanout_latency_seconds") * 1000, 3),
    waleraWalLagP50Ms: histQuantile(m0, m1, "walera_wal_lag_seconds", 0.5) * 1000,
    waleraWalLagP99Ms: histQuantile(m0, m1, "walera_wal_lag_seconds", 0.99) * 1000,
    loadgenLoopDelayP99Ms: round(l2.loopDelayP99Ms, 1),
    waleraEventLoopLagP99Ms: round((m1.get("nodejs_eventloop_lag_p99_seconds") ?? 0) * 1000, 1),
    waleraHeapUsedMb: mb(m1.get("nodejs_heap_size_used_bytes") ?? 0),
    missing,
  }
}

const stopWalera = async (walera: WaleraChild, lg: LoadGenGroup | undefined) => {
  lg?.noReconnect()
  const t0 = performance.now()
  walera.child.kill("SIGTERM")
  const exit = await Promise.race([walera.exited, sleep(30_000).then(() => ({ code: null, signal: "timeout" }))])
  const ms = performance.now() - t0
  if (walera.child.exitCode === null && walera.child.signalCode === null) walera.child.kill("SIGKILL")
  await sleep(500)
  const stats = lg === undefined ? undefined : await lg.stats()
  return { shutdownMs: round(ms, 0), exit, disconnects: stats?.disconnects ?? {} }
}

// ---------------------------------------------------------------------------------------------------------------
// Baseline (plain node:http), forked

const startBaseline = async (authUrl?: string) => {
  const child = track(
    fork(BASELINE, [], {
      cwd: repoRoot,
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      // The plain server gets the V8 heap options Walera starts with, so the memory ratio compares the servers.
      env: {
        ...process.env,
        NODE_OPTIONS: startNodeOptions(waleraRoot),
        BASELINE_AUTH_URL: authUrl ?? "",
        BASELINE_PROTOCOL: transport.protocol,
      },
    }),
  )
  const next = (type: string) =>
    new Promise<Record<string, unknown>>((r) => {
      const on = (m: Record<string, unknown>) => {
        if (m["type"] === type) {
          child.off("message", on)
          r(m)
        }
      }
      child.on("message", on)
    })
  const listening = next("listening")
  child.send({ type: "listen" })
  const port = (await listening)["port"] as number
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    run: async (o: BaselineRun) => {
      const done = next("ran")
      child.send({ type: "run", run: o })
      return (await done)["result"] as BaselineResult
    },
    heap: async () => {
      const m = next("memory")
      child.send({ type: "memory" })
      return ((await m)["memory"] as NodeJS.MemoryUsage).heapUsed
    },
    close: async () => {
      if (child.connected) child.send({ type: "close" })
      await Promise.race([new Promise((r) => child.once("exit", r)), sleep(3000)])
      if (child.exitCode === null) child.kill("SIGKILL")
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

/** Machine CPU (in % of one core) not used by any process group the sampler tracks. */
const untracked = (c: WindowStats) =>
  c.machineBusyAvgPct * os.cpus().length - Object.values(c.cpuAvgPct).reduce((a, b) => a + b, 0)

const fmtMs = (x: number) => `${round(x, 1)} ms`
const pass = (ok: boolean) => (ok ? "✅" : "❌")

const renderReport = (r: Record<string, any>): string => {
  const L: string[] = []
  const m = r["main"]
  L.push(`# Walera bench — ${r["startedAt"]}`, "")
  L.push(
    `Machine: ${r["machine"].cpus}× ${r["machine"].cpuModel}, ${r["machine"].memGiB} GiB RAM, ${r["machine"].kernel}, ` +
      `Node ${r["machine"].node}, PostgreSQL ${r["postgres"]}, ulimit -n ${r["machine"].nofile}.`,
  )
  L.push(
    `Walera: commit ${r["walera"].head}${r["walera"].dirty.length > 0 ? ` plus uncommitted changes (${r["walera"].dirty.length} files)` : ""}` +
      `${r["walera"].root === undefined ? "" : ` from ${r["walera"].root}`}.`,
  )
  const cfg = r["config"]
  const isH2 = cfg.protocol === "h2c"
  const over = isH2
    ? ` over ${cfg.sessions} HTTP/2 connections (h2c, prior knowledge, ${cfg.streamsPerSession} streams each)`
    : " (HTTP/1.1, one connection each)"
  L.push(
    `Scenario: ${cfg.exact} streams on distinct orders/{pk} + ${cfg.wildcard} on orders/all${over} ` +
      `(users alice/bob alternating), writer ${cfg.rate} tx/s for ${cfg.duration} s after ` +
      `${cfg.warmup} s warm-up; ${cfg.loadgenProcesses} load generator process(es).`,
    "",
  )
  const baseName = cfg.baselineName ?? "plain node:http"
  if (m !== undefined) {
    const w = m.window as RunWindow
    const c = w.cpu
    L.push(`## ${isH2 ? "HTTP/2 " : ""}targets (docs/performance.md)`, "", "| target | measured | |", "|---|---|---|")
    L.push(
      isH2
        ? `| CPU per tx (no target for HTTP/2; ≤ 100 µs for HTTP/1.1) | ${w.waleraCpuUsPerTx} µs (${w.deliveriesPerTx} deliveries/tx) | |`
        : `| CPU per tx ≤ 100 µs (≈11 deliveries) | ${w.waleraCpuUsPerTx} µs (${w.deliveriesPerTx} deliveries/tx) | ${pass(w.waleraCpuUsPerTx <= 100)} |`,
    )
    L.push(
      `| p99 < 100 ms | ${fmtMs(w.latency.p99Ms)} | ${pass(w.latency.count > 0 && w.latency.p99Ms < P99_TARGET_MS)} |`,
    )
    L.push(`| 0 missing events | ${w.missing.missing} of ${w.missing.expected} | ${pass(w.missing.missing === 0)} |`)
    const slow = Object.entries(m.disconnectsDuringRun as Record<string, number>)
      .filter(([k]) => k.includes("slow_consumer"))
      .reduce((a, [, v]) => a + v, 0)
    L.push(`| 0 slow-consumer disconnects | ${slow} | ${pass(slow === 0)} |`)
    L.push(`| RSS < 1 GiB | peak ${mb(m.rssPeak)} MiB | ${pass(m.rssPeak < 1024 ** 3)} |`)
    if (r["baseline"] !== undefined) {
      const ratio = r["ratios"].idleBytesPerStream
      L.push(`| idle memory/stream ≤ 1.25× ${baseName} | ${round(ratio, 2)}× | ${pass(ratio > 0 && ratio <= 1.25)} |`)
    }
    L.push("", "## Main run", "", "| figure | value |", "|---|---|")
    const rows: Array<[string, string]> = [
      ["streams open / connect time", `${m.idle.streams} / ${round(m.idle.connectMs / 1000, 1)} s`],
      ["Walera CPU per stream opened (auth call included)", `${m.idle.cpuUsPerOpen} µs`],
      ...(isH2
        ? ([
            [
              "h2c connections open at the end of the run / opened in total / session errors",
              `${m.sessionsOpen} / ${m.sessionsOpened} / ${JSON.stringify(m.sessionErrors)}`,
            ],
          ] as Array<[string, string]>)
        : []),
      ["tx/s achieved (target)", `${w.txPerSec} (${w.rateTarget})`],
      ["deliveries/s", `${w.deliveriesPerSec}`],
      [
        "latency commit→client p50 / p90 / p99 / p99.9 / max",
        `${fmtMs(w.latency.p50Ms)} / ${fmtMs(w.latency.p90Ms)} / ${fmtMs(w.latency.p99Ms)} / ${fmtMs(w.latency.p999Ms)} / ${fmtMs(w.latency.maxMs)}`,
      ],
      [
        "Walera CPU avg / peak (% of one core)",
        `${round(c.cpuAvgPct["walera"] ?? 0)} % / ${round(c.cpuPeakPct["walera"] ?? 0)} %`,
      ],
      ["Walera CPU per tx / per delivery", `${w.waleraCpuUsPerTx} µs / ${w.waleraCpuUsPerDelivery} µs`],
      [
        "Walera RSS before streams / idle with streams / peak",
        `${mb(m.idle.rssBefore)} / ${mb(m.idle.rssAfter)} / ${mb(m.rssPeak)} MiB`,
      ],
      [
        "Walera RSS / JS heap per idle stream",
        `${round(m.idle.bytesPerStream / 1024, 1)} KiB / ${round(m.idle.heapPerStream / 1024, 1)} KiB`,
      ],
      ["Walera heap used (end) / event-loop lag p99", `${w.waleraHeapUsedMb} MiB / ${w.waleraEventLoopLagP99Ms} ms`],
      [
        "Walera commit→decoded (its own histogram): mean / p50 ≤ / p99 ≤",
        `${w.waleraWalLagMeanMs} ms / ${w.waleraWalLagP50Ms} ms / ${w.waleraWalLagP99Ms} ms`,
      ],
      ["Walera fan-out (decoded→written) mean", `${w.waleraFanoutMeanMs} ms`],
      [
        "missing / unexpected events",
        `${w.missing.missing} / ${w.missing.unexpected} (expected ${w.missing.expected})`,
      ],
      ["disconnects during the run", JSON.stringify(m.disconnectsDuringRun)],
      ["writer errors / skipped / commit p99", `${w.writerErrors} / ${w.writerSkipped} / ${w.writerCommitP99Ms} ms`],
      ["PostgreSQL CPU avg", `${round(c.cpuAvgPct["postgres"] ?? 0)} %`],
      [
        "PostgreSQL CPU per tx (the same work in every run, so a yardstick of the box's speed) / Walera's against it",
        `${w.postgresCpuUsPerTx} µs / ${round(w.waleraCpuUsPerTx / Math.max(1, w.postgresCpuUsPerTx), 2)}×`,
      ],
      [
        "load generator CPU avg / peak",
        `${round(c.cpuAvgPct["loadgen_walera"] ?? 0)} % / ${round(c.cpuPeakPct["loadgen_walera"] ?? 0)} %`,
      ],
      [
        "load generator CPU per delivery (all its processes)",
        `${round(((c.cpuSeconds["loadgen_walera"] ?? 0) * 1e6) / Math.max(1, w.deliveries), 2)} µs`,
      ],
      ["load generator event-loop delay p99", `${w.loadgenLoopDelayP99Ms} ms`],
      ["bench process (writer, auth, sampler) CPU avg", `${round(c.cpuAvgPct["bench"] ?? 0)} %`],
      ["other processes on the box (not started by the bench) CPU avg", `${round(c.cpuAvgPct["other"] ?? 0)} %`],
      ["kernel softirq / steal", `${round(c.softirqPct)} % / ${round(c.stealPct)} %`],
      ["machine busy avg / peak (all cores)", `${round(c.machineBusyAvgPct)} % / ${round(c.machineBusyPeakPct)} %`],
      [
        "CPU not attributed to any process (kernel softirq, processes that exited between samples)",
        `${round(untracked(c))} % of one core`,
      ],
      ["Walera shutdown (SIGTERM → exit)", `${m.shutdown.shutdownMs} ms, exit ${JSON.stringify(m.shutdown.exit)}`],
      ["disconnects seen by clients at shutdown", JSON.stringify(m.shutdown.disconnects)],
      ["Walera warn/error log lines", `${m.logLines}`],
    ]
    for (const [k, v] of rows) L.push(`| ${k} | ${v} |`)
    if (w.missing.examples.length > 0) L.push("", `Missing examples: ${w.missing.examples.join(", ")}`)
  }
  const b = r["baseline"]
  if (b !== undefined) {
    L.push(
      "",
      `## Plain ${baseName.replace(/^plain /, "")} baseline (same run)`,
      "",
      "| figure | baseline | Walera | ratio |",
      "|---|---|---|---|",
    )
    const ra = r["ratios"]
    L.push(
      `| RSS per idle stream | ${round(b.idle.bytesPerStream / 1024, 1)} KiB | ${round(m.idle.bytesPerStream / 1024, 1)} KiB | ${round(ra.idleBytesPerStream, 2)}× |`,
    )
    L.push(
      `| JS heap per idle stream (no forced GC) | ${round(b.idle.heapPerStream / 1024, 1)} KiB | ${round(m.idle.heapPerStream / 1024, 1)} KiB | ${round(m.idle.heapPerStream / Math.max(1, b.idle.heapPerStream), 2)}× |`,
    )
    L.push(
      `| CPU avg at same delivery rate | ${round(b.cpuAvgPct)} % | ${round(m.window.cpu.cpuAvgPct["walera"] ?? 0)} % | ${round(ra.cpu, 2)}× |`,
    )
    L.push(
      `| CPU per delivery | ${round(b.cpuUsPerDelivery, 2)} µs | ${m.window.waleraCpuUsPerDelivery} µs | ${round(ra.cpuPerDelivery, 2)}× |`,
    )
    L.push(
      `| CPU per stream opened (Walera's includes its auth call) | ${b.idle.cpuUsPerOpen} µs | ${m.idle.cpuUsPerOpen} µs | ${round(m.idle.cpuUsPerOpen / Math.max(0.1, b.idle.cpuUsPerOpen), 2)}× |`,
    )
    L.push(`| deliveries/s | ${round(b.deliveriesPerSec)} | ${m.window.deliveriesPerSec} | |`)
    if (b.heartbeatsPerSec !== undefined)
      L.push(
        `| heartbeats/s (most in one 50 ms tick) | ${round(b.heartbeatsPerSec)} (${b.heartbeatsPerTickMax}) | ${m.window.heartbeatsPerSec ?? "?"} | |`,
      )
    L.push(
      `| latency p99 (no PostgreSQL in the path) | ${fmtMs(b.latency.p99Ms)} | ${fmtMs(m.window.latency.p99Ms)} | |`,
    )
    L.push(`| RSS peak | ${mb(b.rssPeak)} MiB | ${mb(m.rssPeak)} MiB | |`)
    L.push(
      `| load generator CPU avg | ${round(b.loadgenCpuAvgPct)} % | ${round(m.window.cpu.cpuAvgPct["loadgen_walera"] ?? 0)} % | |`,
    )
    L.push(`| machine busy avg | ${round(b.machineBusyAvgPct)} % | ${round(m.window.cpu.machineBusyAvgPct)} % | |`)
    const ba = r["baselineAuth"]
    if (ba !== undefined) {
      L.push(
        "",
        "The same plain server making Walera's auth call (`POST /auth/sessions`, keep-alive agent) before it answers:",
        "",
        `| RSS per idle stream | ${round(ba.idle.bytesPerStream / 1024, 1)} KiB | ${round(m.idle.bytesPerStream / 1024, 1)} KiB | ${round(ra.idleBytesPerStreamVsAuthBaseline, 2)}× |`,
        `| CPU per stream opened | ${ba.idle.cpuUsPerOpen} µs | ${m.idle.cpuUsPerOpen} µs | ${round(m.idle.cpuUsPerOpen / Math.max(0.1, ba.idle.cpuUsPerOpen), 2)}× |`,
      )
    }
  }
  const sweep = r["sweep"]
  if (sweep !== undefined) {
    L.push(
      "",
      "## Rate sweep",
      "",
      "| target tx/s | achieved | deliveries/s | p50 | p99 | p99.9 | Walera CPU | µs/tx | machine busy | untracked CPU | missing |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    )
    for (const s of sweep.steps as RunWindow[])
      L.push(
        `| ${s.rateTarget} | ${s.txPerSec} | ${s.deliveriesPerSec} | ${fmtMs(s.latency.p50Ms)} | ${fmtMs(s.latency.p99Ms)} | ` +
          `${fmtMs(s.latency.p999Ms)} | ${round(s.cpu.cpuAvgPct["walera"] ?? 0)} % | ${s.waleraCpuUsPerTx} | ` +
          `${round(s.cpu.machineBusyAvgPct)} % | ${round(untracked(s.cpu))} % | ${s.missing.missing} |`,
      )
    L.push("", `Highest rate with p99 < ${P99_TARGET_MS} ms: **${sweep.maxRate ?? "none"}** tx/s. ${sweep.stopReason}`)
  }
  const idle = r["idle"]
  if (idle !== undefined) {
    L.push("", "## Idle streams", "")
    if (idle.note) L.push(idle.note, "")
    L.push(
      "| server | streams held | connect time | RSS before → after | RSS per stream | heap per stream |",
      "|---|---|---|---|---|---|",
    )
    for (const [name, v] of Object.entries(idle.servers as Record<string, IdleMemory>))
      L.push(
        `| ${name} | ${v.streams} | ${round(v.connectMs / 1000, 1)} s | ${mb(v.rssBefore)} → ${mb(v.rssAfter)} MiB | ${round(v.bytesPerStream / 1024, 1)} KiB | ${round(v.heapPerStream / 1024, 1)} KiB |`,
      )
    if (idle.ratio !== undefined) L.push("", `Walera / baseline: ${round(idle.ratio, 2)}×`)
  }
  if (r["notes"].length > 0) L.push("", "## Notes", "", ...r["notes"].map((n: string) => `- ${n}`))
  return `${L.join("\n")}\n`
}

// ---------------------------------------------------------------------------------------------------------------

/** Which Walera was measured: HEAD and whether its source differed from it (read-only git calls). */
const gitState = (): { head: string; dirty: string[]; root?: string } => {
  const run = (a: string[]) => {
    try {
      return execFileSync("git", a, { cwd: waleraRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    } catch {
      return ""
    }
  }
  const dirty = run(["status", "--porcelain", "--", "src", "adapters", "domain"])
  return {
    head: run(["rev-parse", "--short", "HEAD"]) || "unknown (not a git checkout)",
    dirty: dirty === "" ? [] : dirty.split("\n"),
    ...(waleraRoot === repoRoot ? {} : { root: waleraRoot }),
  }
}

const fdLimit = (): number => {
  const m = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))
  return m ? Number(m[1]) : 1024
}

const main = async () => {
  mkdirSync(outDir, { recursive: true })
  const notes: string[] = []
  const report: Record<string, any> = {
    startedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "?",
      memGiB: round(os.totalmem() / 1024 ** 3, 1),
      kernel: `${os.type()} ${os.release()}`,
      node: process.version,
      nofile: fdLimit(),
    },
    walera: gitState(),
    config: {
      exact: exactCount,
      wildcard: wildcardCount,
      rate,
      duration,
      warmup,
      quick,
      findMax: args["find-max"],
      protocol: transport.protocol,
      sessions: connectionsFor(transport, totalStreams),
      streamsPerSession: transport.streamsPerSession,
      loadgenProcesses: transport.processes(totalStreams),
      baselineName: transport.baselineName,
    },
    notes,
  }
  const sampler = new Sampler()
  sampler.track("bench", () => [process.pid])
  sampler.track("postgres", () => pidsNamed("postgres"))
  sampler.track("other", () => [])
  sampler.start()
  cleanups.push(() => sampler.stop())

  let pgServer: EmbeddedPg | undefined
  let databaseUrl = args["database-url"]
  if (databaseUrl === undefined) {
    say("starting embedded PostgreSQL")
    pgServer = await startEmbeddedPg()
    const s = pgServer
    cleanups.push(() => s.stop())
    databaseUrl = pgServer.url()
  } else notes.push("External PostgreSQL: its CPU is only counted if it runs on this machine.")
  const admin = new pg.Client({ connectionString: databaseUrl })
  await admin.connect()
  report["postgres"] = (await admin.query("SHOW server_version")).rows[0].server_version
  for (const k of ["fsync", "synchronous_commit", "wal_writer_delay", "wal_level"])
    report[`pg_${k}`] = (await admin.query(`SHOW ${k}`)).rows[0][k]
  say(`schema + seed (${ordersToSeed} orders × 3 line items)`)
  await admin.query(SCHEMA)
  await admin.query(seed(ordersToSeed))
  await admin.end()

  const auth = await startAuth()
  cleanups.push(() => auth.close())
  const env: Env = { pg: pgServer, databaseUrl, auth, sampler }
  const specs = streamSpecs(exactCount, wildcardCount)
  if (connectionsFor(transport, totalStreams) > fdLimit() - 500)
    notes.push(`${totalStreams} streams exceed what one server process can hold with ulimit -n ${fdLimit()}.`)

  // ---- Walera main run (or sweep)
  say("starting Walera")
  let walera = await startWalera(databaseUrl, auth.port)
  sampler.track("walera", () => (walera.child.pid === undefined ? [] : [walera.child.pid]))
  cleanups.push(() => {
    if (walera.child.exitCode === null) walera.child.kill("SIGKILL")
  })
  const { lg, idle } = await measureIdle(sampler, "walera", walera.url, specs, true, 0, waleraHeap(walera.url))
  cleanups.push(() => lg.close().then(() => {}))
  let logLines = () =>
    walera
      .log()
      .split("\n")
      .filter((l) => l.trim() !== "").length

  if (args["find-max"]) {
    const steps: RunWindow[] = []
    let maxRate: number | undefined
    let stopReason = "Stopped at 10 000 tx/s."
    for (let r = 1000; r <= 10_000; r += 1000) {
      const w = await runLoad(env, walera, lg, r, 5, stepDuration, exactCount)
      steps.push(w)
      say(
        `step ${r}: achieved ${w.txPerSec} tx/s p99 ${round(w.latency.p99Ms)} ms missing ${w.missing.missing} ` +
          `walera ${round(w.cpu.cpuAvgPct["walera"] ?? 0)}% machine ${round(w.cpu.machineBusyAvgPct)}%` +
          (w.missing.missing > 0 ? ` e.g. ${w.missing.examples.slice(0, 3).join(", ")}` : ""),
      )
      if (w.latency.p99Ms < P99_TARGET_MS && w.missing.missing === 0 && w.txPerSec >= 0.95 * r) maxRate = r
      else {
        stopReason =
          w.txPerSec < 0.95 * r
            ? `Stopped at ${r} tx/s: the writer/PostgreSQL achieved only ${w.txPerSec} tx/s.`
            : w.missing.missing > 0
              ? `Stopped at ${r} tx/s: ${w.missing.missing} events missing.`
              : `Stopped at ${r} tx/s: p99 ${round(w.latency.p99Ms)} ms.`
        break
      }
      await sleep(3000)
    }
    report["sweep"] = { steps, maxRate, stopReason, stepDuration }
  } else {
    const window = await runLoad(env, walera, lg, rate, warmup, duration, exactCount)
    const atEnd = await lg.stats()
    const disconnectsDuringRun = atEnd.disconnects
    const all = sampler.window(sampler.samples[0]!, sampler.snapshot())
    const shutdown = await stopWalera(walera, lg)
    report["main"] = {
      idle,
      window,
      disconnectsDuringRun,
      rssPeak: all.rssPeak["walera"] ?? 0,
      sessionsOpen: atEnd.sessionsOpen,
      sessionsOpened: atEnd.sessionsOpened,
      sessionErrors: atEnd.sessionErrors,
      shutdown,
      logLines: logLines(),
    }
    const samples = (await lg.stats()).samples
    await lg.close()
    say(
      `Walera: ${window.txPerSec} tx/s, ${window.deliveriesPerSec} deliveries/s, p99 ${round(window.latency.p99Ms)} ms, ` +
        `${window.waleraCpuUsPerTx} µs/tx, missing ${window.missing.missing}`,
    )

    // ---- baseline
    if (!args["no-baseline"]) {
      say(`${transport.baselineName} baseline`)
      const base = await startBaseline()
      cleanups.push(() => base.close())
      sampler.track("baseline", () => (base.child.pid === undefined ? [] : [base.child.pid]))
      const bIdle = await measureIdle(sampler, "baseline", base.url, specs, false, 0, base.heap)
      const bSeconds = Math.min(duration, quick ? 10 : 30)
      // same background load as the Walera run: the writer keeps PostgreSQL busy at the same rate
      const bgWriter = startWriter({
        databaseUrl,
        rate: window.txPerSec,
        orderIds: Array.from({ length: exactCount }, (_, i) => i + 1),
      })
      cleanups.push(() => bgWriter.stop())
      await bgWriter.start()
      await sleep(2000)
      bIdle.lg.reset()
      const s0 = sampler.snapshot()
      const result = await base.run({
        rate: window.txPerSec,
        durationSec: bSeconds,
        samples,
        pks: Array.from({ length: exactCount }, (_, i) => String(i + 1)),
      })
      const s1 = sampler.snapshot()
      await bgWriter.stop()
      await sleep(500)
      const bStats = await bIdle.lg.stats()
      const c = sampler.window(s0, s1)
      const bCpu = c.cpuSeconds["baseline"] ?? 0
      const bAll = sampler.window(sampler.samples[0]!, sampler.snapshot())
      report["baseline"] = {
        idle: bIdle.idle,
        txs: result.txs,
        deliveries: result.deliveries,
        deliveriesPerSec: result.deliveries / result.seconds,
        received: bStats.txEvents,
        cpuAvgPct: c.cpuAvgPct["baseline"] ?? 0,
        cpuUsPerDelivery: (bCpu * 1e6) / Math.max(1, result.deliveries),
        latency: bStats.latencySummary,
        loadgenCpuAvgPct: c.cpuAvgPct["loadgen_baseline"] ?? 0,
        heartbeatsPerSec: result.heartbeats / result.seconds,
        heartbeatsPerTickMax: result.heartbeatsPerTickMax,
        machineBusyAvgPct: c.machineBusyAvgPct,
        rssPeak: bAll.rssPeak["baseline"] ?? 0,
        seconds: bSeconds,
      }
      report["ratios"] = {
        idleBytesPerStream: idle.bytesPerStream / Math.max(1, bIdle.idle.bytesPerStream),
        cpu: (window.cpu.cpuAvgPct["walera"] ?? 0) / Math.max(0.01, report["baseline"].cpuAvgPct),
        cpuPerDelivery: window.waleraCpuUsPerDelivery / Math.max(0.001, report["baseline"].cpuUsPerDelivery),
      }
      await bIdle.lg.close()
      await base.close()
      say(
        `baseline: ${round(bIdle.idle.bytesPerStream / 1024, 1)} KiB/stream, ${round(report["baseline"].cpuAvgPct)} % CPU, ` +
          `${round(report["baseline"].cpuUsPerDelivery, 2)} µs/delivery`,
      )
      // The same plain server making Walera's per-open auth call first: what that call alone costs in memory.
      if (transport.protocol === "http1") {
        const authed = await startBaseline(`http://127.0.0.1:${auth.port}`)
        cleanups.push(() => authed.close())
        sampler.track("baseline_auth", () => (authed.child.pid === undefined ? [] : [authed.child.pid]))
        const aIdle = await measureIdle(sampler, "baseline_auth", authed.url, specs, false, 0, authed.heap)
        report["baselineAuth"] = { idle: aIdle.idle }
        report["ratios"]["idleBytesPerStreamVsAuthBaseline"] =
          idle.bytesPerStream / Math.max(1, aIdle.idle.bytesPerStream)
        await aIdle.lg.close()
        await authed.close()
        say(`baseline with the auth call per open: ${round(aIdle.idle.bytesPerStream / 1024, 1)} KiB/stream`)
      }
    }
  }
  if (report["main"] === undefined) {
    await stopWalera(walera, lg)
    await lg.close()
  }
  writeFileSync(join(outDir, "walera.log"), walera.log())

  // ---- idle streams
  if (idleStreams > 0) {
    const cap = fdLimit() - 1000
    let n = idleStreams
    const idleReport: Record<string, any> = { requested: idleStreams, servers: {} }
    if (n > cap && transport.protocol === "http1") {
      idleReport.note =
        `Requested ${idleStreams} idle streams; every process here has a hard limit of ulimit -n ${fdLimit()} ` +
        `(not raisable in this container), so one server process can hold at most ~${cap}. Measured at ${cap}.`
      n = cap
    }
    const idleSpecs = streamSpecs(n - Math.min(10, n), Math.min(10, n))
    // Exact streams beyond the seeded orders are valid channels too: holding a stream needs no row.
    say(`idle phase: ${n} streams (load generator split into ${transport.processes(n)} processes)`)
    walera = await startWalera(databaseUrl, auth.port)
    logLines = () => walera.log().split("\n").length
    const wi = await measureIdle(sampler, "walera", walera.url, idleSpecs, false, 10, waleraHeap(walera.url))
    idleReport.servers.walera = wi.idle
    await stopWalera(walera, wi.lg)
    await wi.lg.close()
    if (!args["no-baseline"]) {
      const base = await startBaseline()
      sampler.track("baseline", () => (base.child.pid === undefined ? [] : [base.child.pid]))
      const bi = await measureIdle(sampler, "baseline", base.url, idleSpecs, false, 20, base.heap)
      idleReport.servers.baseline = bi.idle
      idleReport.ratio = wi.idle.bytesPerStream / Math.max(1, bi.idle.bytesPerStream)
      await bi.lg.close()
      await base.close()
    }
    report["idle"] = idleReport
  }

  notes.push(
    `All processes share ${os.cpus().length} cores: PostgreSQL, the writer (bench process), the load generator and ` +
      "Walera. Machine busy % near 100 means the box, not necessarily Walera, was the limit.",
  )
  if (report["baseline"] !== undefined)
    notes.push(
      "The baseline runs with the writer committing to PostgreSQL at the same rate (nobody decodes the WAL), so " +
        "the machine carries a similar background load while its CPU is measured. It runs with the V8 options " +
        `\`npm start\` gives Walera (NODE_OPTIONS="${startNodeOptions(waleraRoot)}").`,
    )
  notes.push(
    "Latency is measured from PostgreSQL's commit_ts (µs) to the moment the load generator read the frame " +
      "(performance.timeOrigin + performance.now()), on the same clock.",
  )
  const md = renderReport(report)
  writeFileSync(join(outDir, "report.json"), JSON.stringify(report, null, 2))
  writeFileSync(join(outDir, "report.md"), md)
  process.stdout.write(`\n${md}\nResults: ${outDir}\n`)
  const missing =
    (report["main"]?.window.missing.missing ?? 0) +
    ((report["sweep"]?.steps as RunWindow[] | undefined)?.reduce((a, s) => a + s.missing.missing, 0) ?? 0)
  return missing > 0 ? 1 : 0
}

main().then(
  async (code) => {
    await cleanup()
    process.exit(code)
  },
  async (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`)
    await cleanup()
    process.exit(2)
  },
)
