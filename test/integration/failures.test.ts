// When the world misbehaves (docs/delivery-semantics.md, "What is signalled"): replication lost and regained, PostgreSQL
// restarted or absent at startup, a client that stops reading, a huge transaction.
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startAuthServer, type AuthServer } from "../support/AuthServer.ts"
import { freePort, startEmbeddedPg } from "../support/EmbeddedPg.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { startWalera } from "../support/Walera.ts"
import { ALICE, type Env, ORDERS_SCHEMA, setup } from "./fixtures.ts"
import { metricValue } from "../support/Scrape.ts"

const rssOf = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(m?.[1] ?? 0) * 1024
}

describe("replication lost in a running database", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({
      env: {
        WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER: "65536",
        WALERA_HTTP_WRITE_TIMEOUT: "1s",
        WALERA_LIMITS_PER_USER_CONCURRENT: "100",
      },
    })
    await env.db.sql("INSERT INTO orders (id) VALUES (1), (2), (3)")
  })
  afterAll(async () => {
    await env?.close()
  })

  it("walsender terminated: every stream gets wal_disconnected, Walera reconnects, new streams receive", async () => {
    const a = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    const b = await openSse(env.walera.url, "/sse/v1/orders/all", env.bearer("alice-token"))
    await env.db.sql(
      "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = current_database()",
    )
    await Promise.all([a.ended, b.ended])
    for (const s of [a, b]) expect(s.raw().endsWith('event: error\ndata: {"reason":"wal_disconnected"}\n\n')).toBe(true)
    await waitUntil(async () => (await env.walera.get("/healthz")).status === 200, 15_000, "reconnect")
    const metrics = (await env.walera.get("/metrics")).body
    expect(metricValue(metrics, "walera_pg_reconnects_total")).toBeGreaterThanOrEqual(1)
    expect(metricValue(metrics, 'walera_subscriber_disconnects_total{reason="wal_disconnected"}')).toBe(2)
    const c = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    await env.db.sql("UPDATE orders SET status = 'after-reconnect' WHERE id = 1")
    await c.waitFor((x) => x.raw().includes("after-reconnect"), 10_000, "change after reconnect")
    c.close()
  })

  it("a client that stops reading is disconnected as slow_consumer while others keep receiving", async () => {
    const slow = await openSse(env.walera.url, "/sse/v1/orders/2", env.bearer("alice-token"))
    const fast = await openSse(env.walera.url, "/sse/v1/orders/2", env.bearer("alice-token"))
    slow.pause()
    // Frames well under the 64 KiB budget: only the client that stops reading falls behind.
    const big = "x".repeat(16_000)
    const disconnected = async () =>
      metricValue(
        (await env.walera.get("/metrics")).body,
        'walera_subscriber_disconnects_total{reason="slow_consumer"}',
      ) === 1
    for (let i = 0; i < 3000 && !(await disconnected()); i++) {
      await env.db.sql("UPDATE orders SET status = $1 WHERE id = 2", [`${i}-${big}`])
    }
    await env.db.sql("UPDATE orders SET status = 'fast-still-receives' WHERE id = 2")
    await fast.waitFor((x) => x.raw().includes("fast-still-receives"), 20_000, "fast client")
    await waitUntil(
      async () =>
        metricValue(
          (await env.walera.get("/metrics")).body,
          'walera_subscriber_disconnects_total{reason="slow_consumer"}',
        ) === 1,
      10_000,
      "slow consumer disconnected",
    )
    expect(fast.isEnded()).toBe(false)
    fast.close()
    slow.close()
  })

  it("a 200 000-row transaction is not held in memory: its streams get tx_too_large, others carry on", async () => {
    const victim = await openSse(env.walera.url, "/sse/v1/orders/3", env.bearer("alice-token"))
    const bystander = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    const pid = env.walera.child.pid!
    global.gc?.()
    const before = rssOf(pid)
    let peak = before
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid))
    }, 20)
    try {
      await env.db.sql("ALTER TABLE line_items DISABLE TRIGGER line_items_bump")
      await env.db.sql(`BEGIN;
        UPDATE orders SET status = 'huge' WHERE id = 3;
        INSERT INTO line_items (id, order_id, qty) SELECT g, 3, 1 FROM generate_series(1000, 200999) g;
        COMMIT;`)
      await victim.ended.then(() => undefined)
      expect(victim.raw().endsWith('event: error\ndata: {"reason":"tx_too_large"}\n\n')).toBe(true)
      await env.db.sql("UPDATE orders SET status = 'after-huge' WHERE id = 1")
      await bystander.waitFor((x) => x.raw().includes("after-huge"), 20_000, "bystander")
    } finally {
      clearInterval(sampler)
      await env.db.sql("ALTER TABLE line_items ENABLE TRIGGER line_items_bump")
    }
    const growth = peak - before
    expect(growth).toBeLessThan(64 * 1024 * 1024)
    const metrics = (await env.walera.get("/metrics")).body
    expect(metricValue(metrics, 'walera_tx_dropped_total{reason="tx_too_large"}')).toBe(1)
    bystander.close()
  })
})

describe("a socket that accepts nothing for http.write_timeout", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({
      env: {
        WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER: "104857600",
        WALERA_HTTP_WRITE_TIMEOUT: "1s",
        WALERA_ROUTER_HEARTBEAT_INTERVAL: "200ms",
      },
    })
    await env.db.sql("INSERT INTO orders (id) VALUES (1)")
  })
  afterAll(async () => {
    await env?.close()
  })

  it("is disconnected as slow_consumer although its backlog is far below the byte budget", async () => {
    const stalled = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    stalled.pause()
    const disconnected = async () =>
      metricValue(
        (await env.walera.get("/metrics")).body,
        'walera_subscriber_disconnects_total{reason="slow_consumer"}',
      ) === 1
    // Fill the kernel's socket buffers so that Walera holds unsent bytes, then stop writing.
    const chunk = "y".repeat(32_000)
    for (let i = 0; i < 400 && !(await disconnected()); i++) {
      await env.db.sql("UPDATE orders SET status = $1 WHERE id = 1", [`${i}-${chunk}`])
    }
    await waitUntil(disconnected, 15_000, "the stalled socket to be dropped")
    const metrics = (await env.walera.get("/metrics")).body
    expect(metricValue(metrics, 'walera_tx_dropped_total{reason="slow_consumer"}')).toBe(1)
    stalled.close()
  }, 60_000)
})

describe("frames over http.max_payload_bytes", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({ env: { WALERA_HTTP_MAX_PAYLOAD_BYTES: "4096" } })
    await env.db.sql("INSERT INTO orders (id) VALUES (1), (2)")
  })
  afterAll(async () => {
    await env?.close()
  })

  it("end the streams that would receive them with tx_too_large; a small frame still arrives elsewhere", async () => {
    const big = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    const other = await openSse(env.walera.url, "/sse/v1/orders/2", env.bearer("alice-token"))
    await env.db.sql("UPDATE orders SET status = $1 WHERE id = 1", ["x".repeat(5000)])
    await big.ended
    expect(big.raw().endsWith('event: error\ndata: {"reason":"tx_too_large"}\n\n')).toBe(true)
    expect(big.raw()).not.toContain("xxxxxxxx")
    await env.db.sql("UPDATE orders SET status = 'small' WHERE id = 2")
    await other.waitFor((c) => c.raw().includes('"small"'), 10_000, "small frame")
    other.close()
  })
})

describe("PostgreSQL restarted", () => {
  it("streams get wal_disconnected, opens get 503 and /healthz 503 while down; streaming resumes after", async () => {
    const pg = await startEmbeddedPg()
    const auth = await startAuthServer()
    auth.answers.set("alice-token", { status: 200, body: ALICE })
    await pg.query(ORDERS_SCHEMA)
    await pg.query("INSERT INTO orders (id) VALUES (1)")
    const walera = await startWalera({ WALERA_DATABASE_URL: pg.url(), WALERA_AUTH_BACKEND_URL: auth.url })
    try {
      const s = await openSse(walera.url, "/sse/v1/orders/1", { authorization: "Bearer alice-token" })
      await pg.halt()
      await s.ended
      expect(s.raw()).toContain('event: error\ndata: {"reason":"wal_disconnected"}')
      await waitUntil(async () => (await walera.get("/healthz")).status === 503, 5000, "healthz 503")
      const refused = await fetch(`${walera.url}/sse/v1/orders/1`, { headers: { authorization: "Bearer alice-token" } })
      expect(refused.status).toBe(503)
      expect(refused.headers.get("retry-after")).toBe("5")
      expect((await walera.get("/readyz")).status).toBe(503)
      expect(metricValue((await walera.get("/metrics")).body, "walera_pg_connection_status")).toBe(0)
      await pg.resume()
      await waitUntil(async () => (await walera.get("/healthz")).status === 200, 40_000, "streaming again")
      const again = await openSse(walera.url, "/sse/v1/orders/1", { authorization: "Bearer alice-token" })
      await pg.query("UPDATE orders SET status = 'after-restart' WHERE id = 1")
      await again.waitFor((x) => x.raw().includes("after-restart"), 10_000, "change after restart")
      again.close()
    } finally {
      await walera.stop("SIGKILL")
      await auth.close()
      await pg.stop()
    }
  }, 90_000)
})

describe("PostgreSQL absent at startup", () => {
  let auth: AuthServer
  beforeAll(async () => {
    auth = await startAuthServer()
    auth.answers.set("alice-token", { status: 200, body: ALICE })
  })
  afterAll(async () => {
    await auth?.close()
  })

  it("Walera starts, reports not ready, and streams once the database appears", async () => {
    const port = await freePort()
    const walera = await startWalera(
      {
        WALERA_DATABASE_URL: `postgres://postgres:walera@127.0.0.1:${port}/postgres`,
        WALERA_AUTH_BACKEND_URL: auth.url,
      },
      { waitReady: false },
    )
    let pg: Awaited<ReturnType<typeof startEmbeddedPg>> | undefined
    try {
      await waitUntil(async () => (await walera.get("/healthz").catch(() => undefined)) !== undefined, 15_000, "listen")
      expect((await walera.get("/healthz")).status).toBe(503)
      expect(JSON.parse((await walera.get("/readyz")).body).reason).toContain("replication")
      pg = await startEmbeddedPg({ port })
      await pg.query(ORDERS_SCHEMA)
      await waitUntil(async () => (await walera.get("/healthz")).status === 200, 45_000, "streaming")
      const s = await openSse(walera.url, "/sse/v1/orders/5", { authorization: "Bearer alice-token" })
      await pg.query("INSERT INTO orders (id, status) VALUES (5, 'appeared')")
      await s.waitFor((x) => x.raw().includes("appeared"), 10_000, "first change")
      s.close()
    } finally {
      await walera.stop("SIGKILL")
      await pg?.stop()
    }
  }, 90_000)

  it("a database that is reachable but not set up (wal_level) stops startup with a clear message", async () => {
    const pg = await startEmbeddedPg({ extraFlags: ["-c", "wal_level=replica"] })
    try {
      const walera = await startWalera(
        { WALERA_DATABASE_URL: pg.url(), WALERA_AUTH_BACKEND_URL: auth.url },
        { waitReady: false },
      )
      expect(await walera.exited).toBe(1)
      expect(walera.logs()).toContain("wal_level")
      expect(walera.logs()).toContain("ALTER SYSTEM SET wal_level = logical")
    } finally {
      await pg.stop()
    }
  }, 60_000)
})
