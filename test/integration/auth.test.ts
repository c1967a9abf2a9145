// Grants that expire, narrow and get revoked, and the circuit breaker around a failing
// auth backend (docs/auth.md), end to end with a real HTTP backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSse } from "../support/SseClient.ts"
import { ALICE, type Env, setup } from "./fixtures.ts"
import { metricValue } from "../support/Scrape.ts"

let env: Env
beforeAll(async () => {
  env = await setup({
    env: {
      WALERA_AUTH_BREAKER_MIN_SAMPLES: "4",
      WALERA_AUTH_BREAKER_WINDOW: "20s",
      WALERA_AUTH_BREAKER_COOLDOWN: "2s",
      WALERA_LIMITS_PER_USER_CONCURRENT: "100",
    },
  })
  await env.db.sql("INSERT INTO orders (id) VALUES (1), (2), (3)")
})
afterAll(async () => {
  await env?.close()
})

describe("refresh", () => {
  it("a grant revoked mid-stream ends the stream with auth_revoked", async () => {
    let revoked = false
    env.auth.answers.set("rev-token", () =>
      revoked ? { status: 403, body: '{"error":"revoked"}' } : { status: 200, body: { ...ALICE, ttl_seconds: 1 } },
    )
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("rev-token"))
    expect(s.status).toBe(200)
    revoked = true
    await s.ended
    expect(s.raw().endsWith('event: error\ndata: {"reason":"auth_revoked"}\n\n')).toBe(true)
    const refreshes = env.auth.calls.filter((c) => c.headers.authorization === "Bearer rev-token")
    expect(refreshes.length).toBe(2)
    expect(refreshes[1]!.channel).toBe("orders:1")
  })

  it("a narrowing refresh applies to later transactions without reconnecting", async () => {
    let narrowed = false
    env.auth.answers.set("narrow-token", () => ({
      status: 200,
      body: {
        user_id: "nina",
        tables: { orders: narrowed ? ["status"] : ["status", "total_cents"] },
        ttl_seconds: 1,
      },
    }))
    const s = await openSse(env.walera.url, "/sse/v1/orders/2", env.bearer("narrow-token"))
    await env.db.sql("UPDATE orders SET total_cents = 4242, status = 'wide' WHERE id = 2")
    await s.waitFor((c) => c.raw().includes("4242"), 10_000, "wide update")
    narrowed = true
    const calls = env.auth.calls.length
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (env.auth.calls.length > calls) {
          clearInterval(t)
          resolve()
        }
      }, 20)
    })
    await new Promise((r) => setTimeout(r, 100))
    await env.db.sql("UPDATE orders SET total_cents = 9191, status = 'narrow' WHERE id = 2")
    await s.waitFor((c) => c.raw().includes('"narrow"'), 10_000, "narrow update")
    expect(s.raw()).not.toContain("9191")
    expect(s.isEnded()).toBe(false)
    s.close()
  })
})

describe("circuit breaker", () => {
  it("opens on failures, refuses opens without calling the backend, keeps established streams until their grant expires, closes on recovery", async () => {
    let failing = false
    env.auth.answers.set("brk-token", () =>
      failing ? { status: 500, body: "down" } : { status: 200, body: { ...ALICE, user_id: "bea", ttl_seconds: 3 } },
    )
    const h = env.bearer("brk-token")
    const established = await openSse(env.walera.url, "/sse/v1/orders/3", h)
    expect(established.status).toBe(200)
    failing = true
    // Earlier successes are still in the 20 s window, so it takes as many failures as they were to pass 0.5.
    let failures = 0
    while (metricValue((await env.walera.get("/metrics")).body, "walera_auth_circuit_breaker_state") !== 1) {
      const r = await fetch(`${env.walera.url}/sse/v1/orders/1`, { headers: h })
      expect(r.status).toBe(503)
      expect(r.headers.get("retry-after")).toBe("5")
      expect(++failures).toBeLessThan(40)
    }
    const callsWhenOpen = env.auth.calls.length
    const refused = await fetch(`${env.walera.url}/sse/v1/orders/1`, { headers: h })
    expect(refused.status).toBe(503)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(2)
    expect(env.auth.calls.length).toBe(callsWhenOpen)
    const metrics = (await env.walera.get("/metrics")).body
    expect(metricValue(metrics, "walera_auth_circuit_breaker_state")).toBe(1)
    const ready = await env.walera.get("/readyz")
    expect(ready.status).toBe(503)
    expect(ready.body).toContain("breaker")

    // Established stream: still streaming on its last grant…
    await env.db.sql("UPDATE orders SET status = 'during-outage' WHERE id = 3")
    await established.waitFor((c) => c.raw().includes("during-outage"), 10_000, "delivery while open")
    // …until the grant expires (3 s after the open).
    await established.ended
    expect(established.raw().endsWith('event: error\ndata: {"reason":"auth_unavailable"}\n\n')).toBe(true)

    failing = false
    await new Promise((r) => setTimeout(r, 2100))
    const probe = await openSse(env.walera.url, "/sse/v1/orders/1", h)
    expect(probe.status).toBe(200)
    expect(metricValue((await env.walera.get("/metrics")).body, "walera_auth_circuit_breaker_state")).toBe(0)
    probe.close()
  }, 30_000)
})
