// The application side of an open without I/O, on TestClock: the handshake's slots given back on every way out
// (interruption included), the auth call slots and breaker (cooldown, abandoned probe, 429), grant refresh,
// revocation, narrowing and bounded fail-open, the gapless open and resume from the replay window.
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { makeLog } from "../../adapters/telemetry/Log.ts"
import { parseChannel } from "../../domain/Channel.ts"
import type { Grant } from "../../domain/Grant.ts"
import type { PgMessage } from "../../domain/PgMessage.ts"
import {
  AuthBackend,
  AuthUnavailable,
  type SessionAnswer,
  type SessionRequest,
} from "../../domain/ports/AuthBackend.ts"
import {
  type Accept,
  type Decision,
  Gateway,
  type OpenRequest,
  type SubscriberSink,
} from "../../domain/ports/Gateway.ts"
import { Log } from "../../domain/ports/Log.ts"
import { assembleAll, type Tx } from "../../domain/TxAssembler.ts"
import { Admission } from "../../src/Admission.ts"
import { AuthGate } from "../../src/AuthGate.ts"
import { Grants } from "../../src/Grants.ts"
import * as Handshake from "../../src/Handshake.ts"
import { HubService } from "../../src/Hub.ts"
import { Replication, type ReplicationStatus } from "../../src/Replication.ts"
import { layerMemory, makeMemoryObservability, type MemoryObservability } from "../support/MemoryObservability.ts"

const grant = (tables: Record<string, string[]>, ttlSeconds: number | null = 60, initialData?: string): Grant => ({
  userId: "alice",
  tables,
  roots: null,
  ttlSeconds,
  initialData,
})

const granted = (g: Grant): SessionAnswer => ({ _tag: "Granted", grant: g })

/** A backend whose answers the test decides; each call can be held until the test lets it finish. */
const scripted = () => {
  const calls: SessionRequest[] = []
  let next: (r: SessionRequest) => Effect.Effect<SessionAnswer, AuthUnavailable> = () =>
    Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) })
  const layer = Layer.succeed(
    AuthBackend,
    AuthBackend.of({
      openSession: (r) =>
        Effect.suspend(() => {
          calls.push(r)
          return next(r)
        }),
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

interface Options {
  readonly resume?: boolean
  readonly maxConcurrentCalls?: number
  readonly globalConcurrent?: number
  readonly replayMaxBytes?: number
  readonly maxBufferedBytes?: number
}

const replicationState = { status: { streaming: true, epoch: 1 } as ReplicationStatus }

const testLayer = (auth: Layer.Layer<AuthBackend>, obs: MemoryObservability, o: Options = {}) => {
  replicationState.status = { streaming: true, epoch: 1 }
  const base = Layer.mergeAll(
    auth,
    layerMemory(obs),
    Layer.succeed(Log, makeLog({ level: "error", pretty: false })),
    Admission.layer({ globalConcurrent: o.globalConcurrent ?? 100, perUserConcurrent: 100 }),
    Layer.succeed(Replication, Replication.of({ status: () => replicationState.status })),
  )
  const hub = HubService.layer({
    heartbeatIntervalMs: 15_000,
    writeTimeoutMs: 5000,
    maxBufferedBytes: o.maxBufferedBytes ?? 1 << 20,
    maxPayloadBytes: 1 << 20,
    replay: { retentionMs: 3000, maxBytes: o.replayMaxBytes ?? 1 << 20, keep: o.resume },
  }).pipe(Layer.provideMerge(base))
  const gate = AuthGate.layer({
    breaker: { windowMs: 30_000, minSamples: 3, failureRatio: 0.5, cooldownMs: 30_000 },
    maxConcurrentCalls: o.maxConcurrentCalls ?? 256,
  }).pipe(Layer.provideMerge(hub))
  const grants = Grants.layer({ defaultTtlSeconds: 60 }).pipe(Layer.provideMerge(gate))
  return Handshake.layer({
    resume: o.resume ?? false,
    maxBufferedBytes: o.maxBufferedBytes ?? 1 << 20,
    maxPayloadBytes: 1 << 20,
    reconnectSpreadMs: 30_000,
  }).pipe(Layer.provideMerge(grants))
}

const request = (pk = "1", extra: Partial<OpenRequest> = {}): OpenRequest => ({
  channel: parseChannel(`orders/${pk}`),
  credentials: { authorization: "Bearer t", cookie: undefined, headers: [] },
  requestId: "req-1",
  lastEventId: undefined,
  ...extra,
})

const fakeSink = () => {
  const chunks: string[] = []
  let closed: string | undefined
  const sink: SubscriberSink = {
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

const RELATION: PgMessage = {
  _tag: "relation",
  relationId: 1,
  schema: "public",
  name: "orders",
  replicaIdentity: "default",
  columns: ["id", "status", "note"].map((name) => ({ name, typeOid: 25, isKey: name === "id" })),
}

const ordersTx = (xid: number, pk: string, status: string, note = "n"): Tx => {
  const events = assembleAll({ maxChangesPerTx: 100 }, [
    RELATION,
    { _tag: "begin", finalLsn: BigInt(xid), commitTime: 0n, xid },
    { _tag: "insert", relationId: 1, newTuple: [pk, status, note] },
    { _tag: "commit", commitLsn: BigInt(xid), endLsn: BigInt(xid + 1), commitTime: 0n },
  ])
  const e = events.find((x) => x._tag === "Tx")
  if (e?._tag !== "Tx") throw new Error("no tx")
  return e.tx
}

/** Opens and attaches in one scope that stays open (the subscriber owns the slots after attach). */
const openAttached = (req: OpenRequest = request()) =>
  Effect.gen(function* () {
    const gw = yield* Gateway
    const scope = yield* Scope.make()
    const decision = yield* gw.open(req).pipe(Scope.provide(scope))
    assert.strictEqual(decision._tag, "Accept", JSON.stringify(decision))
    const sink = fakeSink()
    const attached = (decision as Accept).attach(sink.sink)
    assert.strictEqual(attached._tag, "Attached")
    yield* Scope.close(scope, Exit.void)
    const preface = attached._tag === "Attached" ? Buffer.from(attached.preface).toString() : ""
    return { sink, preface, text: () => preface + sink.text() }
  })

const decide = (req: OpenRequest = request()): Effect.Effect<Decision, never, Gateway> =>
  Effect.scoped(Effect.flatMap(Gateway, (gw) => gw.open(req)))

/** Runs `f` (layers included) on the test clock with a wall clock that `step` moves alone, the monotonic one not. */
const withSteppedWallClock = <A, E, R>(f: (step: (ms: number) => void) => Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const test = yield* Clock.Clock
    let stepMs = 0
    const wall = () => test.currentTimeMillisUnsafe() + stepMs
    const stepped: Clock.Clock = {
      ...test,
      currentTimeMillisUnsafe: wall,
      currentTimeMillis: Effect.sync(wall),
      currentTimeNanosUnsafe: () => BigInt(wall()) * 1_000_000n,
      currentTimeNanos: Effect.sync(() => BigInt(wall()) * 1_000_000n),
    }
    return yield* f((ms) => {
      stepMs += ms
    }).pipe(Effect.provideService(Clock.Clock, stepped))
  })

describe("slots on every way out", () => {
  it.effect("a client that goes away during the auth call gives back its global slot", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const admission = yield* Admission
      backend.answer(() => Effect.never)
      const fibers = []
      for (let i = 0; i < 20; i++) fibers.push(yield* Effect.forkChild(decide()))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(admission.inUse(), 20)
      for (const f of fibers) yield* Fiber.interrupt(f)
      assert.strictEqual(admission.inUse(), 0)
      assert.strictEqual((yield* AuthGate).view().status, "closed", "abandoned calls are no breaker samples")
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability(), { globalConcurrent: 20 })))
  })

  it.effect("refusals after step 3 and decided-but-never-attached opens give back every slot", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const admission = yield* Admission
      assert.strictEqual((yield* decide(request("1", { credentials: undefined })))._tag, "MissingCredentials")
      assert.strictEqual((yield* decide(request("1", { requestId: undefined })))._tag, "InvalidRequestId")
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ line_items: ["id"] }) }))
      assert.strictEqual((yield* decide())._tag, "NotAllowed")
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
      assert.strictEqual((yield* decide())._tag, "Accept")
      assert.strictEqual(admission.inUse(), 0)
      const { sink } = yield* openAttached()
      assert.strictEqual(admission.inUse(), 1)
      const hub = yield* HubService
      for (const s of hub.subscribers()) hub.end(s, "client_closed")
      assert.strictEqual(sink.closed(), "")
      assert.strictEqual(admission.inUse(), 0)
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })
})

describe("auth call slots and the breaker", () => {
  it.effect("opens beyond auth.max_concurrent_calls get AuthBusy without a call and without a breaker sample", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hold = yield* Deferred.make<void>()
      backend.answer(() => Effect.andThen(Deferred.await(hold), Effect.succeed(granted(grant({ orders: ["status"] })))))
      const fibers = []
      for (let i = 0; i < 2; i++) fibers.push(yield* Effect.forkChild(decide()))
      yield* TestClock.adjust("1 millis")
      for (let i = 0; i < 5; i++) assert.strictEqual((yield* decide())._tag, "AuthBusy")
      assert.strictEqual(backend.calls.length, 2)
      assert.strictEqual(obs.count("limitRejected:auth_concurrency"), 5)
      yield* Deferred.succeed(hold, undefined)
      for (const f of fibers) assert.strictEqual((yield* Fiber.join(f))._tag, "Accept")
      assert.strictEqual((yield* AuthGate).view().status, "closed")
    }).pipe(Effect.provide(testLayer(backend.layer, obs, { maxConcurrentCalls: 2 })))
  })

  it.effect("failures open it; opens get 503 with the cooldown and no call; the cooldown timer half-opens it", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "timeout", message: "slow" })))
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* decide())._tag, "AuthUnavailable")
      const calls = backend.calls.length
      const refused = yield* decide()
      assert.deepStrictEqual(refused, { _tag: "AuthBreakerOpen", retryAfterSeconds: 30 })
      assert.strictEqual(backend.calls.length, calls, "backend not called while open")
      assert.strictEqual(obs.last("breaker"), "open")
      assert.strictEqual((yield* Gateway).health().breaker, "open")
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* decide(), { _tag: "AuthBreakerOpen", retryAfterSeconds: 20 })
      yield* TestClock.adjust("20 seconds")
      assert.strictEqual(obs.last("breaker"), "half_open", "moved by the cooldown timer, not by a request")
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
      assert.strictEqual((yield* decide())._tag, "Accept")
      assert.strictEqual(obs.last("breaker"), "closed")
    }).pipe(Effect.provide(testLayer(backend.layer, obs)))
  })

  it.effect("a wall clock stepped an hour back does not hold the breaker open for that hour", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return withSteppedWallClock((step) =>
      Effect.gen(function* () {
        backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "timeout", message: "slow" })))
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* decide())._tag, "AuthUnavailable")
        assert.strictEqual(obs.last("breaker"), "open")
        step(-3_600_000)
        yield* TestClock.adjust("30 seconds")
        backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
        assert.strictEqual((yield* decide())._tag, "Accept", "the 30 s cooldown is over")
        assert.strictEqual(obs.last("breaker"), "closed")
      }).pipe(Effect.provide(testLayer(backend.layer, obs))),
    )
  })

  it.effect("a client that hangs up during the half-open probe leaves it half-open for the next open", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "status", message: "503" })))
      for (let i = 0; i < 3; i++) yield* decide()
      yield* TestClock.adjust("30 seconds")
      backend.answer(() => Effect.never)
      const probe = yield* Effect.forkChild(decide())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* decide())._tag, "AuthBreakerOpen", "only one probe at a time")
      yield* Fiber.interrupt(probe)
      assert.strictEqual(obs.last("breaker"), "half_open")
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
      assert.strictEqual((yield* decide())._tag, "Accept")
      assert.strictEqual(obs.last("breaker"), "closed")
    }).pipe(Effect.provide(testLayer(backend.layer, obs)))
  })

  it.effect("a backend 429 passes through with its Retry-After and is an answer, not a failure", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() =>
        Effect.succeed({ _tag: "Denied", status: 429, body: '{"error":"slow down"}', retryAfterSeconds: 7 }),
      )
      for (let i = 0; i < 10; i++) {
        assert.deepStrictEqual(yield* decide(), {
          _tag: "Denied",
          status: 429,
          body: '{"error":"slow down"}',
          retryAfterSeconds: 7,
        })
      }
      assert.strictEqual((yield* AuthGate).view().status, "closed")
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })
})

describe("grant refresh", () => {
  it.effect("refreshes within [0.5, 0.85] of the TTL and ends the subscriber with auth_revoked on 401", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const { sink } = yield* openAttached()
      assert.strictEqual(backend.calls.length, 1)
      backend.answer(() => Effect.succeed({ _tag: "Denied", status: 401, body: "{}", retryAfterSeconds: undefined }))
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual(backend.calls.length, 1, "no refresh before half the TTL")
      yield* TestClock.adjust("23 seconds")
      assert.strictEqual(backend.calls.length, 2, "one refresh before 0.85 of the TTL")
      assert.strictEqual(backend.calls[1]!.credentials.authorization, "Bearer t")
      assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_revoked"}\n\n')
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it.effect("a refreshed grant without the subscriber's table revokes it", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const { sink } = yield* openAttached()
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ line_items: ["id"] }) }))
      yield* TestClock.adjust("52 seconds")
      assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_revoked"}\n\n')
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it.effect("a narrowing refresh applies to the next transaction without reconnecting", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status", "note"] }) }))
      const { sink } = yield* openAttached()
      const hub = yield* HubService
      hub.dispatch(ordersTx(10, "1", "new", "BEFORE"))
      assert.include(sink.text(), '"note":"BEFORE"')
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }) }))
      yield* TestClock.adjust("52 seconds")
      assert.strictEqual(backend.calls.length, 2)
      hub.dispatch(ordersTx(11, "1", "paid", "AFTER"))
      assert.include(sink.text(), '"status":"paid"')
      assert.notInclude(sink.text(), "AFTER")
      assert.strictEqual(sink.closed(), undefined)
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it.effect("ttl 0 never refreshes", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 0) }))
      const { sink } = yield* openAttached()
      yield* TestClock.adjust("2 hours")
      assert.strictEqual(backend.calls.length, 1)
      assert.strictEqual(sink.closed(), undefined)
      assert.strictEqual((yield* Grants).tracked(), 0)
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it.effect(
    "a wall clock stepped an hour forward (NTP, a VM restored from a snapshot) neither refreshes nor expires a grant",
    () => {
      const backend = scripted()
      return withSteppedWallClock((step) =>
        Effect.gen(function* () {
          const { sink } = yield* openAttached()
          backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "status", message: "503" })))
          step(3_600_000)
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual(backend.calls.length, 1, "no refresh: the grant is 2 s old, not an hour")
          assert.strictEqual(sink.closed(), undefined)
        }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability()))),
      )
    },
  )

  it.effect("a wall clock stepped an hour back does not stop the heartbeats", () => {
    const backend = scripted()
    return withSteppedWallClock((step) =>
      Effect.gen(function* () {
        const { sink } = yield* openAttached()
        step(-3_600_000)
        yield* TestClock.adjust("16 seconds")
        assert.include(sink.text(), ":\n\n", "a heartbeat after router.heartbeat_interval (15 s)")
      }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability()))),
    )
  })

  it.effect(
    "while the backend fails, a subscriber keeps its grant until it expires, then gets auth_unavailable",
    () => {
      const backend = scripted()
      return Effect.gen(function* () {
        backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 20) }))
        const { sink } = yield* openAttached()
        const hub = yield* HubService
        backend.answer(() => Effect.fail(new AuthUnavailable({ reason: "status", message: "503" })))
        yield* TestClock.adjust("17 seconds")
        assert.isAtLeast(backend.calls.length, 2, "refresh attempted")
        assert.strictEqual(sink.closed(), undefined, "still streaming on the last grant")
        hub.dispatch(ordersTx(12, "1", "still-flowing"))
        assert.include(sink.text(), "still-flowing")
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(sink.closed(), 'event: error\ndata: {"reason":"auth_unavailable"}\n\n')
      }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
    },
  )
})

describe("gapless open", () => {
  it.effect("a change committed while the backend answers arrives right after initial_data", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const hub = yield* HubService
      const hold = yield* Deferred.make<void>()
      backend.answer(() =>
        Effect.andThen(Deferred.await(hold), Effect.succeed(granted(grant({ orders: ["status"] }, 60, '{"rows":1}')))),
      )
      hub.dispatch(ordersTx(20, "1", "before-open"))
      const fiber = yield* Effect.forkChild(openAttached())
      yield* TestClock.adjust("1 millis")
      hub.dispatch(ordersTx(21, "1", "during-auth"))
      hub.dispatch(ordersTx(22, "2", "other-row"))
      yield* Deferred.succeed(hold, undefined)
      const { preface } = yield* Fiber.join(fiber)
      assert.strictEqual(
        preface,
        'retry: 15000\n\nevent: initial_data\ndata: {"rows":1}\n\n' +
          'event: tx\nid: 21\ndata: {"tx_id":21,"commit_ts":"2000-01-01T00:00:00Z","changes":[{"op":"insert","table":"orders","pk":"1","data":{"id":"1","status":"during-auth"}}]}\n\n',
      )
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it.effect("when the window no longer reaches back to the handshake's start, the open is refused, not gapped", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const hub = yield* HubService
      const hold = yield* Deferred.make<void>()
      backend.answer(() => Effect.andThen(Deferred.await(hold), Effect.succeed(granted(grant({ orders: ["status"] })))))
      const gw = yield* Gateway
      const fiber = yield* Effect.forkChild(
        Effect.scoped(Effect.map(gw.open(request()), (d) => (d as Accept).attach(fakeSink().sink))),
      )
      yield* TestClock.adjust("1 millis")
      for (let i = 0; i < 20; i++) hub.dispatch(ordersTx(30 + i, "1", "x".repeat(100)))
      yield* Deferred.succeed(hold, undefined)
      assert.deepStrictEqual(yield* Fiber.join(fiber), { _tag: "ReplayUnavailable" })
      assert.strictEqual((yield* Admission).inUse(), 0)
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability(), { replayMaxBytes: 1500 })))
  })

  it.effect("a replication session that changed during the handshake refuses it (wal_not_streaming)", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const gw = yield* Gateway
      const decision = yield* Effect.scoped(
        Effect.gen(function* () {
          const d = yield* gw.open(request())
          replicationState.status = { streaming: true, epoch: 2 }
          return (d as Accept).attach(fakeSink().sink)
        }),
      )
      assert.deepStrictEqual(decision, { _tag: "WalNotStreaming" })
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })

  it("property: replay + live deliver each touching transaction exactly once, in commit order", async () => {
    type Op =
      | { readonly kind: "commit"; readonly pk: string }
      | { readonly kind: "begin" | "finish"; readonly h: number }
    const ops = fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant("commit" as const), pk: fc.constantFrom("1", "2") }),
        fc.record({ kind: fc.constantFrom("begin" as const, "finish" as const), h: fc.integer({ min: 0, max: 3 }) }),
      ),
      { minLength: 10, maxLength: 60 },
    )
    await fc.assert(
      fc.asyncProperty(ops, async (script: ReadonlyArray<Op>) => {
        const backend = scripted()
        const program = Effect.gen(function* () {
          const hub = yield* HubService
          const holds = new Map<number, Deferred.Deferred<void>>()
          backend.answer((r) => {
            const hold = holds.get(Number(r.requestId))
            return Effect.andThen(
              hold === undefined ? Effect.void : Deferred.await(hold),
              Effect.succeed(granted(grant({ orders: ["status"] }))),
            )
          })
          const open = new Map<number, { pk: string; begunAt: number; fiber: Fiber.Fiber<{ text: () => string }> }>()
          const done: Array<{ pk: string; begunAt: number; text: string; sink: { text: () => string } }> = []
          const committed: Array<{ xid: number; pk: string }> = []
          let xid = 1000
          for (const op of script) {
            if (op.kind === "commit") {
              committed.push({ xid: ++xid, pk: op.pk })
              hub.dispatch(ordersTx(xid, op.pk, `v${xid}`))
            } else if (op.kind === "begin" && !open.has(op.h)) {
              const hold = yield* Deferred.make<void>()
              holds.set(op.h, hold)
              const pk = op.h % 2 === 0 ? "1" : "2"
              const fiber = yield* Effect.forkChild(openAttached(request(pk, { requestId: String(op.h) })))
              yield* TestClock.adjust("1 millis")
              open.set(op.h, { pk, begunAt: committed.length, fiber })
            } else if (op.kind === "finish" && open.has(op.h)) {
              const o = open.get(op.h)!
              open.delete(op.h)
              yield* Deferred.succeed(holds.get(op.h)!, undefined)
              const r = yield* Fiber.join(o.fiber)
              done.push({ pk: o.pk, begunAt: o.begunAt, text: "", sink: r })
            }
          }
          for (const d of done) {
            const got = [...d.sink.text().matchAll(/id: (\d+)/g)].map((m) => Number(m[1]))
            const expected = committed
              .slice(d.begunAt)
              .filter((c) => c.pk === d.pk)
              .map((c) => c.xid)
            assert.deepStrictEqual(got, expected)
          }
        })
        await Effect.runPromise(
          program.pipe(
            Effect.provide(testLayer(backend.layer, makeMemoryObservability())),
            Effect.provide(TestClock.layer()),
          ),
        )
      }),
      { numRuns: 100 },
    )
  })
})

describe("resume", () => {
  const resumeLayer = (backend: ReturnType<typeof scripted>, obs = makeMemoryObservability(), o: Options = {}) =>
    testLayer(backend.layer, obs, { resume: true, ...o })

  it.effect("a Last-Event-ID in the window resumes: a resumed frame, then what touched the stream after it", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hub = yield* HubService
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 60, "{}") }))
      hub.dispatch(ordersTx(40, "1", "seen"))
      hub.dispatch(ordersTx(41, "1", "missed"))
      hub.dispatch(ordersTx(42, "2", "other"))
      const { preface } = yield* openAttached(request("1", { lastEventId: "40" }))
      assert.match(preface, /^retry: 15000\n\nevent: resumed\ndata: \{"last_event_id":"40"\}\n\nevent: tx\nid: 41\n/)
      assert.notInclude(preface, "initial_data")
      assert.notInclude(preface, "id: 42")
      assert.strictEqual(obs.count("resumed:hit"), 1)
    }).pipe(Effect.provide(resumeLayer(backend, obs)))
  })

  it.effect("an unknown id is a normal open: initial_data carrying the newest id, no resumed frame", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hub = yield* HubService
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 60, "{}") }))
      hub.dispatch(ordersTx(50, "1", "a"))
      const { preface } = yield* openAttached(request("1", { lastEventId: "12345" }))
      assert.strictEqual(preface, "retry: 15000\n\nevent: initial_data\nid: 50\ndata: {}\n\n")
      assert.strictEqual(obs.count("resumed:miss"), 1)
      const garbage = yield* openAttached(request("1", { lastEventId: "not-an-id" }))
      assert.notInclude(garbage.preface, "resumed")
    }).pipe(Effect.provide(resumeLayer(backend, obs)))
  })

  it.effect("a replay over the subscriber's byte budget is a normal open", () => {
    const backend = scripted()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hub = yield* HubService
      hub.dispatch(ordersTx(60, "1", "a"))
      for (let i = 0; i < 10; i++) hub.dispatch(ordersTx(61 + i, "1", "x".repeat(100)))
      const { preface } = yield* openAttached(request("1", { lastEventId: "60" }))
      assert.notInclude(preface, "resumed")
      assert.strictEqual(obs.count("resumed:over_budget"), 1)
    }).pipe(Effect.provide(resumeLayer(backend, obs, { maxBufferedBytes: 1000 })))
  })

  it.effect("with resume off, Last-Event-ID is ignored and initial_data carries no id", () => {
    const backend = scripted()
    return Effect.gen(function* () {
      const hub = yield* HubService
      backend.answer(() => Effect.succeed({ _tag: "Granted", grant: grant({ orders: ["status"] }, 60, "{}") }))
      hub.dispatch(ordersTx(70, "1", "a"))
      const { preface } = yield* openAttached(request("1", { lastEventId: "70" }))
      assert.strictEqual(preface, "retry: 15000\n\nevent: initial_data\ndata: {}\n\n")
    }).pipe(Effect.provide(testLayer(backend.layer, makeMemoryObservability())))
  })
})
