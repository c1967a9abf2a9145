// The application layer without I/O: the handshake, grant refresh, revocation, narrowing
// and the breaker's bounded fail-open, driven by TestClock with a scripted auth backend and
// in-memory sinks.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Metrics } from "../../adapters/metrics/Metrics.ts"
import { Log, makeLog } from "../../adapters/telemetry/Log.ts"
import type { Grant } from "../../domain/Grant.ts"
import {
  AuthBackend,
  AuthUnavailable,
  type SessionAnswer,
  type SessionRequest,
} from "../../domain/ports/AuthBackend.ts"
import { type Accept, StreamGateway, type StreamSink } from "../../domain/ports/StreamGateway.ts"
import { feed, initialAssembly, type Tx } from "../../domain/TxAssembler.ts"
import { loadConfig, type WaleraConfig } from "../../src/Config.ts"
import * as Gateway from "../../src/Gateway.ts"
import { HubService } from "../../src/Hub.ts"

const configFor = (env: Record<string, string> = {}): WaleraConfig => {
  const r = loadConfig({
    env: {
      WALERA_DATABASE_URL: "postgres://u:p@localhost/db",
      WALERA_AUTH_BACKEND_URL: "https://auth.test",
      WALERA_AUTH_BREAKER_MIN_SAMPLES: "3",
      WALERA_AUTH_BREAKER_COOLDOWN: "30s",
      ...env,
    },
  })
  if (!r.ok) throw new Error(JSON.stringify(r.problems))
  return r.config
}

const grant = (tables: Record<string, string[]>, ttlSeconds: number | null = 60): Grant => ({
  userId: "alice",
  tables,
  roots: null,
  ttlSeconds,
  initialData: undefined,
})

/** A backend whose next answers the test decides. */
const scripted = () => {
  const calls: SessionRequest[] = []
  let next: (r: SessionRequest) => Effect.Effect<SessionAnswer, AuthUnavailable> = () =>
    Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) })
  const layer = Layer.succeed(
    AuthBackend,
    AuthBackend.of({
      openSession: (r) => Effect.suspend(() => (calls.push(r), next(r))),
      probe: Effect.void,
    }),
  )
  return {
    calls,
    layer,
    answer: (f: typeof next) => {
      next = f
    },
  }
}

const fakeSink = () => {
  const chunks: string[] = []
  let closed: string | undefined
  const sink: StreamSink = {
    cork: () => {},
    uncork: () => {},
    write: (b) => void chunks.push(Buffer.from(b).toString()),
    pending: () => 0,
    close: (last) => {
      closed = last === undefined ? "" : Buffer.from(last).toString()
    },
  }
  return { sink, text: () => chunks.join(""), closed: () => closed }
}

const testLayer = (config: WaleraConfig, auth: Layer.Layer<AuthBackend>) =>
  Gateway.layer(config).pipe(
    Layer.provideMerge(
      HubService.layer({
        heartbeatIntervalMs: config.router.heartbeatIntervalMs,
        writeTimeoutMs: config.http.writeTimeoutMs,
        maxBufferedBytes: config.http.maxBufferedBytesPerSubscriber,
        maxPayloadBytes: config.http.maxPayloadBytes,
      }),
    ),
    Layer.provideMerge(
      Layer.mergeAll(auth, Metrics.layer, Layer.succeed(Log, makeLog({ level: "error", pretty: false }))),
    ),
  )

/** Lets forked refresh fibers run. */
const settle = Effect.promise(() => new Promise((r) => setTimeout(r, 5)))

const ordersTx = (xid: number, cols: Record<string, string>): Tx => {
  const names = ["id", ...Object.keys(cols)]
  const { events } = feed(initialAssembly(100), [
    {
      tag: "relation",
      relationId: 1,
      schema: "public",
      name: "orders",
      replicaIdentity: "default",
      columns: names.map((name) => ({ name, typeOid: 25, isKey: name === "id" })),
    },
    { tag: "begin", finalLsn: BigInt(xid), commitTime: 0n, xid },
    { tag: "insert", relationId: 1, newTuple: ["1", ...Object.values(cols)] },
    { tag: "commit", commitLsn: BigInt(xid), endLsn: BigInt(xid + 1), commitTime: 0n },
  ])
  const e = events.find((x) => x._tag === "Tx")
  if (e?._tag !== "Tx") throw new Error("no tx")
  return e.tx
}

const openStream = Effect.gen(function* () {
  const gw = yield* StreamGateway
  const hub = yield* HubService
  hub.walStarted()
  const decision = yield* gw.open({ path: "orders/1", headers: { authorization: "Bearer t" } })
  assert.strictEqual(decision._tag, "Accept")
  const sink = fakeSink()
  ;(decision as Accept).attach(sink.sink)
  return { sink, hub }
})

describe("grant refresh", () => {
  it.effect("refreshes within [0.5, 0.85] of the TTL and ends the stream with auth_revoked on 401", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const { sink } = yield* openStream
      assert.strictEqual(backend.calls.length, 1)
      backend.answer(() => Effect.succeed({ _tag: "Denied", status: 401, body: "{}" }))
      yield* TestClock.adjust("29 seconds")
      yield* settle
      assert.strictEqual(backend.calls.length, 1, "no refresh before half the TTL")
      yield* TestClock.adjust("23 seconds")
      yield* settle
      assert.strictEqual(backend.calls.length, 2, "one refresh before 0.85 of the TTL")
      assert.strictEqual(backend.calls[1]!.credentials.authorization, "Bearer t")
      assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_revoked"}\n\n')
    }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
  })

  it.effect("a refreshed grant without the stream's table revokes it", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const { sink } = yield* openStream
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ line_items: ["id"] }) }))
      yield* TestClock.adjust("52 seconds")
      yield* settle
      assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_revoked"}\n\n')
    }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
  })

  it.effect("a narrowing refresh applies to the next transaction without reconnecting", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status", "note"] }) }))
      const { sink, hub } = yield* openStream
      hub.dispatch(ordersTx(10, { status: "new", note: "BEFORE" }))
      assert.include(sink.text(), '"note":"BEFORE"')
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
      yield* TestClock.adjust("52 seconds")
      yield* settle
      assert.strictEqual(backend.calls.length, 2)
      hub.dispatch(ordersTx(11, { status: "paid", note: "AFTER" }))
      assert.include(sink.text(), '"status":"paid"')
      assert.notInclude(sink.text(), "AFTER")
      assert.strictEqual(sink.closed(), undefined)
    }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
  })

  it.effect("ttl 0 never refreshes", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 0) }))
      const { sink } = yield* openStream
      yield* TestClock.adjust("2 hours")
      yield* settle
      assert.strictEqual(backend.calls.length, 1)
      assert.strictEqual(sink.closed(), undefined)
    }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
  })
})

describe("breaker and bounded fail-open", () => {
  it.effect("while the backend fails, a stream keeps its grant until it expires, then gets auth_unavailable", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 20) }))
      const { sink, hub } = yield* openStream
      backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "status", message: "503" })))
      yield* TestClock.adjust("17 seconds")
      yield* settle
      assert.isAtLeast(backend.calls.length, 2, "refresh attempted")
      assert.strictEqual(sink.closed(), undefined, "still streaming on the last grant")
      hub.dispatch(ordersTx(12, { status: "still-flowing" }))
      assert.include(sink.text(), "still-flowing")
      yield* TestClock.adjust("4 seconds")
      yield* settle
      assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_unavailable"}\n\n')
    }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
  })

  it.effect(
    "opens: failures open the breaker, new opens get 503 with Retry-After and no backend call, then a probe closes it",
    () => {
      const backend = scripted()
      return Effect.gen(function* () {
        const gw = yield* StreamGateway
        const hub = yield* HubService
        hub.walStarted()
        backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "timeout", message: "slow" })))
        for (let i = 0; i < 3; i++) {
          const r = yield* gw.open({ path: "orders/1", headers: { authorization: "Bearer t" } })
          assert.strictEqual(r._tag === "Reject" && r.status, 503)
        }
        const calls = backend.calls.length
        const refused = yield* gw.open({ path: "orders/1", headers: { authorization: "Bearer t" } })
        assert.strictEqual(refused._tag, "Reject")
        if (refused._tag === "Reject") {
          assert.strictEqual(refused.status, 503)
          assert.strictEqual(refused.headers["retry-after"], "30")
        }
        assert.strictEqual(backend.calls.length, calls, "backend not called while open")
        assert.strictEqual(JSON.parse(gw.readyz().body).breaker, "open")
        yield* TestClock.adjust("31 seconds")
        backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
        const probe = yield* gw.open({ path: "orders/1", headers: { authorization: "Bearer t" } })
        assert.strictEqual(probe._tag, "Accept")
        ;(probe as Accept).cancel()
        const again = yield* gw.open({ path: "orders/1", headers: { authorization: "Bearer t" } })
        assert.strictEqual(again._tag, "Accept")
        ;(again as Accept).cancel()
      }).pipe(Effect.provide(testLayer(configFor(), backend.layer)))
    },
  )
})
