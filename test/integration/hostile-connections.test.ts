// Attacks on connections rather than on the handshake (docs/security.md): headers that never
// finish, more connections than Walera will hold, probes that must stay reachable on the admin
// address, a malformed request inside a running stream, and a paused client that goes away.
import http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  expectWhole,
  LEGIT_TOKEN,
  type RawConnection,
  rawConnect,
  sleep,
  type Stack,
  startStack,
  streamRequest,
} from "../support/Hostile.ts"
import { waitUntil } from "../support/SseClient.ts"

const HALF_HEADERS = "GET /sse/v1/orders/1 HTTP/1.1\r\nHost: walera\r\n"

const closedWithin = async (conns: ReadonlyArray<RawConnection>, ms: number): Promise<number> => {
  await Promise.race([Promise.all(conns.map((c) => c.closed)), sleep(ms)])
  return conns.filter((c) => c.isClosed()).length
}

describe("connections that never finish their request headers", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_HTTP_HEADERS_TIMEOUT: "1s",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
      },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("are closed after http.headers_timeout, trickling ones included", async () => {
    const silent = await Promise.all(Array.from({ length: 40 }, () => rawConnect(stack.port, HALF_HEADERS)))
    const trickling = await Promise.all(Array.from({ length: 10 }, () => rawConnect(stack.port, HALF_HEADERS)))
    let n = 0
    const trickle = setInterval(() => {
      for (const c of trickling) if (!c.isClosed()) c.socket.write(`X-Slow-${n}: 1\r\n`)
      n++
    }, 300)
    try {
      const all = [...silent, ...trickling]
      const closed = await closedWithin(all, 10_000)
      expect(all.length - closed, "connections still open 10 s after a 1 s http.headers_timeout").toBe(0)
    } finally {
      clearInterval(trickle)
      for (const c of [...silent, ...trickling]) c.socket.destroy()
    }
    await expectWhole(stack, 6)
  })
})

describe("more connections than http.max_connections", () => {
  const MAX = 20
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_HTTP_MAX_CONNECTIONS: String(MAX),
        WALERA_HTTP_HEADERS_TIMEOUT: "30s",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
      },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("are closed at once and counted in walera_connections_rejected_total", async () => {
    const held: RawConnection[] = []
    for (let i = 0; i < MAX + 10; i++) held.push(await rawConnect(stack.port, HALF_HEADERS))
    try {
      const refused = await closedWithin(held, 3000)
      expect(held.length - refused, "connections Walera holds").toBeLessThanOrEqual(MAX)
      expect(refused, "connections refused past http.max_connections").toBeGreaterThanOrEqual(10)
    } finally {
      for (const c of held) c.socket.destroy()
    }
    await sleep(200)
    expect(
      await stack.total("walera_connections_rejected_total"),
      "walera_connections_rejected_total",
    ).toBeGreaterThanOrEqual(10)
    await expectWhole(stack, 6)
  })
})

describe("probes on http.admin_addr while the public address is full", () => {
  const MAX = 10

  it("keep answering, and the public address serves only the stream endpoints", async () => {
    // Started here, not in beforeAll: a Walera that ignores http.admin_addr fails this test, not its set-up.
    const stack = await startStack({
      admin: true,
      env: {
        WALERA_HTTP_MAX_CONNECTIONS: String(MAX),
        WALERA_HTTP_HEADERS_TIMEOUT: "30s",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
      },
    })
    try {
      const publicMetrics = await new Promise<number>((resolve, reject) =>
        http
          .get(`${stack.url}/metrics`, { agent: false }, (res) => {
            res.resume()
            resolve(res.statusCode ?? 0)
          })
          .on("error", reject),
      )
      expect(publicMetrics, "/metrics on the public address").toBe(404)
      const held: RawConnection[] = []
      for (let i = 0; i < MAX + 5; i++) held.push(await rawConnect(stack.port, HALF_HEADERS))
      try {
        for (const path of ["/livez", "/healthz", "/readyz", "/metrics"]) {
          expect((await stack.probe(path)).status, `${path} on the admin address during the flood`).toBe(200)
        }
      } finally {
        for (const c of held) c.socket.destroy()
      }
      await expectWhole(stack, 6)
    } finally {
      await stack.close()
    }
  })
})

describe("a stream connection that turns hostile", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_HTTP_WRITE_TIMEOUT: "60s",
        WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER: "104857600",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
      },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("a malformed request after the SSE headers gets no raw HTTP 400 written into the stream", async () => {
    const c = await rawConnect(stack.port, streamRequest("/sse/v1/orders/1", LEGIT_TOKEN))
    await waitUntil(() => c.received().includes("retry: 15000"), 10_000, "the stream prelude")
    c.socket.write("NOT HTTP AT ALL\r\n\r\n")
    await Promise.race([c.closed, sleep(3000)])
    const raw = c.received()
    const body = raw.slice(raw.indexOf("\r\n\r\n") + 4)
    expect(body, "bytes after the SSE response headers").not.toContain("HTTP/1.1")
    c.socket.destroy()
    await expectWhole(stack, 6)
  })

  it("a client that stopped reading and then closes its side is noticed at once", async () => {
    const c = await rawConnect(stack.port, streamRequest("/sse/v1/orders/2", LEGIT_TOKEN))
    await waitUntil(() => c.received().includes("retry: 15000"), 10_000, "the stream prelude")
    c.socket.pause()
    // Enough that Walera holds bytes the client never read; far below the byte budget and write timeout.
    const chunk = "z".repeat(32_000)
    for (let i = 0; i < 150; i++) await stack.db.sql("UPDATE orders SET status = $1 WHERE id = 2", [`${i}-${chunk}`])
    await sleep(500)
    expect(await stack.total("walera_subscribers_active")).toBe(1)
    // A FIN, not a reset: the client is gone, but its unread bytes keep the socket from closing by itself.
    c.socket.end()
    const closedAt = performance.now()
    await waitUntil(
      async () => (await stack.total("walera_subscribers_active")) === 0,
      30_000,
      "walera_subscribers_active to drop after the paused client went away",
    )
    expect(performance.now() - closedAt, "ms until the disconnect was noticed").toBeLessThan(3000)
    c.socket.destroy()
    await expectWhole(stack, 6)
  })
})
