// The soak's report: one JSON document with everything measured and a markdown page for people.
import type { FdBreakdown } from "./monitor.ts"
import type { OracleResult, Violation } from "./oracle.ts"
import type { SelfTestCase } from "./selftest.ts"
import type { WriterStats } from "./writer.ts"

export interface ResourceSummary {
  readonly instance: string
  readonly minutes: number
  readonly rss: { start: number; end: number; peak: number }
  readonly heap: { start: number; end: number; peak: number }
  readonly fds: { start: number; end: number; peak: number }
  /** By role, when idle: right after start and after every client closed. */
  readonly fdsIdle: { start: FdBreakdown | null; end: FdBreakdown | null }
  readonly idle: { start: { heap: number; rss: number } | null; end: { heap: number; rss: number } | null }
  readonly streamsPeak: number
  readonly loopLagP99MaxMs: number
  readonly heapDriftMiBPerMin: number | null
  readonly rssDriftMiBPerMin: number | null
  readonly leak: string | null
}

export interface DeployMeasure {
  readonly incarnation: string
  readonly spread: string
  readonly at: string
  readonly exitMs: number
  readonly exitCode: number | null
  readonly restartMs: number
  readonly streamsAtSigterm: number
  readonly shutdownFrames: number
  readonly retryBeforeShutdownMs: { min: number; max: number; count: number }
  /** The stopped process's clients coming back: how many, how fast, how many refused. */
  readonly wave: {
    readonly reconnects: number
    readonly peakPerSec: number
    readonly delayMs: { p50: number; p90: number; max: number }
    readonly refusedByStatus: Record<string, number>
  }
  readonly windowSeconds: number
  readonly peakOpenCallsPerSec: number
  readonly peakAuthCallsPerSec: number
  readonly opensInWindow: number
  readonly refusedInWindow: number
  readonly refusedByStatus: Record<string, number>
  readonly overlappedFaults: string[]
}

export interface SoakReport {
  readonly verdict: "pass" | "fail"
  readonly failures: string[]
  readonly startedAt: string
  readonly server: string
  readonly config: Record<string, unknown>
  readonly durationSeconds: number
  readonly faults: {
    readonly byKind: Record<string, number>
    readonly log: Array<{ at: string; kind: string; ms: number; detail: string }>
  }
  readonly writer: WriterStats & {
    readonly ratePerSec: number
    readonly bookkeeping: { missingInDb: number[]; unknownInDb: number[] }
  }
  readonly oracle: {
    readonly stats: OracleResult["stats"]
    readonly violationsByRule: Record<string, number>
    readonly examples: Violation[]
    readonly multiRoot: OracleResult["multiRoot"]
  }
  readonly selfTest: SelfTestCase[]
  readonly resources: ResourceSummary[]
  readonly slots: { readonly maxSeen: number; readonly overLive: number; readonly atEnd: number | null }
  readonly caps: {
    readonly idleAtEnd: Record<string, number | null>
    readonly perUserProbe: Record<string, { opened: number; expected: number; overCapStatus: number }>
  }
  readonly readyzAtEnd: Record<string, string>
  readonly deploys: DeployMeasure[]
  readonly postgres: Record<string, number>
  readonly clients: {
    readonly requests: number
    readonly byStatus: Record<string, number>
    readonly byBehaviour: Record<string, number>
  }
  readonly waleraLog: Record<string, Record<string, number>>
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`
const esc = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ")

export const renderMarkdown = (r: SoakReport): string => {
  const lines: string[] = []
  const p = (s = "") => lines.push(s)
  p(`# Soak ${r.startedAt} — ${r.verdict.toUpperCase()}`)
  p()
  p(`Server: ${r.server}. ${Math.round(r.durationSeconds)} s in total. Config: \`${JSON.stringify(r.config)}\``)
  p()
  if (r.failures.length > 0) {
    p("## Why it failed")
    p()
    for (const f of r.failures) p(`- ${f}`)
    p()
  }
  p("## Summary")
  p()
  p("| field | value |")
  p("|---|---|")
  p(
    `| faults injected | ${
      Object.entries(r.faults.byKind)
        .map(([k, n]) => `${k} ×${n}`)
        .join(", ") || "none"
    } |`,
  )
  p(
    `| transactions committed | ${r.writer.committed} (${r.writer.ratePerSec.toFixed(1)}/s; ${r.writer.ambiguous} commits cut off, ${r.writer.ambiguousCommitted} of them found committed) |`,
  )
  const s = r.oracle.stats
  p(
    `| streams checked | ${s.streamsChecked} (+ ${s.streamsRefused} refused opens, ${s.streamsAbortedByClient} hung up mid-handshake) |`,
  )
  p(`| tx frames checked | ${s.framesChecked}; ${s.requiredChecked} required deliveries checked |`)
  p(`| violations | ${Object.values(r.oracle.violationsByRule).reduce((a, b) => a + b, 0)} |`)
  p(
    `| open gap (informational) | ${s.openWindowMisses} touching transactions committed between request and headers not delivered, on ${s.openWindowStreams} streams |`,
  )
  p(`| tail gaps before a terminal frame (allowed) | ${s.tailGapsAllowed} |`)
  p(`| slowest commit → client | ${(s.maxCommitToReceiveMs / 1000).toFixed(2)} s |`)
  p(
    `| replication slots | max ${r.slots.maxSeen}, ${r.slots.overLive} samples above the live process count, ${r.slots.atEnd} after both stopped |`,
  )
  p(
    `| caps at idle | ${Object.entries(r.caps.idleAtEnd)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ")} |`,
  )
  p()
  p("## Violations by rule")
  p()
  if (Object.keys(r.oracle.violationsByRule).length === 0) p("None.")
  else {
    p("| rule | count |")
    p("|---|---|")
    for (const [k, v] of Object.entries(r.oracle.violationsByRule)) p(`| ${k} | ${v} |`)
    p()
    p("### Evidence (first examples per rule)")
    p()
    for (const v of r.oracle.examples) {
      p(
        `- **${v.rule}** stream \`${v.stream ?? "-"}\` on ${v.instance ?? "-"}${v.xid !== undefined ? ` tx ${v.xid}` : ""}: ${v.detail}`,
      )
      if (v.bytes !== undefined) {
        p("  ```")
        for (const l of v.bytes.split("\n")) p(`  ${l}`)
        p("  ```")
      }
    }
  }
  p()
  p("## Self-test: this run's streams, damaged on purpose")
  p()
  p("| damage | stream | expected | oracle found | |")
  p("|---|---|---|---|---|")
  for (const c of r.selfTest)
    p(
      `| ${c.name} | ${c.stream} | ${c.expected ?? "nothing"} | ${c.found.join(", ") || "nothing"} | ${c.ok ? "ok" : "WRONG"} |`,
    )
  p()
  p("## Multi-root drops against the metric")
  p()
  p("| instance | metric | expected from the clients' view |")
  p("|---|---|---|")
  for (const m of r.oracle.multiRoot) p(`| ${m.instance} | ${m.observed} | ${m.lower} … ${m.upper} |`)
  p()
  p("## Resources per Walera process")
  p()
  p(
    "| process | minutes | RSS start / end / peak | heap start / end / peak | fds start / end / peak | streams peak | loop lag p99 max | heap drift | RSS drift | leak |",
  )
  p("|---|---|---|---|---|---|---|---|---|---|")
  for (const x of r.resources)
    p(
      `| ${x.instance} | ${x.minutes.toFixed(1)} | ${mib(x.rss.start)} / ${mib(x.rss.end)} / ${mib(x.rss.peak)} | ${mib(x.heap.start)} / ${mib(x.heap.end)} / ${mib(x.heap.peak)} | ${x.idle.start === null ? "–" : mib(x.idle.start.heap)} → ${x.idle.end === null ? "–" : mib(x.idle.end.heap)} | ${x.fds.start} / ${x.fds.end} / ${x.fds.peak} | ${x.streamsPeak} | ${x.loopLagP99MaxMs.toFixed(0)} ms | ${x.heapDriftMiBPerMin === null ? "–" : `${x.heapDriftMiBPerMin.toFixed(2)} MiB/min`} | ${x.rssDriftMiBPerMin === null ? "–" : `${x.rssDriftMiBPerMin.toFixed(2)} MiB/min`} | ${x.leak ?? "no"} |`,
    )
  p()
  p("## Rolling deploys: reconnect wave by shutdown.reconnect_spread")
  p()
  if (r.deploys.length === 0) p("No rolling deploy in this run.")
  else {
    p("| | " + r.deploys.map((d) => `${d.incarnation} (spread ${d.spread})`).join(" | ") + " |")
    p("|---|" + r.deploys.map(() => "---").join("|") + "|")
    const row = (name: string, f: (d: DeployMeasure) => string) => p(`| ${name} | ${r.deploys.map(f).join(" | ")} |`)
    row("streams at SIGTERM", (d) => String(d.streamsAtSigterm))
    row("shutdown frames received", (d) => String(d.shutdownFrames))
    row("per-stream retry: before shutdown", (d) =>
      d.retryBeforeShutdownMs.count === 0
        ? "none"
        : `${d.retryBeforeShutdownMs.count}× ${d.retryBeforeShutdownMs.min}–${d.retryBeforeShutdownMs.max} ms`,
    )
    row("SIGTERM → exit", (d) => `${d.exitMs} ms (code ${d.exitCode})`)
    row("its clients back (reconnects)", (d) => String(d.wave.reconnects))
    row("peak reconnects/s", (d) => String(d.wave.peakPerSec))
    row(
      "shutdown → reconnect p50 / p90 / max",
      (d) => `${d.wave.delayMs.p50} / ${d.wave.delayMs.p90} / ${d.wave.delayMs.max} ms`,
    )
    row("reconnects refused", (d) => JSON.stringify(d.wave.refusedByStatus))
    row("peak auth calls/s for opens", (d) => String(d.peakOpenCallsPerSec))
    row("peak auth calls/s, all", (d) => String(d.peakAuthCallsPerSec))
    row("opens in window", (d) => String(d.opensInWindow))
    row("opens refused in window", (d) => `${d.refusedInWindow} ${JSON.stringify(d.refusedByStatus)}`)
    row("window", (d) => `${d.windowSeconds} s`)
    row("other faults in window", (d) => esc(d.overlappedFaults.join(", ") || "none"))
  }
  p()
  p("## Faults")
  p()
  p("| at | kind | took | detail |")
  p("|---|---|---|---|")
  for (const f of r.faults.log) p(`| ${f.at} | ${f.kind} | ${f.ms} ms | ${esc(f.detail)} |`)
  p()
  p("## Writer, clients, PostgreSQL")
  p()
  p(`- writer by kind: ${JSON.stringify(r.writer.byKind)}`)
  if (r.writer.unexpectedErrors.length > 0) p(`- writer errors: ${esc(r.writer.unexpectedErrors.join("; "))}`)
  p(
    `- bookkeeping: ${r.writer.bookkeeping.missingInDb.length} recorded commits missing from soak_tx, ${r.writer.bookkeeping.unknownInDb.length} unrecorded rows in soak_tx`,
  )
  p(
    `- client requests: ${r.clients.requests}; by status ${JSON.stringify(r.clients.byStatus)}; by behaviour ${JSON.stringify(r.clients.byBehaviour)}`,
  )
  p(`- ends by reason: ${JSON.stringify(r.oracle.stats.endsByReason)}`)
  p(`- PostgreSQL log: ${JSON.stringify(r.postgres)}`)
  for (const x of r.resources)
    if (x.fdsIdle.end !== null)
      p(`- ${x.instance} fds when idle: start ${JSON.stringify(x.fdsIdle.start)}, end ${JSON.stringify(x.fdsIdle.end)}`)
  p(`- /readyz after the faults: ${esc(JSON.stringify(r.readyzAtEnd))}`)
  p(`- per-user cap probe at the end: ${JSON.stringify(r.caps.perUserProbe)}`)
  p()
  p("## Walera log lines (warn and above) by message")
  p()
  for (const [inc, msgs] of Object.entries(r.waleraLog)) {
    const top = Object.entries(msgs)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
    p(`- ${inc}: ${top.map(([m, n]) => `${esc(m)} ×${n}`).join("; ") || "none"}`)
  }
  p()
  return lines.join("\n")
}
