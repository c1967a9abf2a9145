// Hostile input against a running Walera: random paths and headers, random auth backend
// answers. Never a 500, never a crash, and a stream opens only on a grant that names the table.
import http from "node:http"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Env, setup } from "./fixtures.ts"

let env: Env
beforeAll(async () => {
  env = await setup({
    env: {
      WALERA_AUTH_FORWARDED_COOKIES: "session",
      WALERA_AUTH_FORWARDED_HEADERS: "x-tenant",
      WALERA_LIMITS_PER_USER_CONCURRENT: "100000",
      WALERA_AUTH_BREAKER_MIN_SAMPLES: "100000",
    },
  })
})
afterAll(async () => {
  await env?.close()
})

const ALLOWED = new Set([200, 204, 400, 401, 403, 404, 405, 429, 431, 503])

const get = (path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.request(`${env.walera.url}${path}`, { headers, agent: false }, (res) => {
      if (res.statusCode === 200 && res.headers["content-type"] === "text/event-stream") {
        res.destroy()
        resolve({ status: 200, body: "" })
        return
      }
      let body = ""
      res.on("data", (c) => {
        body += c
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.end()
  })

const segment = fc.oneof(
  fc.string({ maxLength: 300 }).map((s) => encodeURIComponent(s)),
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,70}$/),
  fc.constantFrom("all", "%", "%zz", "..", "%2F", "%00", "orders", "ALL", ""),
)
const headerValue = fc.string({ maxLength: 200 }).map((s) => s.replace(/[^\x20-\x7e]/g, "x"))

describe("handshake fuzz", () => {
  it("random paths and headers never produce a 500 or take Walera down", async () => {
    env.auth.answers.set("*", { status: 200, body: { user_id: "fz", tables: { orders: ["id"] } } })
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 0, maxLength: 4 }),
        fc.record(
          {
            authorization: fc.oneof(
              headerValue,
              headerValue.map((v) => `Bearer ${v}`),
            ),
            cookie: headerValue.map((v) => `session=${v}; other=${v}`),
            "x-tenant": headerValue,
            "x-request-id": headerValue,
            origin: headerValue,
          },
          { requiredKeys: [] },
        ),
        async (parts, headers) => {
          const res = await get(`/sse/v1/${parts.join("/")}`, headers)
          expect(ALLOWED.has(res.status), `status ${res.status} for ${parts.join("/")}`).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
    expect((await env.walera.get("/healthz")).status).toBe(200)
    env.auth.answers.delete("*")
  })
})

describe("auth answer fuzz", () => {
  const grantLike = fc.record(
    {
      user_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant("")),
      tables: fc.oneof(
        fc.dictionary(
          fc.constantFrom("orders", "line_items", "__proto__", "*"),
          fc.oneof(fc.array(fc.string()), fc.jsonValue()),
        ),
        fc.jsonValue(),
      ),
      roots: fc.oneof(fc.array(fc.constantFrom("orders", "line_items")), fc.jsonValue()),
      ttl_seconds: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.double(), fc.jsonValue()),
      initial_data: fc.jsonValue(),
    },
    { requiredKeys: [] },
  )

  it("whatever the backend answers, a stream opens only on a grant that names the table", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(200, 200, 200, 401, 403, 404, 500, 429, 302),
        fc.oneof(
          grantLike.map((g) => JSON.stringify(g)),
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string(),
        ),
        async (status, body) => {
          env.auth.answers.set("fuzz-token", { status, body })
          const res = await get("/sse/v1/orders/1", { authorization: "Bearer fuzz-token" })
          expect(ALLOWED.has(res.status)).toBe(true)
          if (res.status === 200) {
            expect(status).toBe(200)
            const parsed = JSON.parse(body) as Record<string, unknown>
            expect(typeof parsed["user_id"]).toBe("string")
            const tables = parsed["tables"] as Record<string, unknown>
            expect(Object.hasOwn(tables, "orders")).toBe(true)
            const roots = parsed["roots"]
            if (roots !== undefined && roots !== null) expect(roots).toContain("orders")
          }
          if (status >= 500 || status === 302) expect(res.status).toBe(503)
          if ([401, 403, 404, 429].includes(status)) expect(res.status).toBe(status)
        },
      ),
      { numRuns: 300 },
    )
    expect((await env.walera.get("/healthz")).status).toBe(200)
  })
})
