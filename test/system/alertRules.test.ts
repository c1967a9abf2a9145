// The alert rules and the scrape configuration through promtool, the checker that ships with Prometheus: syntax, and
// behaviour on synthetic series (each rule fires on the series it is meant for and stays quiet on healthy ones).
// Needs promtool on PATH (Debian's "prometheus" package); the checks that need no tool are in
// test/adapters/deploy.test.ts.
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse, stringify } from "yaml"
import { alertRules, type Rule, read, root } from "../support/DeployAssets.ts"

const promtool = (args: ReadonlyArray<string>): { status: number | null; output: string } => {
  const result = spawnSync("promtool", args, { cwd: root, encoding: "utf8" })
  if (result.error !== undefined && (result.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(
      "promtool is not on PATH: install it with `apt-get install -y prometheus` (Debian/Ubuntu) or put the " +
        "promtool binary of a Prometheus release on PATH",
    )
  }
  if (result.error !== undefined) throw result.error
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` }
}

describe("Prometheus alert rules (promtool)", () => {
  it("promtool accepts the rules and the scrape configuration", () => {
    const rules = promtool(["check", "rules", "deploy/prometheus/alerts.yml"])
    expect(rules.status, rules.output).toBe(0)
    const config = promtool(["check", "config", "deploy/prometheus/prometheus.yml"])
    expect(config.status, config.output).toBe(0)
  })

  it("fire on the series they are meant for and stay quiet on healthy ones (promtool test rules)", () => {
    // Annotations are stripped so the expectations pin expressions, durations and labels; the annotation templates
    // are checked by `promtool check rules` above.
    const doc = parse(read("deploy/prometheus/alerts.yml")) as { groups: Array<{ rules: Array<Rule> }> }
    for (const group of doc.groups)
      for (const rule of group.rules) delete (rule as { annotations?: unknown }).annotations
    const severity = new Map(alertRules().map((rule) => [rule.alert, rule.labels?.severity ?? ""]))
    const id = { job: "walera", instance: "walera:9090" }
    const series = (name: string, labels: Record<string, string> = {}) =>
      `${name}{${Object.entries({ ...id, ...labels })
        .map(([k, v]) => `${k}="${v}"`)
        .join(",")}}`
    const GiB = 2 ** 30
    // [alert, firing series, healthy series, eval time]
    const cases: Array<[string, Array<[string, string]>, Array<[string, string]>, string]> = [
      ["WaleraDown", [[series("up"), "0x10"]], [[series("up"), "1x10"]], "5m"],
      [
        "WaleraReplicationDisconnected",
        [[series("walera_pg_connection_status"), "1 1 0x10"]],
        [[series("walera_pg_connection_status"), "1x10"]],
        "5m",
      ],
      [
        "WaleraWalLagHigh",
        [[series("walera_wal_lsn_lag_bytes"), `${300 * 2 ** 20}x10`]],
        [[series("walera_wal_lsn_lag_bytes"), `${200 * 2 ** 20}x10`]],
        "8m",
      ],
      [
        "WaleraCommitToDecodeLagHigh",
        [
          [series("walera_wal_lag_seconds_bucket", { le: "1" }), "0x20"],
          [series("walera_wal_lag_seconds_bucket", { le: "2.5" }), "0+60x20"],
          [series("walera_wal_lag_seconds_bucket", { le: "+Inf" }), "0+60x20"],
        ],
        [
          [series("walera_wal_lag_seconds_bucket", { le: "0.1" }), "0+60x20"],
          [series("walera_wal_lag_seconds_bucket", { le: "1" }), "0+60x20"],
          [series("walera_wal_lag_seconds_bucket", { le: "2.5" }), "0+60x20"],
          [series("walera_wal_lag_seconds_bucket", { le: "+Inf" }), "0+60x20"],
        ],
        "15m",
      ],
      [
        "WaleraAuthBreakerOpen",
        [[series("walera_auth_circuit_breaker_state"), "0 1x10"]],
        [[series("walera_auth_circuit_breaker_state"), "0 2 0 2 0 2 0 2 0 2"]],
        "5m",
      ],
      [
        "WaleraSlowConsumerDisconnects",
        [[series("walera_subscriber_disconnects_total", { reason: "slow_consumer" }), "0+30x30"]],
        [
          [series("walera_subscriber_disconnects_total", { reason: "slow_consumer" }), "0+1x30"],
          [series("walera_subscriber_disconnects_total", { reason: "client_closed" }), "0+600x30"],
        ],
        "20m",
      ],
      [
        "WaleraMultiRootDrops",
        [[series("walera_tx_dropped_total", { reason: "multi_root" }), "0 0 0 1 1 1 1 1"]],
        [
          [series("walera_tx_dropped_total", { reason: "multi_root" }), "0x8"],
          [series("walera_tx_dropped_total", { reason: "slow_consumer" }), "0+5x8"],
        ],
        "5m",
      ],
      [
        "WaleraEventLoopLagHigh",
        [[series("nodejs_eventloop_lag_p99_seconds"), "0.25x10"]],
        [[series("nodejs_eventloop_lag_p99_seconds"), "0.02x10"]],
        "8m",
      ],
      [
        "WaleraMemoryHigh",
        [[series("process_resident_memory_bytes"), `${1.75 * GiB}x20`]],
        [[series("process_resident_memory_bytes"), `${1.25 * GiB}x20`]],
        "15m",
      ],
      [
        "WaleraStreamOpens5xx",
        [
          [series("walera_stream_opens_total", { status: "200" }), "0+60x20"],
          [series("walera_stream_opens_total", { status: "503" }), "0+60x20"],
        ],
        [
          [series("walera_stream_opens_total", { status: "200" }), "0+600x20"],
          [series("walera_stream_opens_total", { status: "401" }), "0+300x20"],
          [series("walera_stream_opens_total", { status: "503" }), "0+6x20"],
        ],
        "15m",
      ],
    ]
    expect(cases.map(([name]) => name).sort()).toEqual([...severity.keys()].sort())
    const tests = cases.flatMap(([alertname, firing, healthy, evalTime]) => [
      {
        interval: "1m",
        input_series: firing.map(([s, values]) => ({ series: s, values })),
        alert_rule_test: [
          {
            eval_time: evalTime,
            alertname,
            exp_alerts: [{ exp_labels: { ...id, severity: severity.get(alertname) } }],
          },
        ],
      },
      {
        interval: "1m",
        input_series: healthy.map(([s, values]) => ({ series: s, values })),
        alert_rule_test: [{ eval_time: evalTime, alertname, exp_alerts: [] }],
      },
    ])
    const dir = mkdtempSync(join(tmpdir(), "walera-alerts-"))
    try {
      writeFileSync(join(dir, "alerts.yml"), stringify(doc))
      writeFileSync(join(dir, "alerts.test.yml"), stringify({ rule_files: ["alerts.yml"], tests }))
      const result = promtool(["test", "rules", join(dir, "alerts.test.yml")])
      expect(result.status, result.output).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
