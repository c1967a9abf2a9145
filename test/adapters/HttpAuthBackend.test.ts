// The auth backend's connection pool: a burst of opens is a burst of concurrent calls, and the connections it made
// must serve the next burst. Connections closed and reopened between bursts cost the backend a TCP (or TLS)
// handshake per call and leave each socket's objects as garbage in Walera's old generation.
import http from "node:http"
import type net from "node:net"
import { Effect, Layer } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { layer } from "../../adapters/auth/HttpAuthBackend.ts"
import { parseChannel } from "../../domain/Channel.ts"
import { AuthBackend, type SessionRequest } from "../../domain/ports/AuthBackend.ts"

let server: http.Server | undefined
afterEach(() => {
  server?.closeAllConnections()
  server?.close()
})

/** A backend that answers every call with a grant once `concurrency` calls are waiting (so they overlap). */
const startBackend = (concurrency: number) =>
  new Promise<{ url: string; connections: () => number }>((resolve) => {
    let connections = 0
    let waiting: Array<http.ServerResponse> = []
    server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      req.resume()
      req.on("end", () => {
        waiting.push(res)
        if (waiting.length < concurrency) return
        for (const r of waiting) {
          r.writeHead(200, { "content-type": "application/json" })
          r.end(JSON.stringify({ user_id: "u1", whitelist: { orders: ["id"] }, ttl_seconds: 60 }))
        }
        waiting = []
      })
    })
    server.on("connection", (_socket: net.Socket) => {
      connections += 1
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server!.address() as net.AddressInfo
      resolve({ url: `http://127.0.0.1:${port}`, connections: () => connections })
    })
  })

const request = (i: number): SessionRequest => {
  const channel = parseChannel(`orders/${i + 1}`)
  if (channel === undefined) throw new Error("test channel did not parse")
  return {
    channel,
    requestId: `req-${i}`,
    credentials: { authorization: "Bearer t", cookie: undefined, headers: [] },
  }
}

describe("HttpAuthBackend connection pool", () => {
  it("keeps the connections of a burst of 200 concurrent calls for the next burst", async () => {
    const burst = 200
    const backend = await startBackend(burst)
    const config = { backendUrl: backend.url, requestTimeoutMs: 5_000, maxConcurrentCalls: 256, propagateTrace: false }
    const wave = Effect.gen(function* () {
      const auth = yield* AuthBackend
      const answers = yield* Effect.forEach(
        Array.from({ length: burst }, (_, i) => request(i)),
        auth.openSession,
        {
          concurrency: "unbounded",
        },
      )
      return answers.filter((a) => a._tag === "Granted").length
    })
    const granted = await Effect.runPromise(
      Effect.gen(function* () {
        const first = yield* wave
        // The agent takes a socket back once its response has ended, a tick after the answer was read.
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        const second = yield* wave
        return [first, second]
      }).pipe(Effect.provide(Layer.fresh(layer(config))), Effect.scoped),
    )
    expect(granted, "every call of both bursts granted").toEqual([burst, burst])
    expect(backend.connections(), "connections the backend accepted over two bursts").toBe(burst)
  })
})
