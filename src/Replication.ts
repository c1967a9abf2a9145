// Keeps one replication session alive and is the only owner of the replication status: open a session,
// fold its events into transactions and hand them to the fan-out; on loss tell every subscriber
// (wal_disconnected) and reconnect on a fresh slot with jittered exponential backoff (a Schedule, reset after a
// healthy minute). A failure of Walera's own while decoding or routing is handled as a replication loss, so
// nothing in the data can stop the process (docs/delivery-semantics.md, "Replication loss").
import { Cause, Clock, Context, Data, Deferred, Duration, Effect, Layer, Random, Schedule, Stream } from "effect"
import { reconnectDelayMs } from "../domain/Backoff.ts"
import type { PgMessage } from "../domain/PgMessage.ts"
import { Log } from "../domain/ports/Log.ts"
import { Observability } from "../domain/ports/Observability.ts"
import { WalError, type WalEvent, WalSource } from "../domain/ports/WalSource.ts"
import {
  initialSession,
  receive,
  resolved,
  type SessionState,
  type SessionStep,
  tick,
} from "../domain/ReplicationSession.ts"
import { type AssemblyEvent, TxAssembler } from "../domain/TxAssembler.ts"
import { HubService } from "./Hub.ts"

export interface ReplicationConfig {
  readonly maxChangesPerTx: number
  readonly maxTxBytes: number
  /** How long a session must have streamed for the backoff to start over. */
  readonly healthyAfterMs?: number
}

/** A session ended: why, and how long it had streamed (0 = it never started). */
export class SessionEnded extends Data.TaggedError("SessionEnded")<{
  readonly error: WalError
  readonly streamedMs: number
  readonly everStreamed: boolean
}> {}

/** Completed when Walera cannot go on: PostgreSQL reachable but not set up for it, at startup. */
export class Fatal extends Context.Service<Fatal, Deferred.Deferred<never, WalError>>()("walera/Fatal") {
  static readonly layer = Layer.effect(Fatal, Deferred.make<never, WalError>())
}

/**
 * Reconnect delays: capped exponential with equal jitter (docs/operations.md, "Replication"), starting over once a
 * session had streamed for `healthyAfterMs`; stops (no retry) when PostgreSQL was never usable for want of a
 * prerequisite, which is fatal at startup.
 */
export const reconnectSchedule = (healthyAfterMs: number): Schedule.Schedule<number, SessionEnded> =>
  Schedule.fromStepWithMetadata(
    Effect.sync(() => {
      let attempt = 0
      return (meta: Schedule.InputMetadata<SessionEnded>) => {
        const ended = meta.input
        if (ended.error.reason === "prerequisite" && !ended.everStreamed) return Cause.done(attempt)
        if (ended.streamedMs >= healthyAfterMs) attempt = 0
        const n = attempt++
        return Effect.map(Random.next, (r): [number, Duration.Duration] => [n, Duration.millis(reconnectDelayMs(n, r))])
      }
    }),
  )

export interface ReplicationStatus {
  readonly streaming: boolean
  /** Increments on every session start, so a handshake can tell it straddled a gap. */
  readonly epoch: number
}

export class Replication extends Context.Service<Replication, { readonly status: () => ReplicationStatus }>()(
  "walera/Replication",
) {
  static readonly layer = (config: ReplicationConfig) =>
    Layer.effect(
      Replication,
      Effect.gen(function* () {
        const wal = yield* WalSource
        const hub = yield* HubService
        const obs = yield* Observability
        const log = yield* Log
        const fatal = yield* Fatal
        const clock = yield* Clock.Clock
        const now = () => clock.currentTimeMillisUnsafe()
        let status: ReplicationStatus = { streaming: false, epoch: 0 }
        let everStreamed = false
        let sessionStart = 0

        const handOn = (assembler: TxAssembler, messages: ReadonlyArray<PgMessage>) => {
          for (const msg of messages) {
            if (msg._tag === "relation" && log.enabled("debug")) {
              log.debug("relation", {
                table: `${msg.schema}.${msg.name}`,
                replica_identity: msg.replicaIdentity,
                primary_key: msg.primaryKey?.join(","),
              })
            }
            for (const e of assembler.push(msg)) route(e)
          }
        }
        const route = (e: AssemblyEvent) => {
          switch (e._tag) {
            case "Tx":
              hub.dispatch(e.tx)
              break
            case "Spill":
              hub.spill(e.xid, e.changes)
              break
            case "Oversized":
              hub.oversizedCommit(
                e.xid,
                e.tables,
                e.changeCount,
                e.commitTime,
                e.reason === "bytes" ? "router.max_tx_bytes" : "router.max_changes_per_tx",
              )
              break
            case "RelationSkipped":
              obs.relationSkipped()
              log.warn("relation skipped", { table: `${e.schema}.${e.name}`, reason: e.reason })
              break
            case "Truncate":
              log.info("truncate not streamed", { tables: e.tables.join(",") })
              break
            case "Anomaly":
              obs.decodeError("anomaly")
              log.warn("unexpected WAL message", { reason: e.reason })
              break
          }
        }

        const session = Effect.gen(function* () {
          yield* wal.prepare
          const s = yield* wal.open
          sessionStart = now()
          everStreamed = true
          status = { streaming: true, epoch: status.epoch + 1 }
          obs.replicationStreaming(true)
          yield* Effect.logInfo("replication streaming").pipe(Effect.annotateLogs({ slot: s.slot }))

          const assembler = new TxAssembler({ maxChangesPerTx: config.maxChangesPerTx, maxTxBytes: config.maxTxBytes })
          let state: SessionState = initialSession(s.startLsn, now())
          let currentXid: number | undefined
          /** Dispatches messages in order; a failure of ours here is a decode error, handled as a replication loss. */
          const dispatch = (messages: ReadonlyArray<PgMessage>): WalError | undefined => {
            try {
              for (const m of messages) if (m._tag === "begin") currentXid = m.xid
              handOn(assembler, messages)
              return undefined
            } catch (error) {
              obs.decodeError("transaction")
              return new WalError({
                reason: "protocol",
                message: `could not decode or route transaction ${currentXid ?? "?"}: ${error instanceof Error ? error.message : String(error)}`,
              })
            }
          }
          const primaryKey = (relationId: number) =>
            wal.primaryKey(relationId).pipe(
              Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 1 }))),
              Effect.tapError(() => Effect.sync(() => obs.decodeError("relation"))),
            )
          // Plain loops, not a generator per read: this runs for every message of the WAL.
          const process = (
            events: ReadonlyArray<WalEvent>,
            from: number,
            ackSoFar: bigint | null,
          ): Effect.Effect<void, WalError> => {
            let ack = ackSoFar
            let rows: PgMessage[] = []
            for (let i = from; i < events.length; i++) {
              const event = events[i]!
              const step = receive(state, event, now())
              if (step === null) {
                // A row change: handed on in order with its neighbours, without a step of its own.
                rows.push(event as PgMessage)
                continue
              }
              if (rows.length > 0) {
                const failed = dispatch(rows)
                if (failed !== undefined) return Effect.fail(failed)
                rows = []
              }
              const next = apply(step, ack)
              if (next._tag === "Failed") return Effect.fail(next.error)
              ack = next.ack
              if (step.lookup !== null) return lookUp(step.lookup.relationId, events, i + 1, ack)
            }
            if (rows.length > 0) {
              const failed = dispatch(rows)
              if (failed !== undefined) return Effect.fail(failed)
            }
            return ack === null ? Effect.void : s.acknowledge(ack)
          }
          const apply = (
            step: SessionStep,
            ack: bigint | null,
          ):
            | { readonly _tag: "Applied"; readonly ack: bigint | null }
            | { readonly _tag: "Failed"; readonly error: WalError } => {
            state = step.state
            const failed = step.deliver.length === 0 ? undefined : dispatch(step.deliver)
            return failed === undefined ? { _tag: "Applied", ack: step.ack ?? ack } : { _tag: "Failed", error: failed }
          }
          const lookUp = (
            relationId: number,
            events: ReadonlyArray<WalEvent>,
            resumeAt: number,
            ack: bigint | null,
          ): Effect.Effect<void, WalError> =>
            Effect.flatMap(primaryKey(relationId), (pk) => {
              const step = resolved(state, pk, now())
              const next = apply(step, ack)
              if (next._tag === "Failed") return Effect.fail(next.error)
              return step.lookup !== null
                ? lookUp(step.lookup.relationId, events, resumeAt, next.ack)
                : process(events, resumeAt, next.ack)
            })
          const onEvents = (events: ReadonlyArray<WalEvent>) => Effect.suspend(() => process(events, 0, null))
          const ackTick = Effect.suspend(() => {
            const step = tick(state, now())
            state = step.state
            return step.ack === null ? Effect.void : s.acknowledge(step.ack)
          })
          yield* Effect.forkScoped(Effect.repeat(ackTick, Schedule.spaced("1 second")))
          const sampleLag = wal.slotLagBytes.pipe(
            Effect.tap((lag) => Effect.sync(() => lag !== undefined && obs.slotLag(lag))),
            Effect.catch(() => Effect.void),
          )
          yield* Effect.forkScoped(Effect.repeat(sampleLag, Schedule.spaced("5 seconds")))
          yield* s.events.pipe(Stream.runForEachArray(onEvents))
          return yield* new WalError({ reason: "lost", message: "replication stream ended" })
        }).pipe(
          Effect.scoped,
          Effect.catchDefect((defect) =>
            Effect.fail(new WalError({ reason: "protocol", message: `unexpected failure: ${String(defect)}` })),
          ),
          Effect.catchTag("WalError", (error) =>
            Effect.suspend(() => {
              const streamedMs = status.streaming ? now() - sessionStart : 0
              return Effect.fail(new SessionEnded({ error, streamedMs, everStreamed }))
            }),
          ),
        )
        const onEnded = (ended: SessionEnded) =>
          Effect.gen(function* () {
            if (status.streaming) {
              status = { ...status, streaming: false }
              obs.replicationStreaming(false)
              hub.replicationLost()
            }
            if (ended.error.reason === "prerequisite" && !ended.everStreamed) return
            obs.replicationRetried()
            yield* Effect.logWarning("replication connection lost, reconnecting").pipe(
              Effect.annotateLogs({ reason: ended.error.reason, error: ended.error.message }),
            )
          })
        const supervised = session.pipe(
          Effect.tapError(onEnded),
          Effect.retry(reconnectSchedule(config.healthyAfterMs ?? 60_000)),
          Effect.catch((ended: SessionEnded) => Deferred.fail(fatal, ended.error)),
        )
        yield* Effect.forkScoped(supervised)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            status = { ...status, streaming: false }
          }),
        )
        return Replication.of({ status: () => status })
      }),
    )
}
