// The replication supervisor with a scripted WalSource and TestClock: jittered exponential reconnects that start
// over after a healthy minute, wal_disconnected to every subscriber on loss, a fatal prerequisite at startup,
// failures of our own while decoding handled as a loss, relation key lookups, and acknowledgements that never run
// ahead of what was dispatched.
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Layer, Queue, Stream } from "effect"
import { TestClock } from "effect/testing"
import { makeLog } from "../../adapters/telemetry/Log.ts"
import type { PgMessage } from "../../domain/PgMessage.ts"
import { Log } from "../../domain/ports/Log.ts"
import { WalError, type WalEvent, WalSource } from "../../domain/ports/WalSource.ts"
import { Admission } from "../../src/Admission.ts"
import { HubService } from "../../src/Hub.ts"
import { Fatal, Replication } from "../../src/Replication.ts"
import { layerMemory, makeMemoryObservability } from "../support/MemoryObservability.ts"

interface Session {
  readonly queue: Queue.Queue<WalEvent, WalError | Cause.Done>
  readonly acks: bigint[]
}

const scriptedWal = () => {
  const script = {
    starts: [] as number[],
    sessions: [] as Session[],
    /** What the next open does: undefined = stream; a WalError = fail to connect. */
    connect: (): WalError | undefined => new WalError({ reason: "unreachable", message: "connection refused" }),
    prepare: (): Effect.Effect<void, WalError> => Effect.void,
    primaryKey: (_id: number): Effect.Effect<ReadonlyArray<string>, WalError> => Effect.succeed(["id"]),
    lookups: [] as number[],
  }
  const layer = Layer.effect(
    WalSource,
    Effect.gen(function* () {
      const clock = yield* Effect.clockWith((c) => Effect.succeed(c))
      return WalSource.of({
        prepare: Effect.suspend(() => script.prepare()),
        open: Effect.gen(function* () {
          script.starts.push(clock.currentTimeMillisUnsafe())
          const failure = script.connect()
          if (failure !== undefined) return yield* failure
          const queue = yield* Queue.unbounded<WalEvent, WalError | Cause.Done>()
          const session: Session = { queue, acks: [] }
          script.sessions.push(session)
          return {
            slot: "s",
            startLsn: 10n,
            events: Stream.fromQueue(queue),
            acknowledge: (lsn: bigint) => Effect.sync(() => void session.acks.push(lsn)),
          }
        }),
        primaryKey: (id) =>
          Effect.suspend(() => {
            script.lookups.push(id)
            return script.primaryKey(id)
          }),
        slotLagBytes: Effect.succeed(0),
      })
    }),
  )
  return { script, layer }
}

const build = (wal: Layer.Layer<WalSource>, obs = makeMemoryObservability()) => {
  const base = Layer.mergeAll(
    wal,
    layerMemory(obs),
    Fatal.layer,
    Layer.succeed(Log, makeLog({ level: "error", pretty: false })),
    Admission.layer({ globalConcurrent: 100, perUserConcurrent: 100 }),
  )
  const hub = HubService.layer({
    heartbeatIntervalMs: 15_000,
    writeTimeoutMs: 5000,
    maxBufferedBytes: 1 << 20,
    maxPayloadBytes: 1 << 20,
    replay: { retentionMs: 3000, maxBytes: 1 << 20, keep: true },
  }).pipe(Layer.provideMerge(base))
  return Replication.layer({ maxChangesPerTx: 100, maxTxBytes: 1 << 20 }).pipe(Layer.provideMerge(hub))
}

const ORDERS: PgMessage = {
  _tag: "relation",
  relationId: 1,
  schema: "public",
  name: "orders",
  replicaIdentity: "default",
  columns: [
    { name: "id", typeOid: 25, isKey: true },
    { name: "status", typeOid: 25, isKey: false },
  ],
}
const tx = (xid: number, endLsn: bigint, pk = "1"): PgMessage[] => [
  { _tag: "begin", finalLsn: endLsn, commitTime: 0n, xid },
  { _tag: "update", relationId: 1, keyTuple: null, oldTuple: null, newTuple: [pk, `s${xid}`] },
  { _tag: "commit", commitLsn: endLsn - 1n, endLsn, commitTime: 0n },
]

const subscribe = (hub: HubService["Service"], pk: string | null) => {
  const received: string[] = []
  const s = hub.attach({
    table: "orders",
    pk,
    channel: `orders:${pk ?? "all"}`,
    userId: "u",
    requestId: "r",
    tables: { orders: ["status"] },
    sink: {
      write: (b) => void received.push(Buffer.from(b).toString()),
      pending: () => 0,
      cork: () => {},
      uncork: () => {},
      close: (last) => void received.push(last === undefined ? "(closed)" : Buffer.from(last).toString()),
    },
    prefaceBytes: 0,
  })
  return { s, received }
}

const offer = (session: Session, events: ReadonlyArray<WalEvent>) =>
  Effect.sync(() => {
    for (const e of events) Queue.offerUnsafe(session.queue, e)
  })

describe("reconnect", () => {
  it.effect("retries an unreachable database with exponential backoff between 1 s and 30 s", () => {
    const { script, layer } = scriptedWal()
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      yield* TestClock.adjust("3 minutes")
      const gaps = script.starts.slice(1).map((t, i) => t - script.starts[i]!)
      assert.isAtLeast(gaps.length, 8)
      // attempt n waits within [d/2, d] with d = min(1 s · 2^n, 30 s)
      gaps.forEach((gap, n) => {
        const d = Math.min(1000 * 2 ** n, 30_000)
        assert.isAtLeast(gap, d / 2 - 1, `gap ${n}`)
        assert.isAtMost(gap, d + 1, `gap ${n}`)
      })
      assert.strictEqual(obs.count("replicationRetried"), script.starts.length)
    }).pipe(Effect.provide(build(layer, obs)))
  })

  it.effect("starts the backoff over once a session had streamed for a minute, not before", () => {
    const { script, layer } = scriptedWal()
    let healthy = true
    script.connect = () => (healthy ? undefined : new WalError({ reason: "unreachable", message: "refused" }))
    return Effect.gen(function* () {
      yield* TestClock.adjust("10 millis")
      // Four quick losses: the delays grow.
      healthy = false
      Queue.failCauseUnsafe(script.sessions[0]!.queue, Cause.fail(new WalError({ reason: "lost", message: "x" })))
      yield* TestClock.adjust("20 seconds")
      const quick = script.starts.slice(1)
      assert.isAtLeast(quick.length, 4)
      // Without a healthy minute in between, each delay is at least the previous one's lower bound doubled.
      const gaps = quick.slice(1).map((t, i) => t - quick[i]!)
      gaps.forEach((gap, n) => {
        assert.isAtLeast(gap, Math.min(1000 * 2 ** (n + 1), 30_000) / 2 - 1)
      })
      healthy = true
      yield* TestClock.adjust("30 seconds")
      const streaming = script.sessions.length
      assert.strictEqual(streaming, 2)
      // This session streams 61 s, then is lost: the next delay is back to [0.5 s, 1 s].
      yield* TestClock.adjust("61 seconds")
      Queue.failCauseUnsafe(script.sessions[1]!.queue, Cause.fail(new WalError({ reason: "lost", message: "x" })))
      const lostAt = yield* Clock.currentTimeMillis
      yield* TestClock.adjust("1 second")
      assert.strictEqual(script.sessions.length, 3, "reconnected within a second")
      assert.isAtMost(script.starts.at(-1)! - lostAt, 1001)
    }).pipe(Effect.provide(build(layer)))
  })

  it.effect("a lost session tells every subscriber wal_disconnected, empties the window, and streams again", () => {
    const { script, layer } = scriptedWal()
    script.connect = () => undefined
    return Effect.gen(function* () {
      const hub = yield* HubService
      const replication = yield* Replication
      yield* TestClock.adjust("10 millis")
      assert.isTrue(replication.status().streaming)
      const epoch = replication.status().epoch
      const { received } = subscribe(hub, "1")
      yield* offer(script.sessions[0]!, [ORDERS, ...tx(700, 100n)])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(hub.window.size, 1)
      Queue.failCauseUnsafe(script.sessions[0]!.queue, Cause.fail(new WalError({ reason: "lost", message: "gone" })))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(received.at(-1), 'event: error\ndata: {"reason":"wal_disconnected"}\n\n')
      assert.isFalse(replication.status().streaming)
      assert.strictEqual(hub.window.size, 0)
      yield* TestClock.adjust("2 seconds")
      assert.isTrue(replication.status().streaming)
      assert.isAbove(replication.status().epoch, epoch)
    }).pipe(Effect.provide(build(layer)))
  })
})

describe("startup", () => {
  it.effect("a prerequisite missing before the first session completes Fatal with the reason, without retrying", () => {
    const { script, layer } = scriptedWal()
    script.prepare = () => Effect.fail(new WalError({ reason: "prerequisite", message: "wal_level is replica" }))
    return Effect.gen(function* () {
      const fatal = yield* Fatal
      yield* TestClock.adjust("1 minute")
      const error = yield* Deferred.await(fatal).pipe(Effect.flip)
      assert.strictEqual(error.message, "wal_level is replica")
      assert.strictEqual(script.starts.length, 0)
    }).pipe(Effect.provide(build(layer)))
  })
})

describe("what the data cannot do", () => {
  it.effect("protocol anomalies are counted and do not stop the session", () => {
    const { script, layer } = scriptedWal()
    script.connect = () => undefined
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      yield* TestClock.adjust("10 millis")
      yield* offer(script.sessions[0]!, [
        { _tag: "commit", commitLsn: 1n, endLsn: 2n, commitTime: 0n },
        { _tag: "insert", relationId: 9, newTuple: ["1"] },
      ])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(obs.count("decodeError:anomaly"), 2)
      assert.isTrue((yield* Replication).status().streaming)
    }).pipe(Effect.provide(build(layer, obs)))
  })

  it.effect("a failure of ours while routing a transaction is a replication loss: signalled, counted, retried", () => {
    const { script, layer } = scriptedWal()
    script.connect = () => undefined
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hub = yield* HubService
      yield* TestClock.adjust("10 millis")
      const { received, s } = subscribe(hub, "1")
      // A sink that throws stands for any bug on the routing path.
      ;(s.sink as { write: (b: Uint8Array) => void }).write = () => {
        throw new RangeError("Invalid string length")
      }
      yield* offer(script.sessions[0]!, [ORDERS, ...tx(701, 100n)])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(obs.count("decodeError:transaction"), 1)
      assert.strictEqual(received.at(-1), 'event: error\ndata: {"reason":"wal_disconnected"}\n\n')
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(script.sessions.length, 2)
    }).pipe(Effect.provide(build(layer, obs)))
  })

  it.effect("a REPLICA IDENTITY FULL relation waits for its key; a lookup that fails twice ends the session", () => {
    const { script, layer } = scriptedWal()
    script.connect = () => undefined
    const obs = makeMemoryObservability()
    return Effect.gen(function* () {
      const hub = yield* HubService
      yield* TestClock.adjust("10 millis")
      const { received } = subscribe(hub, "1")
      const full: PgMessage = { ...ORDERS, replicaIdentity: "full" } as PgMessage
      yield* offer(script.sessions[0]!, [full, ...tx(702, 100n)])
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(script.lookups, [1])
      assert.include(received.join(""), '"status":"s702"')
      script.primaryKey = () => Effect.fail(new WalError({ reason: "lost", message: "permission denied for pg_index" }))
      yield* offer(script.sessions[0]!, [{ ...full, relationId: 2, name: "orders" } as PgMessage, ...tx(703, 110n)])
      yield* TestClock.adjust("1 second")
      assert.strictEqual(script.lookups.length, 3, "looked up once more before giving up")
      assert.strictEqual(received.at(-1), 'event: error\ndata: {"reason":"wal_disconnected"}\n\n')
      assert.strictEqual(obs.count("decodeError:relation"), 1)
    }).pipe(Effect.provide(build(layer, obs)))
  })
})

describe("acknowledgements", () => {
  it.effect("confirm what was dispatched — commits, and the WAL end while idle — never more", () => {
    const { script, layer } = scriptedWal()
    script.connect = () => undefined
    return Effect.gen(function* () {
      yield* TestClock.adjust("10 millis")
      const session = script.sessions[0]!
      yield* offer(session, [ORDERS, ...tx(704, 100n)])
      yield* TestClock.adjust("1 second")
      assert.strictEqual(session.acks.at(-1), 100n)
      // Inside a transaction a keepalive's WAL end is not dispatched yet: the reply repeats what was.
      yield* offer(session, [
        { _tag: "begin", finalLsn: 200n, commitTime: 0n, xid: 705 },
        { _tag: "keepalive", walEnd: 250n, replyRequested: true },
      ])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(session.acks.at(-1), 100n)
      yield* offer(session, [
        { _tag: "commit", commitLsn: 199n, endLsn: 200n, commitTime: 0n },
        { _tag: "keepalive", walEnd: 300n, replyRequested: true },
      ])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(session.acks.at(-1), 300n)
      for (const ack of session.acks) assert.isAtMost(Number(ack), 300)
    }).pipe(Effect.provide(build(layer)))
  })
})
