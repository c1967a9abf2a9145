// Where an idle stream's memory goes: opens N idle HTTP/1.1 (or h2c) streams to Walera and to the plain baselines and
// breaks each server's growth down (V8 heap spaces, external memory, malloc arenas, memory mappings, live handles and,
// optionally, heap-snapshot objects by constructor), before and after a forced full GC. The bench reports one number
// per server; this is how docs/performance.md ("Where idle memory goes") explains it. `npm run bench:idle -- --help`.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import { freePort, startEmbeddedPg } from "../../test/support/EmbeddedPg.ts"
import { type LoadProtocol, type StreamSpec, startLoadGen } from "../load/loadgen.ts"
import { SCHEMA, seed, startAuth, TOKENS, waleraBenchEnv } from "./fixtures.ts"

const repoRoot = resolve(import.meta.dirname, "../..")

const HELP = `Usage: node testbench/bench/idleMemory.ts [options]

  --streams N            idle streams per server (default 10000)
  --servers LIST         any of walera, plain, plain-auth, plain-h2 (default walera,plain,plain-auth)
  --protocol P           http1 (default) or h2c for Walera (plain-h2 is always h2c)
  --walera-root DIR      run Walera from another checkout (e.g. a scratch copy with a change to measure)
  --walera-env K=V,...   extra environment for Walera (e.g. MALLOC_ARENA_MAX=2)
  --baseline-root DIR    run the plain servers from another checkout (a scratch copy with a change to measure)
  --node-options=S       extra Node options for every server (e.g. --node-options=--max-semi-space-size=4)
  --settle S,S,...       seconds after the last open at which to look without forcing GC (default 3, as the bench)
  --heap-snapshots       also diff heap snapshots (after GC) by constructor; keep N ≤ 5000 (the files get large);
                         writing snapshots disturbs malloc, so take RSS figures from a run without them
  --promoted             also sample allocations (V8's sampling heap profiler) that outlive the young generation
                         from the first open to the forced GC: what the opens leave behind in the old generation,
                         live or garbage, by allocation site (KiB per stream)
  --malloc-stats         also read glibc malloc's own accounting through gdb (pauses the server for a moment)
  --out FILE             write the figures as JSON
`

const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "10000" },
    servers: { type: "string", default: "walera,plain,plain-auth" },
    protocol: { type: "string", default: "http1" },
    "walera-root": { type: "string" },
    "walera-env": { type: "string", default: "" },
    "baseline-root": { type: "string" },
    settle: { type: "string", default: "3" },
    "node-options": { type: "string", default: "" },
    "heap-snapshots": { type: "boolean", default: false },
    "malloc-stats": { type: "boolean", default: false },
    promoted: { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
})
if (args.help) {
  process.stdout.write(HELP)
  process.exit(0)
}

const N = Number(args.streams)
const say = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const kib = (bytes: number) => Math.round((bytes / 1024) * 10) / 10

// ---------------------------------------------------------------------------------------------------------------
// The server's own view, through the inspector protocol (no change to the server's code)

class Inspector {
  private readonly ws: WebSocket
  private nextId = 1
  private readonly waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>()

  private constructor(ws: WebSocket) {
    this.ws = ws
    ws.addEventListener("message", (e) => {
      const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: unknown }
      if (m.id !== undefined) {
        this.waiting.get(m.id)?.(m)
        this.waiting.delete(m.id)
      }
    })
  }

  static connect(url: string): Promise<Inspector> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url)
      ws.addEventListener("open", () => resolve(new Inspector(ws)))
      ws.addEventListener("error", () => reject(new Error(`inspector ${url} unreachable`)))
    })
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (m) =>
        m.error === undefined ? resolve(m.result) : reject(new Error(JSON.stringify(m.error))),
      )
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.call("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value: T }
      exceptionDetails?: unknown
    }
    if (r.exceptionDetails !== undefined) throw new Error(`evaluate failed: ${JSON.stringify(r.exceptionDetails)}`)
    return r.result.value
  }

  gc(): Promise<unknown> {
    return this.call("HeapProfiler.collectGarbage")
  }

  close(): void {
    this.ws.close()
  }
}

interface InsideView {
  readonly memoryUsage: NodeJS.MemoryUsage
  /** physical bytes per V8 heap space */
  readonly spaces: Record<string, number>
  /** V8's own malloc'ed memory (not the JS heap) */
  readonly v8Malloced: number
  /** live libuv handles and requests by kind (TCPSocketWrap, Timeout, …) */
  readonly resources: Record<string, number>
}

const INSIDE = `(() => {
  const v8 = process.getBuiltinModule("v8")
  const spaces = {}
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size
  const resources = {}
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1
  return { memoryUsage: process.memoryUsage(), spaces, v8Malloced: v8.getHeapStatistics().malloced_memory, resources }
})()`

// ---------------------------------------------------------------------------------------------------------------
// The kernel's view and malloc's view

interface Mappings {
  /** resident bytes of glibc's brk heap (the main malloc arena) */
  readonly brkHeap: number
  /** resident bytes of anonymous mappings: V8's heap pages, other malloc arenas, large malloc chunks, stacks */
  readonly anonymous: number
  /** resident bytes of file mappings: the node binary and shared libraries */
  readonly file: number
  readonly rss: number
}

const mappings = (pid: number): Mappings => {
  let brkHeap = 0
  let anonymous = 0
  let file = 0
  let kind: "brk" | "anon" | "file" | "other" = "other"
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (header !== null) {
      const path = header[1] ?? ""
      kind = path === "[heap]" ? "brk" : path === "" ? "anon" : path.startsWith("/") ? "file" : "other"
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss === null) continue
    const bytes = Number(rss[1]) * 1024
    if (kind === "brk") brkHeap += bytes
    else if (kind === "anon") anonymous += bytes
    else if (kind === "file") file += bytes
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
  return { brkHeap, anonymous, file, rss }
}

interface MallocView {
  /** bytes malloc holds from the kernel (all arenas and mmapped chunks) */
  readonly system: number
  /** bytes handed out and not freed */
  readonly inUse: number
  readonly arenas: number
}

/** glibc's malloc_stats() prints to the server's stderr; gdb calls it in the running process. */
const mallocStats = async (pid: number, stderr: () => string): Promise<MallocView | undefined> => {
  const before = stderr().length
  try {
    execFileSync("gdb", ["-p", String(pid), "-batch", "-ex", "call (void) malloc_stats()"], { stdio: "ignore" })
  } catch {
    // gdb exits non-zero after detaching from a Node process; the output is what counts
  }
  await sleep(300)
  const text = stderr().slice(before)
  const total = /Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)/.exec(text)
  if (total === null) return undefined
  return { system: Number(total[1]), inUse: Number(total[2]), arenas: (text.match(/^Arena \d+:/gm) ?? []).length }
}

// ---------------------------------------------------------------------------------------------------------------
// Heap snapshots, summed by constructor

type ByConstructor = Map<string, { count: number; size: number }>

const summarizeSnapshot = (file: string): ByConstructor => {
  const snap = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const out: ByConstructor = new Map()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!] ?? "?"
    const name = snap.strings[snap.nodes[i + nameAt]!] ?? "?"
    const key =
      type === "string" || type === "concatenated string" || type === "sliced string" || type === "number"
        ? `(${type})`
        : type === "code"
          ? "(compiled code)"
          : `${type} ${name.length > 60 ? `${name.slice(0, 57)}…` : name}`
    const e = out.get(key) ?? { count: 0, size: 0 }
    e.count++
    e.size += snap.nodes[i + sizeAt]!
    out.set(key, e)
  }
  return out
}

const diffSnapshots = (a: ByConstructor, b: ByConstructor, streams: number) => {
  const rows: Array<{ key: string; perStreamCount: number; perStreamBytes: number }> = []
  for (const [key, e] of b) {
    const before = a.get(key) ?? { count: 0, size: 0 }
    const d = e.size - before.size
    if (Math.abs(d) / streams >= 8)
      rows.push({ key, perStreamCount: (e.count - before.count) / streams, perStreamBytes: d / streams })
  }
  rows.sort((x, y) => y.perStreamBytes - x.perStreamBytes)
  return rows
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

interface Server {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  readonly inspector: Inspector
  readonly stderr: () => string
}

const startServer = async (name: string, databaseUrl: string, authPort: number): Promise<Server> => {
  const nodeOptions = args["node-options"].split(" ").filter((s) => s !== "")
  const inspect = ["--inspect=127.0.0.1:0", ...nodeOptions]
  let child: ChildProcess
  let url: string | undefined
  if (name === "walera") {
    const port = await freePort()
    const extra: Record<string, string> = {}
    for (const kv of args["walera-env"].split(",").filter((s) => s !== "")) {
      const eq = kv.indexOf("=")
      extra[kv.slice(0, eq)] = kv.slice(eq + 1)
    }
    child = spawn(process.execPath, [...inspect, "src/main.ts"], {
      cwd: resolve(args["walera-root"] ?? repoRoot),
      env: {
        ...waleraBenchEnv(databaseUrl, authPort, port),
        WALERA_LIMITS_GLOBAL_CONCURRENT: String(Math.max(50_000, N + 1000)),
        ...extra,
      },
      stdio: ["ignore", "pipe", "pipe"],
    })
    url = `http://127.0.0.1:${port}`
  } else {
    const cli = ["testbench/bench/baseline.ts", "--port", "0", "--protocol", name === "plain-h2" ? "h2c" : "http1"]
    if (name === "plain-auth") cli.push("--auth-url", `http://127.0.0.1:${authPort}`)
    child = spawn(process.execPath, [...inspect, ...cli], {
      cwd: resolve(args["baseline-root"] ?? repoRoot),
      stdio: ["ignore", "pipe", "pipe"],
    })
  }
  let out = ""
  let err = ""
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString()
  })
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString()
  })
  const deadline = performance.now() + 60_000
  let wsUrl: string | undefined
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited during startup:\n${out}\n${err}`)
    if (performance.now() > deadline) throw new Error(`${name} not ready after 60 s:\n${out}\n${err}`)
    wsUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(err)?.[1]
    url ??= /SSE server on (http:\/\/\S+)/.exec(out)?.[1]
    const ready =
      wsUrl !== undefined &&
      url !== undefined &&
      (name !== "walera" ||
        (await fetch(`${url}/healthz`)
          .then((r) => r.status === 200)
          .catch(() => false)))
    if (ready) break
    await sleep(200)
  }
  return { name, child, url: url!, inspector: await Inspector.connect(wsUrl!), stderr: () => err }
}

/** The server writes the snapshot itself (to the temp directory; it is deleted once summed). */
const writeSnapshot = (s: Server, label: string): Promise<string> =>
  s.inspector.evaluate<string>(
    `process.getBuiltinModule("v8").writeHeapSnapshot(${JSON.stringify(join(tmpdir(), `walera-idle-${s.name}-${label}-${process.pid}.heapsnapshot`))})`,
  )

const stopServer = async (s: Server) => {
  s.inspector.close()
  s.child.kill("SIGTERM")
  await Promise.race([new Promise((r) => s.child.once("exit", r)), sleep(10_000)])
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL")
}

interface Snapshot {
  readonly map: Mappings
  readonly inside: InsideView
  readonly malloc: MallocView | undefined
}

const look = async (s: Server): Promise<Snapshot> => ({
  map: mappings(s.child.pid!),
  inside: await s.inspector.evaluate<InsideView>(INSIDE),
  malloc: args["malloc-stats"] ? await mallocStats(s.child.pid!, s.stderr) : undefined,
})

/** Per-stream differences of every figure between two looks. */
const perStream = (a: Snapshot, b: Snapshot, n: number) => {
  const d = (x: number, y: number) => kib((y - x) / n)
  const spaces: Record<string, number> = {}
  for (const k of Object.keys(b.inside.spaces)) spaces[k] = d(a.inside.spaces[k] ?? 0, b.inside.spaces[k] ?? 0)
  const heapPhysical = (v: InsideView) => Object.values(v.spaces).reduce((x, y) => x + y, 0)
  return {
    rss: d(a.map.rss, b.map.rss),
    v8HeapPhysical: d(heapPhysical(a.inside), heapPhysical(b.inside)),
    heapUsed: d(a.inside.memoryUsage.heapUsed, b.inside.memoryUsage.heapUsed),
    external: d(a.inside.memoryUsage.external, b.inside.memoryUsage.external),
    v8Malloced: d(a.inside.v8Malloced, b.inside.v8Malloced),
    brkHeap: d(a.map.brkHeap, b.map.brkHeap),
    anonymous: d(a.map.anonymous, b.map.anonymous),
    anonymousMinusV8: d(a.map.anonymous - heapPhysical(a.inside), b.map.anonymous - heapPhysical(b.inside)),
    ...(a.malloc !== undefined && b.malloc !== undefined
      ? { mallocSystem: d(a.malloc.system, b.malloc.system), mallocInUse: d(a.malloc.inUse, b.malloc.inUse) }
      : {}),
    spaces,
  }
}

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: ReadonlyArray<SamplingNode>
}
interface SamplingProfile {
  readonly head: SamplingNode
}

/** The sampled allocations that outlived scavenges, by allocation site and by the nearest frame of the server's own code. */
const printPromoted = (name: string, profile: SamplingProfile, n: number) => {
  const bySite = new Map<string, number>()
  const byOwn = new Map<string, number>()
  const where = (f: SamplingNode["callFrame"]) =>
    `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|adapters|domain)\//, "$1/")}:${f.lineNumber + 1}`
  const walk = (node: SamplingNode, own: string | undefined) => {
    const f = node.callFrame
    const mine = /\/(src|adapters|domain|testbench)\//.test(f.url) && !f.url.includes("node_modules") ? where(f) : own
    if (node.selfSize > 0) {
      const site = where(f)
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize)
      const o = mine ?? "(no frame of the server's code)"
      byOwn.set(o, (byOwn.get(o) ?? 0) + node.selfSize)
    }
    for (const c of node.children) walk(c, mine)
  }
  walk(profile.head, undefined)
  const total = [...bySite.values()].reduce((a, b) => a + b, 0)
  say(`${name}: sampled allocations that outlived the young generation: ${kib(total / n)} KiB per stream`)
  const top = (m: Map<string, number>, title: string) => {
    say(`  ${title}`)
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      const perStream = kib(v / n)
        .toFixed(2)
        .padStart(7)
      say(`    ${perStream}  ${k}`)
    }
  }
  top(bySite, "by allocation site")
  top(byOwn, "by the innermost frame of the server's own code")
}

const measure = async (name: string, databaseUrl: string, authPort: number) => {
  say(`${name}: starting`)
  const s = await startServer(name, databaseUrl, authPort)
  await sleep(2000)
  // Writing a snapshot leaves malloc holding its buffers: take it before the first look, and read the RSS figures of
  // a snapshot run as distorted anyway.
  const snapA = args["heap-snapshots"] ? await writeSnapshot(s, "before") : undefined
  const before = await look(s)
  await s.inspector.gc()
  await sleep(1000)
  const beforeGc = await look(s)
  const protocol: LoadProtocol = name === "plain-h2" ? "h2c" : (args.protocol as LoadProtocol)
  const specs: StreamSpec[] = []
  for (let pk = 1; pk <= N - 10; pk++) specs.push({ path: `/sse/v1/orders/${pk}`, token: TOKENS[pk % 2]! })
  for (let i = 0; i < 10; i++) specs.push({ path: "/sse/v1/orders/all", token: TOKENS[i % 2]! })
  if (args.promoted)
    await s.inspector.call("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: false,
    })
  const lg = startLoadGen({ url: s.url, streams: specs, protocol, recordXids: false, reconnect: false })
  const opened = await lg.connectAll()
  say(`${name}: ${opened.ok}/${N} streams open in ${(opened.ms / 1000).toFixed(1)} s`)
  const settled: Array<{ seconds: number; rssPerStreamKiB: number; v8HeapPerStreamKiB: number }> = []
  let after: Snapshot | undefined
  let waited = 0
  for (const at of args.settle.split(",").map(Number)) {
    await sleep((at - waited) * 1000)
    waited = at
    after = await look(s)
    const p = perStream(before, after, opened.ok)
    settled.push({ seconds: at, rssPerStreamKiB: p.rss, v8HeapPerStreamKiB: p.v8HeapPhysical })
    say(`${name}: +${at} s: ${p.rss} KiB RSS per stream (V8 heap ${p.v8HeapPhysical})`)
  }
  if (after === undefined) throw new Error("--settle needs at least one time")
  await s.inspector.gc()
  await sleep(1000)
  const afterGc = await look(s)
  if (args.promoted) {
    const { profile } = (await s.inspector.call("HeapProfiler.stopSampling")) as { profile: SamplingProfile }
    printPromoted(name, profile, opened.ok)
  }
  const snapB = args["heap-snapshots"] ? await writeSnapshot(s, "after") : undefined
  await lg.close()
  await stopServer(s)
  const objects =
    snapA !== undefined && snapB !== undefined
      ? diffSnapshots(summarizeSnapshot(snapA), summarizeSnapshot(snapB), opened.ok)
      : undefined
  for (const f of [snapA, snapB]) if (f !== undefined) rmSync(f, { force: true })
  return {
    name,
    streams: opened.ok,
    connectMs: Math.round(opened.ms),
    failures: opened.failures,
    before,
    after,
    afterGc,
    /** what the bench reports: RSS 3 s after the last open minus RSS before, no forced GC (last --settle time) */
    perStream: perStream(before, after, opened.ok),
    settled,
    /** the same after a full GC in both looks: what the streams themselves keep */
    perStreamAfterGc: perStream(beforeGc, afterGc, opened.ok),
    resourcesAfter: after.inside.resources,
    objects,
  }
}

const main = async () => {
  say("starting embedded PostgreSQL")
  const pgServer = await startEmbeddedPg()
  try {
    const admin = new pg.Client({ connectionString: pgServer.url() })
    await admin.connect()
    await admin.query(SCHEMA)
    await admin.query(seed(Math.max(10_000, N)))
    await admin.end()
    const auth = await startAuth()
    const results = []
    for (const name of args.servers.split(",")) {
      const r = await measure(name, pgServer.url(), auth.port)
      results.push(r)
      const p = r.perStream
      const g = r.perStreamAfterGc
      say(
        `${name}: per stream ${p.rss} KiB RSS (V8 heap ${p.v8HeapPhysical}, anon outside V8 ${p.anonymousMinusV8}, ` +
          `brk ${p.brkHeap}${p.mallocInUse === undefined ? "" : `, malloc in use ${p.mallocInUse} / held ${p.mallocSystem}`}); ` +
          `after GC ${g.rss} KiB (V8 heap ${g.v8HeapPhysical}, heap used ${g.heapUsed}, anon outside V8 ${g.anonymousMinusV8}` +
          `${g.mallocInUse === undefined ? "" : `, malloc in use ${g.mallocInUse} / held ${g.mallocSystem}`})`,
      )
      say(`${name}: live resources ${JSON.stringify(r.resourcesAfter)}`)
      if (r.objects !== undefined)
        for (const o of r.objects.slice(0, 25))
          say(`  ${o.perStreamBytes.toFixed(0).padStart(6)} B ×${o.perStreamCount.toFixed(2).padStart(5)}  ${o.key}`)
    }
    await auth.close()
    if (args.out !== undefined) writeFileSync(args.out, JSON.stringify({ streams: N, args, results }, null, 2))
  } finally {
    await pgServer.stop()
  }
}

await main()
process.exit(0)
