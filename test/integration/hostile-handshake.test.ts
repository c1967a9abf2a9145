// Attacks on the handshake (docs/security.md): clients that hang up during the auth call,
// floods against a slow backend, abandoned half-open probes, a backend 429, HTTP/1.1
// pipelining and a percent-encoded `all`. Each replays the attack small and then checks
// that the service is whole again.
import http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  expectWhole,
  LEGIT,
  legit,
  rawConnect,
  sleep,
  type Stack,
  startStack,
  streamRequest,
} from "../support/Hostile.ts"
import { metricValue } from "../support/Scrape.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"

const callsFor = (stack: Stack, token: string) =>
  stack.auth.calls.filter((c) => c.headers.authorization === `Bearer ${token}`).length

const breakerState = async (stack: Stack) => metricValue(await stack.metrics(), "walera_auth_circuit_breaker_state")

describe("clients that hang up while the auth backend is answering", () => {
  const CAP = 6
  const WAVES = 8
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: String(CAP),
        WALERA_LIMITS_PER_USER_CONCURRENT: String(CAP),
        WALERA_AUTH_REQUEST_TIMEOUT: "5s",
      },
    })
    stack.auth.answers.set("slow-token", {
      delayMs: 1500,
      answer: { status: 200, body: { ...LEGIT, user_id: "slow" } },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("give back every global slot: resets and tab closes in waves never fill limits.global_concurrent", async () => {
    for (let wave = 0; wave < WAVES; wave++) {
      const before = callsFor(stack, "slow-token")
      const conns = await Promise.all(
        Array.from({ length: CAP - 1 }, () => rawConnect(stack.port, streamRequest("/sse/v1/orders/1", "slow-token"))),
      )
      // Each request either reached the backend or was answered (refused) by Walera.
      await waitUntil(
        () => callsFor(stack, "slow-token") - before + conns.filter((c) => c.received() !== "").length >= CAP - 1,
        10_000,
        "the wave's requests to reach the backend or be answered",
      )
      // Half reset the connection, half close it like a browser tab does.
      for (const [i, c] of conns.entries()) {
        if (i % 2 === 0) c.socket.resetAndDestroy()
        else c.socket.destroy()
      }
      // Whether Walera cancels the call or lets it finish, the backend is idle again before the next wave.
      await waitUntil(() => stack.auth.load.inFlight === 0, 10_000, "the auth calls of the clients that left to end")
      await sleep(100)
    }
    expect(
      callsFor(stack, "slow-token"),
      "every handshake of every wave reached the backend: none was refused for a slot an abandoned one still held",
    ).toBe(WAVES * (CAP - 1))
    await expectWhole(stack, CAP)
  })
})

describe("a flood of opens against a healthy but slow auth backend", () => {
  const OPENS = 700
  const MAX_CALLS = 16
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: "5000",
        WALERA_LIMITS_PER_USER_CONCURRENT: "5000",
        WALERA_AUTH_MAX_CONCURRENT_CALLS: String(MAX_CALLS),
        WALERA_AUTH_REQUEST_TIMEOUT: "2s",
      },
    })
    // 400 ms is healthy under the 2 s timeout (with room for a loaded CI box); the backend itself never queues.
    stack.auth.answers.set("flood-token", {
      delayMs: 400,
      answer: { status: 200, body: { ...LEGIT, user_id: "flood" } },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("answers the excess 503 Retry-After: 1 without calling the backend, and the breaker stays closed", async () => {
    const answers = await Promise.all(
      Array.from(
        { length: OPENS },
        (_, i) =>
          new Promise<{ status: number; retryAfter: string | undefined }>((resolve) => {
            const req = http.get(
              `${stack.url}/sse/v1/orders/1`,
              { agent: false, headers: { authorization: "Bearer flood-token", "x-request-id": `flood-${i}` } },
              (res) => {
                resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] })
                res.destroy()
              },
            )
            req.on("error", () => resolve({ status: 0, retryAfter: undefined }))
          }),
      ),
    )
    const summary = new Map<string, number>()
    for (const a of answers) {
      const key = `${a.status} retry-after=${a.retryAfter}`
      summary.set(key, (summary.get(key) ?? 0) + 1)
    }
    const seen = JSON.stringify(Object.fromEntries(summary))
    const refused = answers.filter((a) => a.status === 503)
    expect(
      refused.filter((a) => a.retryAfter !== "1").length,
      `refused opens that are not the in-flight limit's 503 Retry-After: 1 (seen ${seen})`,
    ).toBe(0)
    expect(answers.filter((a) => a.status !== 200 && a.status !== 503).length, seen).toBe(0)
    expect(refused.length, seen).toBeGreaterThan(0)
    expect(answers.filter((a) => a.status === 200).length, seen).toBeGreaterThanOrEqual(MAX_CALLS)
    // + 1: Walera's readiness probe of the backend may overlap the flood.
    expect(stack.auth.load.maxInFlight, "auth calls in flight at the backend").toBeLessThanOrEqual(MAX_CALLS + 1)
    expect(await breakerState(stack), "breaker after the flood").toBe(0)
    await expectWhole(stack, undefined)
  }, 90_000)
})

describe("clients that hang up during the half-open probe", () => {
  const PROBES = 6
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
        WALERA_AUTH_REQUEST_TIMEOUT: "5s",
        WALERA_AUTH_BREAKER_MIN_SAMPLES: "4",
        WALERA_AUTH_BREAKER_WINDOW: "20s",
        // Longer than the whole attack, so a probe counted as failed would keep the breaker open to the end.
        WALERA_AUTH_BREAKER_COOLDOWN: "3s",
      },
    })
    stack.auth.answers.set("down-token", { status: 500, body: "down" })
    stack.auth.answers.set("leaver-token", {
      delayMs: 3000,
      answer: { status: 200, body: { ...LEGIT, user_id: "leaver" } },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("leave the breaker half-open, so the next open is the probe and closes it", async () => {
    for (let i = 0; (await breakerState(stack)) !== 1; i++) {
      expect(i, "failures needed to open the breaker").toBeLessThan(20)
      expect(
        (await fetch(`${stack.url}/sse/v1/orders/1`, { headers: { authorization: "Bearer down-token" } })).status,
      ).toBe(503)
    }
    await sleep(3200)
    // About four per second, each hanging up while its probe call is at the backend.
    for (let i = 0; i < PROBES; i++) {
      const before = callsFor(stack, "leaver-token")
      const c = await rawConnect(stack.port, streamRequest("/sse/v1/orders/1", "leaver-token"))
      await waitUntil(
        () => callsFor(stack, "leaver-token") > before || c.received() !== "",
        5000,
        "the probe call to reach the backend or the open to be refused",
      )
      c.socket.resetAndDestroy()
      await sleep(250)
    }
    expect(
      callsFor(stack, "leaver-token"),
      "each open after an abandoned probe was let through as the next probe",
    ).toBe(PROBES)
    const next = await openSse(stack.url, "/sse/v1/orders/1", legit)
    next.close()
    expect(next.status, "the legitimate open after the abandoned probes").toBe(200)
    expect(await breakerState(stack)).toBe(0)
    await expectWhole(stack, 6)
  })
})

describe("a backend that answers 429 for one abusive client", () => {
  const BODY = '{"error":"slow_down","detail":"too many opens for this session"}'
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
        WALERA_AUTH_BREAKER_MIN_SAMPLES: "4",
        WALERA_AUTH_BREAKER_WINDOW: "20s",
      },
    })
    stack.auth.answers.set("abuser-token", { status: 429, body: BODY, headers: { "retry-after": "7" } })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("passes 429 through with its body and Retry-After, and does not count it against the breaker", async () => {
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${stack.url}/sse/v1/orders/1`, { headers: { authorization: "Bearer abuser-token" } })
      expect(r.status, `open ${i}`).toBe(429)
      expect(r.headers.get("retry-after")).toBe("7")
      expect(await r.text()).toBe(BODY)
    }
    expect(await breakerState(stack)).toBe(0)
    await expectWhole(stack, 6)
  })
})

describe("pipelined requests and a percent-encoded all", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: { WALERA_LIMITS_GLOBAL_CONCURRENT: "6", WALERA_LIMITS_PER_USER_CONCURRENT: "6" },
    })
    stack.auth.answers.set("pipe-token", { status: 200, body: { ...LEGIT, user_id: "piper" } })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it.each(["/sse/v1/orders/%61ll", "/sse/v1/orders/a%6Cl", "/sse/v1/orders/%61%6C%6C"])(
    "%s is refused 400 invalid_channel without calling the backend",
    async (path) => {
      const calls = stack.auth.calls.length
      const r = await fetch(`${stack.url}${path}`, { headers: legit })
      expect(r.status).toBe(400)
      expect(await r.json()).toEqual({ error: "invalid_channel" })
      expect(stack.auth.calls.length, "auth backend calls").toBe(calls)
      await expectWhole(stack, 6)
    },
  )

  it("200 stream requests pipelined on one socket make at most one auth call, and the connection is closed", async () => {
    const one = streamRequest("/sse/v1/orders/1", "pipe-token")
    const c = await rawConnect(stack.port, one.repeat(200))
    await Promise.race([c.closed, sleep(8000)])
    expect(callsFor(stack, "pipe-token"), "auth calls made for one pipelining connection").toBeLessThanOrEqual(1)
    expect(c.isClosed(), "Walera closed the pipelining connection").toBe(true)
    expect(c.received().split("HTTP/1.1 200").length - 1).toBeLessThanOrEqual(1)
    c.socket.destroy()
    await expectWhole(stack, 6)
  })
})
