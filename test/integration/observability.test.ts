// What an operator sees: every metric of docs/operations.md ("Metrics") moves when its event happens, and the
// logs carry identifiers but never a token, cookie, forwarded header, initial_data or row value.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { ALICE, type Env, setup } from "./fixtures.ts"
import { metricValue } from "../support/Scrape.ts"

const SECRETS = {
  token: "tok-SECRET-7f3a9",
  cookie: "COOKIE-SECRET-51b2",
  header: "HEADER-SECRET-c8d4",
  initial: "INITIAL-SECRET-e6a1",
  row: "ROW-SECRET-0b7e",
}

let env: Env
beforeAll(async () => {
  env = await setup({
    env: {
      WALERA_LOG_LEVEL: "debug",
      WALERA_AUTH_FORWARDED_COOKIES: "session",
      WALERA_AUTH_FORWARDED_HEADERS: "x-tenant",
      WALERA_LIMITS_PER_USER_CONCURRENT: "2",
      WALERA_ROUTER_HEARTBEAT_INTERVAL: "200ms",
    },
  })
  env.auth.answers.set(SECRETS.token, {
    status: 200,
    body: { ...ALICE, user_id: "obs-user", initial_data: { note: SECRETS.initial } },
  })
  await env.db.sql("INSERT INTO orders (id) VALUES (1), (2)")
})
afterAll(async () => {
  await env?.close()
})

const scrape = async () => (await env.walera.get("/metrics")).body

describe("metrics move", () => {
  it("streams, deliveries, heartbeats, auth calls, latencies and drops are counted", async () => {
    const before = await scrape()
    const headers = {
      authorization: `Bearer ${SECRETS.token}`,
      cookie: `session=${SECRETS.cookie}`,
      "x-tenant": SECRETS.header,
    }
    const a = await openSse(env.walera.url, "/sse/v1/orders/1", headers)
    const b = await openSse(env.walera.url, "/sse/v1/orders/all", headers)
    const refused = await fetch(`${env.walera.url}/sse/v1/orders/2`, { headers })
    expect(refused.status).toBe(429)
    const denied = await fetch(`${env.walera.url}/sse/v1/orders/2`, { headers: { authorization: "Bearer unknown" } })
    expect(denied.status).toBe(401)
    await env.db.sql("UPDATE orders SET status = $1, updated_at = 'infinity' WHERE id = 1", [SECRETS.row])
    await a.waitFor((c) => c.txs().length === 1, 10_000, "tx")
    await b.waitFor((c) => c.raw().includes(":\n\n"), 5000, "heartbeat")
    await env.db.sql("UPDATE orders SET status = 'multi' WHERE id IN (1, 2)")
    await env.settle()
    const after = await scrape()
    const moved = (series: string, by = 1) =>
      expect(metricValue(after, series) - (metricValue(before, series) || 0), series).toBeGreaterThanOrEqual(by)
    moved('walera_subscribers_active{type="exact"}')
    moved('walera_subscribers_active{type="wildcard"}')
    moved('walera_events_sent_total{type="tx"}', 2)
    moved('walera_events_sent_total{type="heartbeat"}')
    moved('walera_events_sent_total{type="initial_data"}', 2)
    moved('walera_auth_requests_total{result="ok"}', 3)
    moved('walera_auth_requests_total{result="unauthorized"}')
    moved("walera_auth_request_duration_seconds_count", 4)
    moved('walera_limit_rejected_total{kind="per_user_concurrent"}')
    moved('walera_tx_dropped_total{reason="multi_root"}', 2)
    moved("walera_wal_lag_seconds_count", 2)
    moved("walera_fanout_latency_seconds_count", 1)
    moved("walera_wal_tx_size_changes_count", 2)
    moved("walera_wal_transactions_total", 2)
    // 'infinity' has no RFC 3339 form: sent as text, counted.
    moved("walera_wal_value_fallbacks_total")
    expect(a.txs()[0]!.changes[0]!["data"]).toMatchObject({ updated_at: "infinity" })
    expect(metricValue(after, "walera_pg_connection_status")).toBe(1)
    a.close()
    b.close()
    await waitUntil(
      async () => metricValue(await scrape(), 'walera_subscriber_disconnects_total{reason="client_closed"}') >= 2,
      5000,
      "client_closed counted",
    )
  })

  it("the slot lag gauge is sampled from pg_replication_slots", async () => {
    // A steady stream of decoded WAL (a published table nobody subscribes to) keeps the slot a little behind.
    await env.db.sql("CREATE TABLE filler (id int PRIMARY KEY, pad text)")
    let writing = true
    let n = 0
    const writer = (async () => {
      while (writing) {
        await env.db.sql(
          "INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series($1::int, $1::int + 1999) g",
          [n],
        )
        n += 2000
      }
    })()
    try {
      await waitUntil(
        async () => metricValue(await scrape(), "walera_wal_lsn_lag_bytes") > 0,
        20_000,
        "slot lag sampled",
      )
    } finally {
      writing = false
      await writer
    }
  }, 30_000)
})

describe("logs", () => {
  it("carry subscriber id, channel, user id and request id, and never a secret or a row value", async () => {
    const s = await openSse(env.walera.url, "/sse/v1/orders/2", {
      authorization: `Bearer ${SECRETS.token}`,
      cookie: `session=${SECRETS.cookie}`,
      "x-tenant": SECRETS.header,
      "x-request-id": "obs-req-1",
    })
    await env.db.sql("UPDATE orders SET status = $1 WHERE id = 2", [`${SECRETS.row}-2`])
    await s.waitFor((c) => c.txs().length === 1, 10_000, "tx")
    s.close()
    await env.db.sql("UPDATE orders SET status = 'x' WHERE id IN (1, 2)")
    await env.settle()
    const lines = env.walera.logLines()
    const accepted = lines.find((l) => l["msg"] === "subscriber accepted" && l["request_id"] === "obs-req-1")
    // Tracing is off here, so no span and no trace ids (test/integration/tracingEnv.test.ts covers them).
    expect(accepted).toMatchObject({ channel: "orders:2", user_id: "obs-user" })
    expect(accepted?.["trace_id"]).toBeUndefined()
    const closed = lines.find((l) => l["msg"] === "subscriber closed" && l["request_id"] === "obs-req-1")
    expect(closed).toMatchObject({ channel: "orders:2", subscriber_id: expect.any(Number), reason: "client_closed" })
    const text = env.walera.logs()
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret)
    expect(text).not.toContain("session=")
  })
})
