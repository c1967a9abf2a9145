// Deployment assets (deploy/, docs/operations.md) checked against the code they describe: every metric a dashboard
// panel or alert rule queries is one the real registry exports, the Kubernetes manifests keep the probes, resources
// and grace period the service relies on, the image runs as non-root with a health check, the shipped config.yaml is
// accepted by the real configuration loader, and the alert rules pass promtool (syntax and behaviour).
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { parse, parseAllDocuments, stringify } from "yaml"
import * as PromObservability from "../../adapters/metrics/PromObservability.ts"
import { CONFIG_KEYS, loadConfig, parseDuration } from "../../src/Config.ts"

const root = resolve(import.meta.dirname, "../..")
const read = (path: string): string => readFileSync(join(root, path), "utf8")

// ---------------------------------------------------------------------------------------------------------------------
// Helpers

interface Rule {
  readonly alert: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}

const alertRules = (): Array<Rule> => {
  const doc = parse(read("deploy/prometheus/alerts.yml")) as { groups: Array<{ rules: Array<Rule> }> }
  return doc.groups.flatMap((group) => group.rules)
}

interface Panel {
  readonly type: string
  readonly title?: string
  readonly datasource?: { uid?: string }
  readonly targets?: Array<{ expr?: string; datasource?: { uid?: string } }>
  readonly panels?: Array<Panel>
}

const dashboard = () =>
  JSON.parse(read("deploy/grafana/walera-dashboard.json")) as {
    schemaVersion: number
    uid: string
    panels: Array<Panel>
    templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string }> }
  }

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
const DS_UID = "${DS_PROMETHEUS}"

const allPanels = (panels: ReadonlyArray<Panel>): Array<Panel> =>
  panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])])

const dashboardExprs = (): Array<string> => {
  const d = dashboard()
  const fromPanels = allPanels(d.panels).flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? ""))
  const fromVariables = d.templating.list.flatMap((variable) =>
    variable.type === "query"
      ? [
          variable.definition ?? "",
          typeof variable.query === "string" ? variable.query : ((variable.query as { query?: string })?.query ?? ""),
        ]
      : [],
  )
  return [...fromPanels, ...fromVariables].filter((expr) => expr !== "")
}

const METRIC = /\b(walera_[a-z0-9_]+|nodejs_[a-z0-9_]+|process_[a-z0-9_]+)\b/g

/** Metric names referenced by a PromQL expression; label values (quoted strings) are not names. */
const referencedMetrics = (expr: string): Array<string> => {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
  return [...code.matchAll(METRIC)].map((match) => match[1]!)
}

const exportedMetrics = async (): Promise<Map<string, string>> => {
  const json = await PromObservability.make("0.0.0-test").registry.getMetricsAsJSON()
  return new Map(json.map((metric) => [metric.name, String(metric.type)]))
}

/** A referenced series name is exported when it is a family, or a _bucket/_sum/_count series of a histogram. */
const isExported = (name: string, exported: ReadonlyMap<string, string>): boolean => {
  if (exported.has(name)) return true
  const suffix = /_(bucket|sum|count)$/.exec(name)
  if (suffix === null) return false
  const type = exported.get(name.slice(0, -suffix[0].length))
  return type === "histogram" || (type === "summary" && suffix[1] !== "bucket")
}

interface Container {
  readonly name: string
  readonly image: string
  readonly env?: Array<{
    name: string
    value?: string
    valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } }
  }>
  readonly ports?: Array<{ name?: string; containerPort: number }>
  readonly resources: { requests: Record<string, string>; limits: Record<string, string> }
  readonly livenessProbe: Record<string, unknown> & { httpGet: { path: string; port: string | number } }
  readonly readinessProbe: Record<string, unknown> & { httpGet: { path: string; port: string | number } }
  readonly startupProbe?: Record<string, unknown> & { httpGet: { path: string; port: string | number } }
  readonly securityContext: Record<string, unknown> & { capabilities: { drop: Array<string> } }
  readonly volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>
}

const deployment = () =>
  parse(read("deploy/kubernetes/deployment.yaml")) as {
    kind: string
    spec: {
      replicas: number
      strategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } }
      template: {
        metadata: { labels: Record<string, string>; annotations: Record<string, string> }
        spec: {
          terminationGracePeriodSeconds: number
          securityContext: Record<string, unknown>
          containers: Array<Container>
          volumes: Array<{ name: string; configMap?: { name: string; items?: Array<{ key: string; path: string }> } }>
        }
      }
    }
  }

const container = (): Container => {
  const containers = deployment().spec.template.spec.containers
  expect(containers).toHaveLength(1)
  return containers[0]!
}

const configMap = () =>
  parse(read("deploy/kubernetes/configmap.yaml")) as {
    kind: string
    metadata: { name: string }
    data: Record<string, string>
  }

/** Kubernetes quantities used here: "2", "500m", "4Gi", "512Mi". */
const quantity = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$/.exec(text)
  if (match === null) throw new Error(`unsupported quantity ${text}`)
  const factor: Record<string, number> = { m: 0.001, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }
  return Number(match[1]) * (match[2] === undefined ? 1 : factor[match[2]]!)
}

/** GitHub's heading anchors: lower case, punctuation removed, spaces → "-". */
const headingAnchors = (markdown: string): Set<string> =>
  new Set(
    [...markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((match) =>
      match[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-"),
    ),
  )

// `promtool` from the Debian/Ubuntu "prometheus" package (or a Prometheus release tarball).
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

// ---------------------------------------------------------------------------------------------------------------------

describe("metrics referenced by the dashboard and the alert rules", () => {
  it("finds metric names in PromQL, not in label values", () => {
    expect(
      referencedMetrics(
        'histogram_quantile(0.99, sum by (le) (rate(walera_wal_lag_seconds_bucket{job="walera_x"}[5m]))) > 1',
      ),
    ).toEqual(["walera_wal_lag_seconds_bucket"])
  })

  it("every metric in every dashboard query is exported by the real registry", async () => {
    const exported = await exportedMetrics()
    const exprs = dashboardExprs()
    expect(exprs.length).toBeGreaterThan(15)
    const missing = exprs.flatMap((expr) =>
      referencedMetrics(expr)
        .filter((name) => !isExported(name, exported))
        .map((name) => `${name} in ${expr}`),
    )
    expect(missing).toEqual([])
    for (const expr of exprs) expect(referencedMetrics(expr).length, expr).toBeGreaterThan(0)
  })

  it("every metric in every alert rule is exported by the real registry", async () => {
    const exported = await exportedMetrics()
    const missing = alertRules().flatMap((rule) =>
      referencedMetrics(rule.expr)
        .filter((name) => !isExported(name, exported))
        .map((name) => `${name} in ${rule.alert}`),
    )
    expect(missing).toEqual([])
  })

  it("the dashboard shows every metric family Walera defines", async () => {
    const exported = await exportedMetrics()
    const shown = new Set(
      dashboardExprs()
        .flatMap(referencedMetrics)
        .map((name) => name.replace(/_(bucket|sum|count)$/, "")),
    )
    const walera = [...exported.keys()].filter((name) => name.startsWith("walera_"))
    expect(walera.length).toBeGreaterThan(10)
    expect(walera.filter((name) => !shown.has(name))).toEqual([])
  })
})

describe("Grafana dashboard", () => {
  it("uses the DS_PROMETHEUS data-source variable in every panel and query", () => {
    const d = dashboard()
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(d.uid).toBe("walera-overview")
    const variable = d.templating.list.find((v) => v.name === "DS_PROMETHEUS")
    expect(variable?.type).toBe("datasource")
    for (const panel of allPanels(d.panels).filter((p) => p.type !== "row")) {
      expect(panel.datasource?.uid, panel.title).toBe(DS_UID)
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0)
      for (const target of panel.targets ?? []) expect(target.datasource?.uid, panel.title).toBe(DS_UID)
    }
  })

  it("has the panels operators need", () => {
    const exprs = dashboardExprs().join("\n")
    for (const needle of [
      "walera_subscribers_active",
      "rate(walera_wal_transactions_total",
      'walera_events_sent_total{type="tx"',
      "histogram_quantile(0.5, sum by (le) (rate(walera_wal_lag_seconds_bucket",
      "histogram_quantile(0.99, sum by (le) (rate(walera_wal_lag_seconds_bucket",
      "histogram_quantile(0.99, sum by (le) (rate(walera_fanout_latency_seconds_bucket",
      "walera_wal_lsn_lag_bytes",
      "walera_pg_connection_status",
      "walera_auth_circuit_breaker_state",
      "sum by (result) (rate(walera_auth_requests_total",
      "histogram_quantile(0.99, sum by (le) (rate(walera_auth_request_duration_seconds_bucket",
      "sum by (reason) (rate(walera_tx_dropped_total",
      "sum by (reason) (rate(walera_subscriber_disconnects_total",
      "walera_limit_rejected_total",
      "nodejs_eventloop_lag_p99_seconds",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
    ]) {
      expect(exprs).toContain(needle)
    }
  })
})

describe("Prometheus alert rules", () => {
  it("each rule has a severity, a summary, a description and a runbook section in docs/operations.md", () => {
    const anchors = headingAnchors(read("docs/operations.md"))
    const rules = alertRules()
    expect(rules.length).toBeGreaterThanOrEqual(8)
    for (const rule of rules) {
      expect(["critical", "warning", "info"], rule.alert).toContain(rule.labels?.severity)
      expect(rule.annotations?.summary, rule.alert).toBeTruthy()
      expect(rule.annotations?.description, rule.alert).toBeTruthy()
      const url = rule.annotations?.runbook_url ?? ""
      expect(url, rule.alert).toMatch(/^docs\/operations\.md#[a-z0-9-]+$/)
      expect(anchors, `${rule.alert}: ${url}`).toContain(url.slice(url.indexOf("#") + 1))
    }
  })

  it("has the agreed alerts with their thresholds", () => {
    const byName = new Map(alertRules().map((rule) => [rule.alert, rule]))
    const expected: Array<[string, RegExp, string | undefined]> = [
      ["WaleraWalLagHigh", /^walera_wal_lsn_lag_bytes > 256 \* 1024 \* 1024$/, "5m"],
      ["WaleraReplicationDisconnected", /^walera_pg_connection_status == 0$/, "1m"],
      ["WaleraAuthBreakerOpen", /^walera_auth_circuit_breaker_state == 1$/, "1m"],
      [
        "WaleraSlowConsumerDisconnects",
        /rate\(walera_subscriber_disconnects_total\{reason="slow_consumer"\}\[5m\]\)\) > 0\.1$/,
        "10m",
      ],
      ["WaleraMultiRootDrops", /increase\(walera_tx_dropped_total\{reason="multi_root"\}\[15m\]\)\) > 0$/, undefined],
      ["WaleraEventLoopLagHigh", /^nodejs_eventloop_lag_p99_seconds\{[^}]*\} > 0\.1$/, "5m"],
      ["WaleraMemoryHigh", /^process_resident_memory_bytes\{[^}]*\} > 6 \* 1024 \* 1024 \* 1024$/, "10m"],
      [
        "WaleraCommitToDecodeLagHigh",
        /^histogram_quantile\(0\.99, sum by \([a-z, ]*\ble\) \(rate\(walera_wal_lag_seconds_bucket\[5m\]\)\)\) > 1$/,
        "5m",
      ],
    ]
    for (const [name, expr, duration] of expected) {
      const rule = byName.get(name)
      expect(rule, name).toBeDefined()
      expect(rule!.expr.trim(), name).toMatch(expr)
      expect(rule!.for, name).toBe(duration)
    }
  })

  it("promtool accepts the rules and the scrape configuration", () => {
    const rules = promtool(["check", "rules", "deploy/prometheus/alerts.yml"])
    expect(rules.status, rules.output).toBe(0)
    const config = promtool(["check", "config", "deploy/prometheus/prometheus.yml"])
    expect(config.status, config.output).toBe(0)
  })

  it("scrapes walera:8080/metrics every 15s and loads the alert rules", () => {
    const config = parse(read("deploy/prometheus/prometheus.yml")) as {
      global: { scrape_interval: string }
      rule_files: Array<string>
      scrape_configs: Array<{
        job_name: string
        scrape_interval?: string
        metrics_path?: string
        static_configs?: Array<{ targets: Array<string> }>
      }>
    }
    expect(config.rule_files).toContain("alerts.yml")
    const job = config.scrape_configs.find((c) => c.job_name === "walera")
    expect(job?.scrape_interval ?? config.global.scrape_interval).toBe("15s")
    expect(job?.metrics_path ?? "/metrics").toBe("/metrics")
    expect(job?.static_configs?.flatMap((c) => c.targets)).toContain("walera:8080")
  })

  it("fire on the series they are meant for and stay quiet on healthy ones (promtool test rules)", () => {
    // Annotations are stripped so the expectations pin expressions, durations and labels; the annotation templates
    // are checked by `promtool check rules` above.
    const doc = parse(read("deploy/prometheus/alerts.yml")) as { groups: Array<{ rules: Array<Rule> }> }
    for (const group of doc.groups)
      for (const rule of group.rules) delete (rule as { annotations?: unknown }).annotations
    const severity = new Map(alertRules().map((rule) => [rule.alert, rule.labels?.severity ?? ""]))
    const id = { job: "walera", instance: "walera:8080" }
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
        [[series("process_resident_memory_bytes"), `${7 * GiB}x20`]],
        [[series("process_resident_memory_bytes"), `${5 * GiB}x20`]],
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

describe("Kubernetes manifests", () => {
  it("the deployment rolls one pod at a time and never drops below one ready replica", () => {
    const d = deployment()
    expect(d.kind).toBe("Deployment")
    expect(d.spec.replicas).toBe(1)
    expect(d.spec.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } })
  })

  it("probes /healthz for liveness and /readyz for readiness on the http port", () => {
    const c = container()
    expect(c.ports).toContainEqual(expect.objectContaining({ name: "http", containerPort: 8080 }))
    expect(c.livenessProbe).toMatchObject({
      httpGet: { path: "/healthz", port: "http" },
      periodSeconds: 10,
      failureThreshold: 3,
    })
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5 })
    if (c.startupProbe !== undefined) expect(c.startupProbe.httpGet.path).toBe("/healthz")
  })

  it("requests 2 CPU / 4Gi, limits 4 CPU / 8Gi and caps the V8 heap below the limit", () => {
    const c = container()
    expect(c.resources).toEqual({ requests: { cpu: "2", memory: "4Gi" }, limits: { cpu: "4", memory: "8Gi" } })
    const nodeOptions = c.env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? ""
    expect(nodeOptions).toContain("--max-old-space-size=6144")
    expect(6144 * 2 ** 20).toBeLessThan(quantity(c.resources.limits.memory!))
  })

  it("gives the graceful shutdown 30s, more than the configured shutdown.deadline", () => {
    const grace = deployment().spec.template.spec.terminationGracePeriodSeconds
    expect(grace).toBe(30)
    const config = parse(configMap().data["config.yaml"]!) as { shutdown: { deadline: string } }
    const deadlineMs = parseDuration(config.shutdown.deadline)
    expect(deadlineMs).toBeDefined()
    expect(deadlineMs!).toBeLessThanOrEqual(grace * 1000 - 10_000)
  })

  it("runs non-root with a read-only root filesystem, no privilege escalation and no capabilities", () => {
    const pod = deployment().spec.template.spec
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true })
    expect(pod.securityContext["runAsUser"]).not.toBe(0)
    expect(container().securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    })
  })

  it("takes the database URL from a Secret, the auth URL from the ConfigMap and mounts config.yaml", () => {
    const c = container()
    const env = new Map((c.env ?? []).map((e) => [e.name, e]))
    expect(env.get("WALERA_DATABASE_URL")?.valueFrom?.secretKeyRef).toEqual({
      name: "walera-secrets",
      key: "database-url",
    })
    const auth = env.get("WALERA_AUTH_BACKEND_URL")?.valueFrom?.configMapKeyRef
    expect(auth?.name).toBe("walera-config")
    expect(configMap().data[auth!.key]).toMatch(/^https:\/\//)
    const secret = parse(read("deploy/kubernetes/secret.example.yaml")) as {
      kind: string
      metadata: { name: string }
      stringData: Record<string, string>
    }
    expect(secret.kind).toBe("Secret")
    expect(secret.metadata.name).toBe("walera-secrets")
    expect(secret.stringData["database-url"]).toMatch(/^postgres:\/\//)

    const mount = c.volumeMounts.find((m) => m.mountPath === "/etc/walera")
    expect(mount?.readOnly).toBe(true)
    const volume = deployment().spec.template.spec.volumes.find((v) => v.name === mount?.name)
    expect(volume?.configMap?.name).toBe(configMap().metadata.name)
    expect(volume?.configMap?.items).toEqual([{ key: "config.yaml", path: "config.yaml" }])
  })

  it("advertises /metrics on 8080 to Prometheus", () => {
    expect(deployment().spec.template.metadata.annotations).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "8080",
      "prometheus.io/path": "/metrics",
    })
  })

  it("exposes a ClusterIP service on 8080 that selects the deployment's pods", () => {
    const service = parse(read("deploy/kubernetes/service.yaml")) as {
      spec: { type: string; selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> }
    }
    expect(service.spec.type).toBe("ClusterIP")
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ port: 8080, targetPort: "http" }))
    expect(deployment().spec.template.metadata.labels).toMatchObject(service.spec.selector)
  })

  it("the kustomization lists existing manifests and leaves the example secret out", () => {
    const k = parse(read("deploy/kubernetes/kustomization.yaml")) as { resources: Array<string> }
    expect([...k.resources].sort()).toEqual(["configmap.yaml", "deployment.yaml", "service.yaml"])
    for (const file of k.resources) {
      const docs = parseAllDocuments(read(`deploy/kubernetes/${file}`))
      for (const doc of docs) expect(doc.errors, file).toEqual([])
    }
  })

  it("the ConfigMap's config.yaml sets every key, and at its default", () => {
    const text = configMap().data["config.yaml"]!
    const env = { WALERA_DATABASE_URL: "postgres://u:p@db:5432/app", WALERA_AUTH_BACKEND_URL: "https://auth.example" }
    const withFile = loadConfig({ env, yamlText: text, yamlSource: "configmap.yaml" })
    const withoutFile = loadConfig({ env })
    if (withFile._tag === "Invalid") throw new Error(JSON.stringify(withFile.problems, null, 2))
    expect(withoutFile._tag).toBe("Loaded")
    expect(withFile).toEqual(withoutFile)

    const flat = new Set<string>()
    const walk = (value: unknown, prefix: string) => {
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) walk(v, prefix === "" ? k : `${prefix}.${k}`)
      } else flat.add(prefix)
    }
    walk(parse(text), "")
    expect([...flat].sort()).toEqual(CONFIG_KEYS.map((k) => k.key).sort())
  })
})

describe("Dockerfile", () => {
  const dockerfile = read("deploy/Dockerfile")
  // Instructions with their continuation lines joined, comments dropped.
  const instructions = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))

  it("is multi-stage on Node 24 and installs production dependencies only", () => {
    const froms = instructions.filter((line) => /^FROM\s/i.test(line))
    expect(froms.length).toBeGreaterThanOrEqual(2)
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:24[-\w.]*/)
    expect(dockerfile).toMatch(/ARG RUNTIME_IMAGE=\S*nodejs24\S*/)
    expect(instructions.some((line) => /^RUN npm ci --omit=dev\b/.test(line))).toBe(true)
  })

  it("copies exactly the runtime sources, which exist", () => {
    const copies = instructions.filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))
    const sources = copies.flatMap((line) => line.split(/\s+/).slice(1, -1))
    expect([...new Set(sources)].sort()).toEqual(["adapters", "domain", "package-lock.json", "package.json", "src"])
    for (const source of sources) expect(existsSync(join(root, source)), source).toBe(true)
  })

  it("runs as a numeric non-root user, exposes 8080 and has a --healthcheck HEALTHCHECK", () => {
    const users = instructions.filter((line) => /^USER\s/i.test(line))
    expect(users.length).toBeGreaterThan(0)
    const user = users.at(-1)!.split(/\s+/)[1]!
    expect(user).toMatch(/^\d+(:\d+)?$/)
    expect(user.split(":")[0]).not.toBe("0")
    expect(instructions).toContain("EXPOSE 8080")
    const healthcheck = instructions.find((line) => /^HEALTHCHECK\s/i.test(line)) ?? ""
    const cmd = JSON.parse(healthcheck.slice(healthcheck.indexOf("CMD") + 3).trim()) as Array<string>
    expect(cmd).toContain("src/main.ts")
    expect(cmd).toContain("--healthcheck")
    const entrypoint = instructions.find((line) => /^ENTRYPOINT\s/i.test(line)) ?? ""
    const argv = JSON.parse(entrypoint.slice("ENTRYPOINT".length).trim()) as Array<string>
    expect(argv.slice(1)).toEqual(["src/main.ts", "--config", "/etc/walera/config.yaml"])
    expect(argv[0]).toMatch(/(^|\/)node$/)
    expect(cmd[0]).toBe(argv[0])
  })

  it("everything the service imports is in the image: relative imports stay in domain/adapters/src, packages are production dependencies", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> }
    const shipped = ["domain", "adapters", "src"]
    const files = (dir: string): Array<string> =>
      readdirSync(dir).flatMap((name) => {
        const path = join(dir, name)
        return statSync(path).isDirectory() ? files(path) : /\.(ts|mts|js|mjs)$/.test(name) ? [path] : []
      })
    const importRe = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g
    const problems: Array<string> = []
    for (const file of shipped.flatMap((dir) => files(join(root, dir)))) {
      for (const match of readFileSync(file, "utf8").matchAll(importRe)) {
        const spec = match[1] ?? match[2] ?? ""
        const where = `${relative(root, file)} imports "${spec}"`
        if (spec.startsWith(".")) {
          const top = relative(root, resolve(dirname(file), spec)).split("/")[0] ?? ""
          if (!shipped.includes(top)) problems.push(`${where}, which the image does not contain`)
        } else if (!spec.startsWith("node:")) {
          const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!
          if (pkg.dependencies[name] === undefined) problems.push(`${where}, which is not in "dependencies"`)
        }
      }
    }
    expect(problems).toEqual([])
  })

  it("has a build-context filter next to it that lets the copied paths through", () => {
    const ignore = read("deploy/Dockerfile.dockerignore")
    for (const path of ["package.json", "package-lock.json", "domain/", "adapters/", "src/"]) {
      expect(ignore).toContain(`!${path}`)
    }
  })
})

describe("docs/operations.md", () => {
  const doc = read("docs/operations.md")

  it("documents every configuration key with its environment variable and default", () => {
    const rows = new Map(
      [...doc.matchAll(/^\| `([a-z_.]+)` \| `(WALERA_[A-Z_]+)` \| ([^|]+) \|/gm)].map((m) => [
        m[1]!,
        { env: m[2]!, def: m[3]!.trim() },
      ]),
    )
    for (const key of CONFIG_KEYS) {
      const row = rows.get(key.key)
      expect(row, key.key).toBeDefined()
      expect(row!.env, key.key).toBe(key.env)
      expect(row!.def.replaceAll("`", ""), key.key).toContain(key.default)
    }
    expect(rows.size).toBe(CONFIG_KEYS.length)
  })

  it("lists every exported walera_ metric", async () => {
    const exported = await exportedMetrics()
    for (const name of exported.keys()) if (name.startsWith("walera_")) expect(doc, name).toContain(`\`${name}\``)
  })

  it("uses the flags main.ts accepts", () => {
    const main = read("src/main.ts")
    for (const flag of ["--config", "--dev-log", "--healthcheck", "--help", "--version"]) {
      expect(doc).toContain(flag)
      expect(main).toContain(flag.slice(2))
    }
  })
})
