// Every status of the handshake (docs/operations.md, "The handshake"), in its order, against a real auth backend:
// the first failing step answers, with no SSE headers on failure.
import http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { startWalera } from "../support/Walera.ts"
import { ALICE, type Env, setup } from "./fixtures.ts"

let env: Env
beforeAll(async () => {
  env = await setup({
    env: {
      WALERA_LIMITS_PER_USER_CONCURRENT: "2",
      WALERA_AUTH_REQUEST_TIMEOUT: "300ms",
      WALERA_HTTP_CORS_ORIGINS: "https://app.example.com",
      WALERA_AUTH_FORWARDED_COOKIES: "session",
      WALERA_AUTH_FORWARDED_HEADERS: "X-Tenant",
      WALERA_AUTH_BREAKER_MIN_SAMPLES: "1000",
    },
  })
})
afterAll(async () => {
  await env?.close()
})

interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** One request; the body of an SSE answer is not awaited. */
const request = (path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = http.request(`${env.walera.url}${path}`, { method, headers, agent: false }, (res) => {
      if (res.headers["content-type"] === "text/event-stream") {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" })
        res.destroy()
        return
      }
      let body = ""
      res.on("data", (c) => {
        body += c
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on("error", reject)
    req.end()
  })

const alice = { authorization: "Bearer alice-token" }

const expectNoSse = (a: Answer) => {
  expect(a.headers["content-type"]).not.toBe("text/event-stream")
  expect(a.headers["x-content-type-options"]).toBe("nosniff")
  expect(a.headers.vary).toBe("Origin")
}

describe("step 1: path syntax", () => {
  it.each([
    "/sse/v1/Orders/1",
    "/sse/v1/orders",
    "/sse/v1/orders/",
    "/sse/v1/orders/1/extra",
    "/sse/v1/1orders/1",
    `/sse/v1/${"a".repeat(64)}/1`,
    `/sse/v1/orders/${"x".repeat(257)}`,
    "/sse/v1/orders/%E0%A4%A",
    "/sse/v1/public.orders/1",
  ])("%s → 400 invalid_channel, before anything else", async (path) => {
    const calls = env.auth.calls.length
    const a = await request(path)
    expect(a.status).toBe(400)
    expect(JSON.parse(a.body)).toEqual({ error: "invalid_channel" })
    expectNoSse(a)
    expect(env.auth.calls.length).toBe(calls)
  })

  it("accepts a pk of exactly 256 bytes and a URL-encoded pk", async () => {
    expect((await request(`/sse/v1/orders/${"é".repeat(128)}`, alice)).status).toBe(200)
    expect((await request("/sse/v1/orders/a%2Fb", alice)).status).toBe(200)
    expect(env.auth.calls.at(-1)?.channel).toBe("orders:a/b")
  })
})

describe("step 4: credentials", () => {
  it("no bearer and no allow-listed cookie or header → 401 without calling the backend", async () => {
    const calls = env.auth.calls.length
    const a = await request("/sse/v1/orders/1", { cookie: "other=1", "x-other": "1" })
    expect(a.status).toBe(401)
    expectNoSse(a)
    expect(env.auth.calls.length).toBe(calls)
  })

  it("an allow-listed cookie or header is enough, and only allow-listed ones are forwarded", async () => {
    env.auth.answers.set("*", { status: 200, body: ALICE })
    try {
      const a = await request("/sse/v1/orders/1", { cookie: "session=s3cr3t; tracking=zzz", "x-tenant": "t1" })
      expect(a.status).toBe(200)
      const call = env.auth.calls.at(-1)!
      expect(call.headers.cookie).toBe("session=s3cr3t")
      expect(call.headers["x-tenant"]).toBe("t1")
      expect(call.headers.authorization).toBeUndefined()
      expect(call.headers["content-type"]).toBe("application/json")
      expect(call.headers["x-request-id"]).toMatch(/^[A-Za-z0-9._-]{1,128}$/)
    } finally {
      env.auth.answers.delete("*")
    }
  })
})

describe("step 5: X-Request-ID", () => {
  it.each(["has space", "x".repeat(129), "semi;colon"])("%j → 400 invalid_request_id", async (id) => {
    const a = await request("/sse/v1/orders/1", { ...alice, "x-request-id": id })
    expect(a.status).toBe(400)
    expect(JSON.parse(a.body)).toEqual({ error: "invalid_request_id" })
  })

  it("a valid id is propagated to the backend", async () => {
    await request("/sse/v1/orders/1", { ...alice, "x-request-id": "req-123.abc_X" })
    expect(env.auth.calls.at(-1)?.headers["x-request-id"]).toBe("req-123.abc_X")
    expect(env.auth.calls.at(-1)?.headers.authorization).toBe("Bearer alice-token")
  })
})

describe("step 7: the backend's answer", () => {
  it.each([401, 403, 404, 429])("backend %i → same status, JSON body passed through", async (status) => {
    env.auth.answers.set("deny-token", { status, body: `{"detail":"denied ${status}"}` })
    const a = await request("/sse/v1/orders/1", { authorization: "Bearer deny-token" })
    expect(a.status).toBe(status)
    expect(a.body).toBe(`{"detail":"denied ${status}"}`)
    expect(a.headers["content-type"]).toBe("application/json")
    expectNoSse(a)
  })

  it("backend 429 → its Retry-After passes through too", async () => {
    env.auth.answers.set("limited-token", {
      status: 429,
      body: '{"error":"slow down"}',
      headers: { "retry-after": "7" },
    })
    const a = await request("/sse/v1/orders/1", { authorization: "Bearer limited-token" })
    expect(a.status).toBe(429)
    expect(a.headers["retry-after"]).toBe("7")
    expect(a.body).toBe('{"error":"slow down"}')
  })

  it.each([
    ["a 500", { status: 500, body: "oops" }],
    ["a 302", { status: 302, body: "" }],
    ["bad JSON", { status: 200, body: "{not json" }],
    ["no user_id", { status: 200, body: { tables: { orders: ["id"] } } }],
    ["tables of the wrong shape", { status: 200, body: { user_id: "x", tables: { orders: "id,status" } } }],
    ["a JSON array", { status: 200, body: "[1,2]" }],
    ["an answer over 64 KiB", { status: 200, body: { ...ALICE, initial_data: "x".repeat(70_000) } }],
  ] as const)("%s → 503 Retry-After: 5", async (_name, answer) => {
    env.auth.answers.set("bad-token", answer)
    const a = await request("/sse/v1/orders/1", { authorization: "Bearer bad-token" })
    expect(a.status).toBe(503)
    expect(a.headers["retry-after"]).toBe("5")
    expectNoSse(a)
  })

  it("a backend slower than auth.request_timeout → 503 Retry-After: 5", async () => {
    env.auth.answers.set("slow-token", { hang: true })
    const started = performance.now()
    const a = await request("/sse/v1/orders/1", { authorization: "Bearer slow-token" })
    expect(a.status).toBe(503)
    expect(a.headers["retry-after"]).toBe("5")
    expect(performance.now() - started).toBeLessThan(5000)
  })
})

describe("steps 8 and 9: per-user cap, roots and tables", () => {
  it("the per-user cap answers 429 and is released when a stream ends", async () => {
    env.auth.answers.set("cap-token", { status: 200, body: { ...ALICE, user_id: "capped" } })
    const h = { authorization: "Bearer cap-token" }
    const s1 = await openSse(env.walera.url, "/sse/v1/orders/1", h)
    const s2 = await openSse(env.walera.url, "/sse/v1/orders/2", h)
    expect([s1.status, s2.status]).toEqual([200, 200])
    const third = await request("/sse/v1/orders/3", h)
    expect(third.status).toBe(429)
    expectNoSse(third)
    s1.close()
    await new Promise((r) => setTimeout(r, 200))
    const again = await openSse(env.walera.url, "/sse/v1/orders/3", h)
    expect(again.status).toBe(200)
    s2.close()
    again.close()
  })

  it("a table outside roots → 403 not_a_root; a table not in tables → 403 not_allowed", async () => {
    const a = await request("/sse/v1/line_items/11", alice)
    expect(a.status).toBe(403)
    expect(JSON.parse(a.body)).toEqual({ error: "not_a_root" })
    env.auth.answers.set("noroots-token", {
      status: 200,
      body: { user_id: "nr", tables: { orders: ["id"] } },
    })
    const b = await request("/sse/v1/audit/1", { authorization: "Bearer noroots-token" })
    expect(b.status).toBe(403)
    expect(JSON.parse(b.body)).toEqual({ error: "not_allowed" })
    const c = await request("/sse/v1/orders/1", { authorization: "Bearer noroots-token" })
    expect(c.status).toBe(200)
  })
})

describe("CORS", () => {
  it("reflects a configured origin on streams and errors, and not others", async () => {
    const ok = await request("/sse/v1/orders/1", { ...alice, origin: "https://APP.example.com" })
    expect(ok.status).toBe(200)
    expect(ok.headers["access-control-allow-origin"]).toBe("https://APP.example.com")
    expect(ok.headers["access-control-allow-credentials"]).toBe("true")
    const err = await request("/sse/v1/Bad/1", { origin: "https://app.example.com" })
    expect(err.headers["access-control-allow-origin"]).toBe("https://app.example.com")
    // A page on that origin must be able to read Retry-After on a refusal.
    expect(err.headers["access-control-expose-headers"]).toBe("Retry-After")
    const other = await request("/sse/v1/orders/1", { ...alice, origin: "https://evil.example.com" })
    expect(other.headers["access-control-allow-origin"]).toBeUndefined()
  })

  it("answers preflight with 204 and the allowed methods and headers", async () => {
    const a = await request("/sse/v1/orders/1", { origin: "https://app.example.com" }, "OPTIONS")
    expect(a.status).toBe(204)
    expect(a.headers["access-control-allow-origin"]).toBe("https://app.example.com")
    expect(a.headers["access-control-allow-methods"]).toBe("GET, OPTIONS")
    expect(a.headers["access-control-allow-headers"]).toBe("Authorization, X-Request-ID, Last-Event-ID, x-tenant")
    expect(a.headers["access-control-max-age"]).toBe("86400")
  })
})

describe("other routes", () => {
  it("/healthz, /readyz and /metrics answer; unknown paths 404", async () => {
    expect((await request("/healthz")).status).toBe(200)
    const ready = await request("/readyz")
    expect(ready.status).toBe(200)
    expect(JSON.parse(ready.body)).toEqual({ status: "ok" })
    const metrics = await request("/metrics")
    expect(metrics.body).toContain("walera_subscribers_active")
    expect(metrics.body).toContain("walera_events_sent_total")
    expect(metrics.body).toContain('walera_tx_dropped_total{reason="multi_root"}')
    expect(metrics.body).toContain("nodejs_eventloop_lag_seconds")
    expect((await request("/nope")).status).toBe(404)
  })
})

describe("steps 2 and 3: WAL not streaming, global cap", () => {
  it("a stream cannot open before the replication connection streams → 503 Retry-After: 5", async () => {
    const down = await startWalera(
      {
        WALERA_DATABASE_URL: "postgres://postgres:x@127.0.0.1:1/none",
        WALERA_AUTH_BACKEND_URL: env.auth.url,
      },
      { waitReady: false },
    )
    try {
      await waitUntil(
        async () => (await fetch(`${down.url}/healthz`).catch(() => undefined)) !== undefined,
        15_000,
        "the instance to listen",
      )
      const res = await fetch(`${down.url}/sse/v1/orders/1`, { headers: alice })
      expect(res.status).toBe(503)
      expect(res.headers.get("retry-after")).toBe("5")
      expect((await fetch(`${down.url}/healthz`)).status).toBe(503)
      expect((await fetch(`${down.url}/readyz`)).status).toBe(503)
      const bad = await fetch(`${down.url}/sse/v1/BAD/1`, { headers: alice })
      expect(bad.status).toBe(400)
    } finally {
      await down.stop("SIGKILL")
    }
  })

  it("the global cap answers 503 Retry-After: 5 and is released when a stream ends", async () => {
    const capped = await startWalera({
      WALERA_DATABASE_URL: env.db.url,
      WALERA_AUTH_BACKEND_URL: env.auth.url,
      WALERA_LIMITS_GLOBAL_CONCURRENT: "1",
      WALERA_WAL_SLOT_NAME_PREFIX: "capped",
    })
    try {
      const first = await openSse(capped.url, "/sse/v1/orders/1", alice)
      expect(first.status).toBe(200)
      const calls = env.auth.calls.length
      const res = await fetch(`${capped.url}/sse/v1/orders/2`)
      expect(res.status).toBe(503)
      expect(res.headers.get("retry-after")).toBe("5")
      expect(env.auth.calls.length).toBe(calls)
      first.close()
      await new Promise((r) => setTimeout(r, 200))
      const second = await openSse(capped.url, "/sse/v1/orders/2", alice)
      expect(second.status).toBe(200)
      second.close()
    } finally {
      await capped.stop("SIGKILL")
    }
  })
})
