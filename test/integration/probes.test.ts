// The paths deploy/kubernetes probes and scrapes, asked of a real Walera started the way the manifests start it:
// with an admin address (WALERA_HTTP_ADMIN_ADDR), where every probe path and the scrape path must answer, while the
// public address serves only /sse/v1/…; and liveness must stay 200 while PostgreSQL is down, or an outage of the
// database would restart every pod (docs/operations.md, Kubernetes).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startAuthServer } from "../support/AuthServer.ts"
import { renderKustomization, waleraContainer } from "../support/DeployAssets.ts"
import { freePort, startEmbeddedPg } from "../support/EmbeddedPg.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { startWalera } from "../support/Walera.ts"
import { ALICE, type Env, ORDERS_SCHEMA, setup } from "./fixtures.ts"

const manifests = waleraContainer(renderKustomization())
const annotations = (manifests.deployment.spec as { template: { metadata: { annotations: Record<string, string> } } })
  .template.metadata.annotations
const scrapePath = annotations["prometheus.io/path"] ?? "/metrics"
const probePaths = [...new Set(manifests.probes.map((probe) => probe.path))]
const liveness = manifests.probes.find((probe) => probe.kind === "liveness")!
const readiness = manifests.probes.find((probe) => probe.kind === "readiness")!

const status = async (url: string): Promise<number> => {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  await response.arrayBuffer()
  return response.status
}

/** The manifests' admin address (0.0.0.0:<admin port>) moved to loopback and a free port, as a test must. */
const adminAddress = async (): Promise<{ addr: string; url: string }> => {
  expect(manifests.env("WALERA_HTTP_ADMIN_ADDR")).toBe(`0.0.0.0:${manifests.portNumber("admin")}`)
  const port = await freePort()
  return { addr: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` }
}

describe("the probe and scrape paths of deploy/kubernetes on a running Walera", () => {
  let env: Env
  let admin: { addr: string; url: string }
  beforeAll(async () => {
    admin = await adminAddress()
    env = await setup({ env: { WALERA_HTTP_ADMIN_ADDR: admin.addr }, waitReady: false })
    await waitUntil(
      async () => (await status(`${admin.url}${readiness.path}`).catch(() => 0)) === 200,
      30_000,
      `${readiness.path} 200 on the admin address`,
    )
  })
  afterAll(async () => {
    await env?.close()
  })

  it("every probe path of the manifests answers 200 on the admin address", async () => {
    expect(probePaths).toContain("/livez")
    expect(probePaths).toContain("/readyz")
    for (const path of probePaths) expect(await status(`${admin.url}${path}`), path).toBe(200)
  })

  it("the scrape path answers Prometheus text with Walera's metrics on the admin address", async () => {
    const response = await fetch(`${admin.url}${scrapePath}`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/plain")
    expect(await response.text()).toMatch(/^walera_subscribers_active\{/m)
  })

  it("the public address serves streams and none of the probe or scrape paths", async () => {
    for (const path of [...probePaths, "/healthz", scrapePath])
      expect(await status(`${env.walera.url}${path}`), path).toBe(404)
    await env.db.sql("INSERT INTO orders (id) VALUES (1)")
    const stream = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    expect(stream.status).toBe(200)
    stream.close()
  })
})

describe("liveness while PostgreSQL is down", () => {
  it("the liveness path stays 200 while readiness turns 503, and both are 200 again once PostgreSQL is back", async () => {
    const pg = await startEmbeddedPg()
    const auth = await startAuthServer()
    auth.answers.set("alice-token", { status: 200, body: ALICE })
    await pg.query(ORDERS_SCHEMA)
    const admin = await adminAddress()
    const walera = await startWalera(
      { WALERA_DATABASE_URL: pg.url(), WALERA_AUTH_BACKEND_URL: auth.url, WALERA_HTTP_ADMIN_ADDR: admin.addr },
      { waitReady: false },
    )
    try {
      const ready = async () => (await status(`${admin.url}${readiness.path}`).catch(() => 0)) === 200
      await waitUntil(ready, 30_000, "ready")
      await pg.halt()
      await waitUntil(async () => !(await ready()), 15_000, "readiness 503 while PostgreSQL is down")
      expect(await status(`${admin.url}${readiness.path}`)).toBe(503)
      for (let i = 0; i < 3; i++) expect(await status(`${admin.url}${liveness.path}`)).toBe(200)
      await pg.resume()
      await waitUntil(ready, 45_000, "ready again")
      expect(await status(`${admin.url}${liveness.path}`)).toBe(200)
    } finally {
      await walera.stop("SIGKILL")
      await auth.close()
      await pg.stop()
    }
  }, 120_000)
})
