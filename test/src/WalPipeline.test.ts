// The replication supervisor with a scripted WalSource and TestClock: jittered exponential
// reconnects, wal_disconnected to open streams, a fatal prerequisite at startup, and
// protocol anomalies counted.
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Metrics } from "../../adapters/metrics/Metrics.ts"
import { Log, makeLog } from "../../adapters/telemetry/Log.ts"
import { WalError, type WalSink, WalSource } from "../../domain/ports/WalSource.ts"
import { HubService } from "../../src/Hub.ts"
import * as WalPipeline from "../../src/WalPipeline.ts"

interface Script {
  readonly prepares: number[]
  readonly sessions: number[]
  /** Per session: what happens once it streams. */
  next: (sink: WalSink) => Effect.Effect<never, WalError>
  prepare: () => Effect.Effect<void, WalError>
}

const scriptedWal = () => {
  const script: Script = {
    prepares: [],
    sessions: [],
    next: () => Effect.fail(new WalError({ reason: "unreachable", message: "connection refused" })),
    prepare: () => Effect.void,
  }
  const layer = Layer.effect(
    WalSource,
    Effect.gen(function* () {
      const clock = yield* Effect.clockWith((c) => Effect.succeed(c))
      return WalSource.of({
        prepare: Effect.suspend(() => {
          script.prepares.push(clock.currentTimeMillisUnsafe())
          return script.prepare()
        }),
        stream: (sink) =>
          Effect.suspend(() => {
            script.sessions.push(clock.currentTimeMillisUnsafe())
            return script.next(sink)
          }),
        slotLagBytes: Effect.succeed(0),
      })
    }),
  )
  return { script, layer }
}

const build = (wal: Layer.Layer<WalSource>) =>
  WalPipeline.layer({ maxChangesPerTx: 100 }).pipe(
    Layer.provideMerge(
      HubService.layer({
        heartbeatIntervalMs: 15_000,
        writeTimeoutMs: 5000,
        maxBufferedBytes: 1 << 20,
        maxPayloadBytes: 1 << 20,
      }),
    ),
    Layer.provideMerge(
      Layer.mergeAll(
        wal,
        Metrics.layer,
        WalPipeline.Fatal.layer,
        Layer.succeed(Log, makeLog({ level: "error", pretty: false })),
      ),
    ),
  )

describe("reconnect", () => {
  it.effect("retries an unreachable database with exponential backoff between 1 s and 30 s", () => {
    const { script, layer } = scriptedWal()
    return Effect.gen(function* () {
      yield* TestClock.adjust("2 minutes")
      const gaps = script.sessions.slice(1).map((t, i) => t - script.sessions[i]!)
      assert.isAtLeast(gaps.length, 5)
      // attempt n waits within [d/2, d] with d = min(1 s · 2^n, 30 s)
      gaps.forEach((gap, n) => {
        const d = Math.min(1000 * 2 ** n, 30_000)
        assert.isAtLeast(gap, d / 2 - 1, `gap ${n}`)
        assert.isAtMost(gap, d + 1, `gap ${n}`)
      })
      const metrics = yield* Metrics
      const reconnects = (yield* Effect.promise(() => metrics.pgReconnects.get())).values[0]?.value
      assert.strictEqual(reconnects, script.sessions.length)
    }).pipe(Effect.provide(build(layer)))
  })

  it.effect("a lost session tells every open stream wal_disconnected and streams again on a fresh session", () => {
    const { script, layer } = scriptedWal()
    return Effect.gen(function* () {
      const hub = yield* HubService
      const lose = yield* Deferred.make<void>()
      let session = 0
      script.next = (sink) =>
        Effect.gen(function* () {
          session++
          sink.onStreaming({ slot: "s", startLsn: 0n })
          if (session === 1) yield* Deferred.await(lose)
          else yield* Effect.never
          return yield* Effect.fail(new WalError({ reason: "lost", message: "terminated" }))
        })
      yield* TestClock.adjust("10 millis")
      assert.isTrue(hub.walStreaming)
      let closedWith: string | undefined
      hub.reserveUser("u", 10)
      hub.attach({
        table: "orders",
        pk: "1",
        channel: "orders:1",
        userId: "u",
        requestId: "r",
        credentials: { authorization: "Bearer t", cookie: undefined, headers: [] },
        tables: { orders: [] },
        sink: {
          write: () => {},
          pending: () => 0,
          cork: () => {},
          uncork: () => {},
          close: (last) => {
            closedWith = last === undefined ? "" : Buffer.from(last).toString()
          },
        },
        refreshAt: Number.POSITIVE_INFINITY,
        expiresAt: Number.POSITIVE_INFINITY,
      })
      const epoch = hub.walEpoch
      yield* Deferred.succeed(lose, undefined)
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(closedWith, 'event: error\ndata: {"reason":"wal_disconnected"}\n\n')
      assert.isFalse(hub.walStreaming)
      yield* TestClock.adjust("2 seconds")
      assert.isTrue(hub.walStreaming)
      assert.isAbove(hub.walEpoch, epoch)
    }).pipe(Effect.provide(build(layer)))
  })
})

describe("startup and protocol", () => {
  it.effect("a prerequisite missing before the first session completes Fatal with the reason", () => {
    const { script, layer } = scriptedWal()
    script.prepare = () => Effect.fail(new WalError({ reason: "prerequisite", message: "wal_level is replica" }))
    return Effect.gen(function* () {
      const fatal = yield* WalPipeline.Fatal
      yield* TestClock.adjust("10 millis")
      const error = yield* Deferred.await(fatal).pipe(Effect.flip)
      assert.strictEqual(error.message, "wal_level is replica")
      assert.strictEqual(script.sessions.length, 0)
    }).pipe(Effect.provide(build(layer)))
  })

  it.effect("protocol anomalies are counted in walera_wal_decode_errors_total and do not stop the session", () => {
    const { script, layer } = scriptedWal()
    return Effect.gen(function* () {
      script.next = (sink) =>
        Effect.gen(function* () {
          sink.onStreaming({ slot: "s", startLsn: 0n })
          sink.onMessage({ tag: "commit", commitLsn: 1n, endLsn: 2n, commitTime: 0n })
          sink.onMessage({ tag: "insert", relationId: 9, newTuple: ["1"] })
          return yield* Effect.never
        })
      yield* TestClock.adjust("10 millis")
      const metrics = yield* Metrics
      const errors = yield* Effect.promise(() => metrics.decodeErrors.get())
      assert.strictEqual(errors.values.find((v) => v.labels["kind"] === "anomaly")?.value, 2)
      assert.isTrue((yield* HubService).walStreaming)
    }).pipe(Effect.provide(build(layer)))
  })
})
