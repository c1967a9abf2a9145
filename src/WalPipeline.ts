// Keeps one replication session alive: prepare, stream, and on loss tell every stream
// (wal_disconnected) and reconnect with jittered exponential backoff on a fresh slot.
// Decoded messages are folded into transactions here and handed to the hub synchronously.
import { Context, Deferred, Effect, Layer, Schedule } from "effect"
import { reconnectDelayMs } from "../domain/Backoff.ts"
import { type WalError, WalSource } from "../domain/ports/WalSource.ts"
import { type AssemblyState, initialAssembly, step } from "../domain/TxAssembler.ts"
import { Metrics } from "../adapters/metrics/Metrics.ts"
import { Log } from "../adapters/telemetry/Log.ts"
import { HubService } from "./Hub.ts"

/** Completed when Walera cannot go on (PostgreSQL reachable but not set up for it at startup). */
export class Fatal extends Context.Service<Fatal, Deferred.Deferred<never, WalError>>()("walera/Fatal") {
  static readonly layer = Layer.effect(Fatal, Deferred.make<never, WalError>())
}

export const layer = (options: { readonly maxChangesPerTx: number }) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const wal = yield* WalSource
      const hub = yield* HubService
      const metrics = yield* Metrics
      const log = yield* Log
      const fatal = yield* Fatal
      let everStreamed = false

      const session = Effect.gen(function* () {
        yield* wal.prepare
        let state: AssemblyState = initialAssembly(options.maxChangesPerTx)
        let startedAt = 0
        yield* wal
          .stream({
            onStreaming: ({ slot }) => {
              everStreamed = true
              startedAt = Date.now()
              hub.walStarted()
              log.info("replication streaming", { slot })
            },
            onMessage: (msg) => {
              if (msg.tag === "relation" && log.enabled("debug")) {
                log.debug("relation", {
                  table: `${msg.schema}.${msg.name}`,
                  replica_identity: msg.replicaIdentity,
                  primary_key: msg.primaryKey?.join(","),
                })
              }
              const r = step(state, msg)
              state = r.state
              for (const e of r.events) {
                switch (e._tag) {
                  case "Tx":
                    hub.dispatch(e.tx)
                    break
                  case "Spill":
                    hub.spill(e.xid, e.changes)
                    break
                  case "Oversized":
                    hub.oversizedCommit(e.xid, e.tables, e.changeCount)
                    break
                  case "RelationSkipped":
                    metrics.relationsSkipped.inc()
                    log.warn("relation skipped", { table: `${e.schema}.${e.name}`, reason: e.reason })
                    break
                  case "Truncate":
                    log.info("truncate not streamed", { tables: e.tables.join(",") })
                    break
                  case "Anomaly":
                    metrics.decodeErrors.labels("anomaly").inc()
                    log.warn("unexpected WAL message", { reason: e.reason })
                    break
                }
              }
            },
          })
          .pipe(
            Effect.ensuring(
              Effect.sync(() => void (startedAt > 0 && Date.now() - startedAt > 60_000 && (attempt = 0))),
            ),
          )
      })

      let attempt = 0
      const loop: Effect.Effect<never> = Effect.gen(function* () {
        while (true) {
          const exit = yield* Effect.result(session)
          if (exit._tag === "Success") continue
          const error = exit.failure
          if (hub.walStreaming) hub.walLost()
          hub.walStreaming = false
          if (error.reason === "prerequisite" && !everStreamed) {
            yield* Deferred.fail(fatal, error)
            return yield* Effect.never
          }
          metrics.pgReconnects.inc()
          const delay = reconnectDelayMs(attempt++, Math.random())
          log.warn("replication connection lost, reconnecting", {
            reason: error.reason,
            error: error.message,
            retry_in_ms: Math.round(delay),
          })
          yield* Effect.sleep(delay)
        }
      })
      yield* Effect.forkScoped(loop)
      const sampleLag = Effect.gen(function* () {
        if (!hub.walStreaming) return
        const lag = yield* wal.slotLagBytes.pipe(
          Effect.catch((e) => Effect.sync(() => log.debug("slot lag not sampled", { error: e.message }))),
        )
        if (lag !== undefined) metrics.lsnLag.set(lag)
      })
      yield* Effect.forkScoped(Effect.repeat(sampleLag, Schedule.spaced("5 seconds")))
      yield* Effect.addFinalizer(() => Effect.sync(() => void (hub.walStreaming = false)))
    }),
  )
