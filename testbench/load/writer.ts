// Load writer for the bench: paced transactions (steady / spike / ramp) that each update one order and one of its
// line items, recording every committed xid per order so the load generator's receipts can be checked for gaps.
import http from "node:http"
import { parseArgs } from "node:util"
import pg from "pg"
import { Counter, Histogram as PromHistogram, Registry } from "prom-client"
import { Histogram } from "./histogram.ts"

export type Scenario = "steady" | "spike" | "ramp"

export interface WriterOptions {
  readonly databaseUrl: string
  readonly scenario?: Scenario
  /** Transactions per second (steady; the baseline of spike; the end rate of ramp). */
  readonly rate: number
  /** Line items updated per transaction (all of the same order). Default 1. */
  readonly rowsPerTx?: number
  /** Seconds; undefined = until stop(). */
  readonly durationSec?: number
  /** The orders to update (the subscribed ones); one is picked at random per transaction. */
  readonly orderIds: ReadonlyArray<number>
  readonly poolSize?: number
  /** Transactions waiting for a connection beyond which the schedule is skipped (and counted). Default 2000. */
  readonly maxQueued?: number
  readonly metricsPort?: number
  readonly log?: (line: string) => void
}

export interface WriterStats {
  readonly issued: number
  readonly committed: number
  readonly errors: number
  /** scheduled transactions not issued because too many were queued (the database could not keep up) */
  readonly skipped: number
  readonly inFlight: number
  readonly commitLatency: ReturnType<Histogram["summary"]>
  readonly lastError: string | undefined
}

export interface Writer {
  readonly start: () => Promise<void>
  readonly stats: () => WriterStats
  /** order id → xids of committed transactions that touched it (commit order per connection) */
  readonly committed: () => Map<number, number[]>
  /** Current target rate (tx/s) as the scenario shapes it. */
  readonly rateAt: (elapsedSec: number) => number
  /** Stops issuing and waits for in-flight transactions. */
  readonly stop: () => Promise<void>
  /** Resolves when the duration is over (or stop() was called). */
  readonly done: Promise<void>
}

const STATUSES = ["new", "paid", "packed", "shipped", "delivered", "returned"]

export const rateFunction =
  (scenario: Scenario, rate: number, durationSec: number | undefined) =>
  (t: number): number => {
    switch (scenario) {
      case "steady":
        return rate
      case "spike":
        // baseline rate, with 10× bursts for 5 s at the end of every 30 s period
        return t % 30 >= 25 ? rate * 10 : rate
      case "ramp":
        return durationSec === undefined || durationSec <= 0 ? rate : (rate * Math.min(t, durationSec)) / durationSec
    }
  }

export const startWriter = (options: WriterOptions): Writer => {
  const scenario = options.scenario ?? "steady"
  const rowsPerTx = Math.max(1, options.rowsPerTx ?? 1)
  const maxQueued = options.maxQueued ?? 2000
  const log = options.log ?? (() => {})
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 8 })
  pool.on("error", (e) => log(`[writer] idle client error: ${e.message}`))
  // a checked-out client whose server goes away must not crash the process (its query fails and is counted)
  pool.on("connect", (client) => client.on("error", () => {}))
  const rateAt = rateFunction(scenario, options.rate, options.durationSec)
  const items = new Map<number, number[]>()
  const committedXids = new Map<number, number[]>()
  const latency = new Histogram()
  let issued = 0
  let committed = 0
  let errors = 0
  let skipped = 0
  let inFlight = 0
  let lastError: string | undefined
  let running = false
  let timer: NodeJS.Timeout | undefined
  let resolveDone: () => void = () => {}
  const done = new Promise<void>((r) => {
    resolveDone = r
  })
  const inFlightSet = new Set<Promise<void>>()

  const registry = new Registry()
  const txTotal = new Counter({ name: "writer_tx_total", help: "Committed transactions.", registers: [registry] })
  const errTotal = new Counter({ name: "writer_errors_total", help: "Failed transactions.", registers: [registry] })
  const skippedTotal = new Counter({
    name: "writer_skipped_total",
    help: "Scheduled transactions not issued because the queue was full.",
    registers: [registry],
  })
  const commitLatency = new PromHistogram({
    name: "writer_commit_latency_seconds",
    help: "Issue → commit acknowledged.",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  })
  let metricsServer: http.Server | undefined

  const one = async (): Promise<void> => {
    const order = options.orderIds[Math.floor(Math.random() * options.orderIds.length)]!
    const its = items.get(order) ?? []
    const status = STATUSES[Math.floor(Math.random() * STATUSES.length)]!
    const total = Math.floor(Math.random() * 100_000)
    const picked: number[] = []
    for (let k = 0; k < rowsPerTx && its.length > 0; k++) picked.push(its[Math.floor(Math.random() * its.length)]!)
    // One round trip: simple-protocol multi-statement transaction; only numbers and fixed literals are inlined.
    const sql =
      `BEGIN; UPDATE orders SET status='${status}', total_cents=${total}, updated_at=now() WHERE id=${order} ` +
      `RETURNING txid_current() AS xid; ` +
      picked.map((id) => `UPDATE line_items SET qty=qty+1 WHERE id=${id}; `).join("") +
      "COMMIT"
    const started = performance.now()
    const client = await pool.connect()
    try {
      const results = (await client.query(sql)) as unknown as pg.QueryResult[]
      const xidText = results[1]?.rows[0]?.xid as string | undefined
      if (xidText === undefined) throw new Error("order row missing")
      const xid = Number(BigInt(xidText) & 0xffffffffn)
      let list = committedXids.get(order)
      if (list === undefined) committedXids.set(order, (list = []))
      list.push(xid)
      committed++
      txTotal.inc()
      const ms = performance.now() - started
      latency.record(ms)
      commitLatency.observe(ms / 1000)
      client.release()
    } catch (e) {
      errors++
      errTotal.inc()
      lastError = (e as Error).message
      await client.query("ROLLBACK").catch(() => {})
      client.release()
    }
  }

  const issue = () => {
    issued++
    inFlight++
    const p = one().finally(() => {
      inFlight--
      inFlightSet.delete(p)
    })
    inFlightSet.add(p)
  }

  const start = async () => {
    const r = await pool.query("SELECT order_id, array_agg(id ORDER BY id) AS ids FROM line_items GROUP BY order_id")
    for (const row of r.rows as Array<{ order_id: string; ids: string[] }>)
      items.set(Number(row.order_id), row.ids.map(Number))
    // open the pool's connections before the clock starts
    await Promise.all(Array.from({ length: options.poolSize ?? 8 }, () => pool.query("SELECT 1")))
    if (options.metricsPort !== undefined) {
      metricsServer = http.createServer(async (_req, res) => {
        res.writeHead(200, { "content-type": registry.contentType })
        res.end(await registry.metrics())
      })
      metricsServer.listen(options.metricsPort, "127.0.0.1")
    }
    running = true
    const t0 = performance.now()
    let last = t0
    let due = 0
    const tick = () => {
      if (!running) return
      const now = performance.now()
      const elapsed = (now - t0) / 1000
      if (options.durationSec !== undefined && elapsed >= options.durationSec) {
        running = false
        resolveDone()
        return
      }
      due += (rateAt(elapsed) * (now - last)) / 1000
      last = now
      while (due >= 1) {
        due -= 1
        if (inFlight >= maxQueued) {
          skipped++
          skippedTotal.inc()
        } else issue()
      }
      timer = setTimeout(tick, 1)
    }
    tick()
    log(
      `[writer] ${scenario} at ${options.rate} tx/s, ${rowsPerTx} line item(s) per tx, ${options.orderIds.length} orders`,
    )
  }

  let stopped: Promise<void> | undefined
  const stop = () => (stopped ??= stopNow())
  const stopNow = async () => {
    running = false
    if (timer !== undefined) clearTimeout(timer)
    resolveDone()
    await Promise.all([...inFlightSet])
    await pool.end().catch(() => {})
    metricsServer?.close()
  }

  return {
    start,
    stats: () => ({ issued, committed, errors, skipped, inFlight, commitLatency: latency.summary(), lastError }),
    committed: () => committedXids,
    rateAt,
    stop,
    done,
  }
}

const runCli = async () => {
  const { values } = parseArgs({
    options: {
      "database-url": { type: "string", default: process.env["WALERA_DATABASE_URL"] },
      scenario: { type: "string", default: "steady" },
      rate: { type: "string", default: "100" },
      rows: { type: "string", default: "1" },
      duration: { type: "string", default: "60" },
      orders: { type: "string", default: "1-9990" },
      pool: { type: "string", default: "8" },
      "metrics-port": { type: "string" },
      help: { type: "boolean", default: false },
    },
  })
  if (values.help || values["database-url"] === undefined) {
    process.stdout.write(`Usage: node testbench/load/writer.ts --database-url postgres://… [--scenario steady|spike|ramp]
  [--rate 100] [--rows 1] [--duration 60] [--orders 1-9990|1,2,3] [--pool 8] [--metrics-port 9402]
Expects the bench schema (orders, line_items); see testbench/bench/bench.ts.
`)
    process.exit(values.help ? 0 : 2)
  }
  const orderIds: number[] = []
  for (const part of values.orders.split(",")) {
    const m = /^(\d+)-(\d+)$/.exec(part)
    if (m) for (let k = Number(m[1]); k <= Number(m[2]); k++) orderIds.push(k)
    else orderIds.push(Number(part))
  }
  const scenario = values.scenario as Scenario
  if (!["steady", "spike", "ramp"].includes(scenario)) throw new Error(`unknown scenario ${scenario}`)
  const w = startWriter({
    databaseUrl: values["database-url"],
    scenario,
    rate: Number(values.rate),
    rowsPerTx: Number(values.rows),
    durationSec: Number(values.duration),
    orderIds,
    poolSize: Number(values.pool),
    metricsPort: values["metrics-port"] === undefined ? undefined : Number(values["metrics-port"]),
    log: (l) => process.stdout.write(`${l}\n`),
  })
  const stop = async () => {
    await w.stop()
    process.stdout.write(`${JSON.stringify(w.stats())}\n`)
    process.exit(0)
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
  await w.start()
  let last = 0
  const timer = setInterval(() => {
    const s = w.stats()
    process.stdout.write(
      `[writer] committed/s=${((s.committed - last) / 5).toFixed(0)} errors=${s.errors} skipped=${s.skipped} ` +
        `in-flight=${s.inFlight} p99 commit=${s.commitLatency.p99Ms.toFixed(1)}ms\n`,
    )
    last = s.committed
  }, 5000)
  await w.done
  clearInterval(timer)
  await stop()
}

if (import.meta.main) await runCli()
