// HTTP/2 on the same port as HTTP/1.1: many subscribers over one connection (prior-knowledge h2c, and TLS with
// ALPN), each with its own events, refusals, caps and shutdown frame; a reset stream is noticed at once; a stalled
// stream is a slow consumer on its own, without holding up the others of its connection.
import http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { metricValue } from "../support/Scrape.ts"
import { connectH2, TLS_CERT, TLS_KEY } from "../support/H2Client.ts"
import { waitUntil } from "../support/SseClient.ts"
import { type Env, setup } from "./fixtures.ts"

const active = async (env: Env) => {
  const body = (await env.walera.get("/metrics")).body
  return (
    metricValue(body, 'walera_subscribers_active{type="exact"}') +
    metricValue(body, 'walera_subscribers_active{type="wildcard"}')
  )
}

describe("h2c with prior knowledge, next to HTTP/1.1", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: "30",
        WALERA_LIMITS_PER_USER_CONCURRENT: "100",
        WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER: "200000",
        WALERA_HTTP_WRITE_TIMEOUT: "1s",
        WALERA_ROUTER_HEARTBEAT_INTERVAL: "300ms",
      },
    })
    await env.db.sql("INSERT INTO orders (id) SELECT g FROM generate_series(1, 40) g")
  })
  afterAll(async () => {
    await env?.close()
  })

  it("streams to many subscribers over one connection, each getting only its own rows", async () => {
    const h2 = await connectH2(env.walera.url)
    try {
      const streams = await Promise.all(
        Array.from({ length: 20 }, (_, i) => h2.open(`/sse/v1/orders/${i + 1}`, env.bearer("alice-token"))),
      )
      for (const s of streams) {
        expect(s.status()).toBe(200)
        expect(s.headers()["content-type"]).toBe("text/event-stream")
        expect(s.headers()["x-content-type-options"]).toBe("nosniff")
      }
      for (let i = 1; i <= 20; i++) await env.db.sql("UPDATE orders SET status = $1 WHERE id = $2", [`h2-${i}`, i])
      for (let i = 0; i < 20; i++) {
        await streams[i]!.waitFor((s) => s.raw().includes(`h2-${i + 1}"`), 10_000, `stream ${i + 1}`)
        expect(streams[i]!.txIds()).toHaveLength(1)
      }
      // And HTTP/1.1 on the same port at the same time.
      const status = await new Promise<number>((ok) =>
        http.get(`${env.walera.url}/healthz`, (res) => {
          res.resume()
          ok(res.statusCode ?? 0)
        }),
      )
      expect(status).toBe(200)
    } finally {
      h2.close()
    }
    await waitUntil(async () => (await active(env)) === 0, 5000, "every subscriber freed")
  })

  it("sends heartbeats to every idle stream of every connection (a connection's streams share a sweep slice)", async () => {
    const sessions = await Promise.all([connectH2(env.walera.url), connectH2(env.walera.url)])
    try {
      const streams = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          sessions[i % 2]!.open(`/sse/v1/orders/${i + 21}`, env.bearer("alice-token")),
        ),
      )
      const beats = (s: (typeof streams)[number]) => s.raw().split(":\n\n").length - 1
      // Interval 300 ms: in two seconds every stream, on either connection, has had several.
      for (const [i, s] of streams.entries()) await s.waitFor((x) => beats(x) >= 3, 5000, `heartbeats on stream ${i}`)
      expect(streams.every((s) => s.status() === 200 && s.txIds().length === 0)).toBe(true)
    } finally {
      for (const h2 of sessions) h2.close()
    }
    await waitUntil(async () => (await active(env)) === 0, 5000, "every subscriber freed")
  })

  it("answers refusals per stream without disturbing the others, and counts the cap in streams", async () => {
    const h2 = await connectH2(env.walera.url)
    try {
      const ok = await h2.open("/sse/v1/orders/1", env.bearer("alice-token"))
      const bad = await h2.open("/sse/v1/Orders/1", env.bearer("alice-token"))
      const anon = await h2.open("/sse/v1/orders/1")
      expect([ok.status(), bad.status(), anon.status()]).toEqual([200, 400, 401])
      expect(bad.raw()).toBe('{"error":"invalid_channel"}')
      // limits.global_concurrent is 30 streams, whatever the number of connections.
      const more = await Promise.all(
        Array.from({ length: 30 }, (_, i) => h2.open(`/sse/v1/orders/${(i % 40) + 1}`, env.bearer("alice-token"))),
      )
      expect(more.filter((s) => s.status() === 200)).toHaveLength(29)
      const refused = more.filter((s) => s.status() === 503)
      expect(refused).toHaveLength(1)
      expect(refused[0]!.headers()["retry-after"]).toBe("5")
      await env.db.sql("UPDATE orders SET status = 'still' WHERE id = 1")
      await ok.waitFor((s) => s.raw().includes('"still"'), 10_000, "the first stream")
    } finally {
      h2.close()
    }
    await waitUntil(async () => (await active(env)) === 0, 5000, "every subscriber freed")
  })

  it("answers bodiless requests (CORS preflight, HEAD) and keeps serving", async () => {
    // Browsers send a preflight before every stream that carries Authorization: once it crashed the process.
    const h2 = await connectH2(env.walera.url)
    try {
      const preflight = await h2.open("/sse/v1/orders/1", {
        ":method": "OPTIONS",
        origin: "http://ui.example",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
      })
      const head = await h2.open("/livez", { ":method": "HEAD" })
      await Promise.all([preflight.closed, head.closed])
      expect([preflight.status(), head.status()]).toEqual([204, 200])
      expect(preflight.headers()["access-control-allow-methods"]).toBe("GET, OPTIONS")
      expect(head.raw()).toBe("")
      const stream = await h2.open("/sse/v1/orders/1", env.bearer("alice-token"))
      expect(stream.status()).toBe(200)
    } finally {
      h2.close()
    }
    await waitUntil(async () => (await active(env)) === 0, 5000, "every subscriber freed")
  })

  it("notices a reset stream at once and keeps the connection's other streams", async () => {
    const h2 = await connectH2(env.walera.url)
    try {
      const keep = await h2.open("/sse/v1/orders/2", env.bearer("alice-token"))
      const gone = await h2.open("/sse/v1/orders/3", env.bearer("alice-token"))
      await waitUntil(async () => (await active(env)) === 2, 5000, "two subscribers")
      gone.reset()
      await waitUntil(async () => (await active(env)) === 1, 2000, "the reset stream freed")
      await env.db.sql("UPDATE orders SET status = 'after-reset' WHERE id = 2")
      await keep.waitFor((s) => s.raw().includes("after-reset"), 10_000, "the other stream")
    } finally {
      h2.close()
    }
  })

  it("a stream whose client stops reading is a slow consumer alone; its neighbours keep streaming", async () => {
    const h2 = await connectH2(env.walera.url)
    try {
      const slow = await h2.open("/sse/v1/orders/all", env.bearer("alice-token"))
      const fine = await h2.open("/sse/v1/orders/4", env.bearer("alice-token"))
      slow.pause()
      const big = "x".repeat(60_000)
      for (let i = 0; i < 12; i++) await env.db.sql("UPDATE orders SET status = $1 WHERE id = 5", [`${big}${i}`])
      await waitUntil(
        async () =>
          metricValue(
            (await env.walera.get("/metrics")).body,
            'walera_subscriber_disconnects_total{reason="slow_consumer"}',
          ) >= 1,
        15_000,
        "the stalled stream dropped as slow_consumer",
      )
      await env.db.sql("UPDATE orders SET status = 'neighbour-ok' WHERE id = 4")
      await fine.waitFor((s) => s.raw().includes("neighbour-ok"), 10_000, "the neighbour")
    } finally {
      h2.close()
    }
  })
})

describe("TLS with ALPN", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({
      env: { WALERA_HTTP_TLS_CERT_FILE: TLS_CERT, WALERA_HTTP_TLS_KEY_FILE: TLS_KEY },
      waitReady: false,
    })
    await waitUntil(
      async () => {
        const h2 = await connectH2(env.walera.url.replace("http:", "https:"), { tls: true }).catch(() => undefined)
        if (h2 === undefined) return false
        const s = await h2.open("/healthz")
        h2.close()
        return s.status() === 200
      },
      30_000,
      "walera to stream over TLS",
    )
    await env.db.sql("INSERT INTO orders (id) VALUES (1), (2)")
  })
  afterAll(async () => {
    await env?.close()
  })

  it("speaks h2 to clients that offer it, with the stream rules per stream, and shutdown + GOAWAY on SIGTERM", async () => {
    const h2 = await connectH2(env.walera.url.replace("http:", "https:"), { tls: true })
    expect((h2.session.socket as import("node:tls").TLSSocket).alpnProtocol).toBe("h2")
    const streams = await Promise.all(
      Array.from({ length: 8 }, (_, i) => h2.open(`/sse/v1/orders/${(i % 2) + 1}`, env.bearer("alice-token"))),
    )
    expect(streams.map((s) => s.status())).toEqual(new Array(8).fill(200))
    await env.db.sql("UPDATE orders SET status = 'tls' WHERE id = 1")
    for (const s of streams.filter((_, i) => i % 2 === 0)) await s.waitFor((x) => x.raw().includes('"tls"'))
    expect(await env.walera.stop("SIGTERM")).toBe(0)
    await Promise.all(streams.map((s) => s.closed))
    for (const s of streams)
      expect(s.raw()).toMatch(/retry: \d+\n\nevent: shutdown\ndata: \{"reason":"service_restart"\}\n\n$/)
    expect(h2.goaway()).toBe(true)
    h2.close()
  })
})
