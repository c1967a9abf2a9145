// WalSource over pgoutput: prerequisite checks and publication bootstrap through
// @effect/sql-pg, and one replication session per `stream` call through pg-logical-replication
// on a TEMPORARY slot (PostgreSQL drops it when the connection closes). Acknowledges the end
// LSN of the last dispatched commit, answers keepalives, never acknowledges ahead of dispatch.
import { hostname } from "node:os"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Layer } from "effect"
import { LogicalReplicationService } from "pg-logical-replication"
import { formatLsn, parseLsn } from "../../domain/Lsn.ts"
import type { PgMessage, RelationMessage } from "../../domain/PgMessage.ts"
import { parsePgOutput } from "../../domain/PgOutput.ts"
import { WalError, type WalSink, WalSource } from "../../domain/ports/WalSource.ts"
import { Metrics } from "../metrics/Metrics.ts"
import { Log } from "../telemetry/Log.ts"

export interface PgWalConfig {
  readonly url: string
  readonly publicationName: string
  readonly slotNamePrefix: string
  readonly bootstrap: "auto" | "verify" | "off"
  readonly bootstrapTables: ReadonlyArray<string>
}

/** `<prefix>_<host>_<pid>`, lower-case, only [a-z0-9_], at most 63 bytes (PostgreSQL's limit). */
export const slotName = (prefix: string, host: string, pid: number): string => {
  const tail = `_${pid}`
  const cleanHost = host.toLowerCase().replace(/[^a-z0-9_]/g, "_")
  return `${prefix}_${cleanHost}`.slice(0, 63 - tail.length) + tail
}

const ACK_INTERVAL_MS = 1000

// pg-logical-replication reports `lsn + 1` as written/flushed/applied. PostgreSQL's walsender
// only exits at server shutdown once the confirmed flush equals what it sent, so the library is
// handed `lsn - 1` to make the report exact (otherwise a fast shutdown waits wal_sender_timeout).

class WaleraPgoutput {
  readonly name = "pgoutput"
  readonly options: { readonly publication: string; readonly slot: string }
  readonly onBadMessage: (error: unknown) => void
  startLsn = 0n
  constructor(options: { publication: string; slot: string }, onBadMessage: (error: unknown) => void) {
    this.options = options
    this.onBadMessage = onBadMessage
  }
  parse(buffer: Uint8Array): PgMessage {
    try {
      return parsePgOutput(buffer)
    } catch (error) {
      this.onBadMessage(error)
      return { tag: "other", kind: "unparseable" }
    }
  }
  // The library never creates slots; a temporary one must be created on the replication connection itself.
  async start(client: { query: (sql: string) => Promise<{ rows: Array<Record<string, string>> }> }): Promise<unknown> {
    const created = await client.query(
      `CREATE_REPLICATION_SLOT "${this.options.slot}" TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`,
    )
    const point = created.rows[0]?.["consistent_point"] ?? "0/0"
    this.startLsn = parseLsn(point)
    return client.query(
      `START_REPLICATION SLOT "${this.options.slot}" LOGICAL ${point} (proto_version '1', publication_names '${this.options.publication}')`,
    )
  }
}

interface Session {
  readonly lost: Deferred.Deferred<never, WalError>
  readonly close: Effect.Effect<void>
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

export const layer = (config: PgWalConfig) =>
  Layer.effect(
    WalSource,
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const log = yield* Log
      const metrics = yield* Metrics
      const slot = slotName(config.slotNamePrefix, hostname(), process.pid)

      const query = <A extends object>(effect: Effect.Effect<ReadonlyArray<A>, unknown>) =>
        effect.pipe(
          Effect.mapError((e) => new WalError({ reason: "unreachable", message: `PostgreSQL: ${message(e)}` })),
        )
      const missing = (text: string) => new WalError({ reason: "prerequisite", message: text })

      const prepare = Effect.fn("WalSource.prepare")(function* () {
        const [level] = yield* query(sql<{ wal_level: string }>`SHOW wal_level`)
        if (level?.wal_level !== "logical") {
          return yield* missing(
            `wal_level is "${level?.wal_level}", Walera needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL`,
          )
        }
        const [role] = yield* query(
          sql<{
            name: string
            ok: boolean
          }>`SELECT current_user AS name, (rolreplication OR rolsuper) AS ok FROM pg_roles WHERE rolname = current_user`,
        )
        if (role?.ok !== true) {
          return yield* missing(
            `role "${role?.name}" lacks the REPLICATION attribute: run ALTER ROLE "${role?.name}" WITH REPLICATION`,
          )
        }
        if (config.bootstrap === "off") return
        const pub = config.publicationName
        const [found] = yield* query(
          sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_publication WHERE pubname = ${pub}`,
        )
        if ((found?.n ?? 0) > 0) return
        const forTables =
          config.bootstrapTables.length === 0
            ? "FOR ALL TABLES"
            : `FOR TABLE ${config.bootstrapTables.map((t) => `public."${t}"`).join(", ")}`
        const create = `CREATE PUBLICATION "${pub}" ${forTables}`
        if (config.bootstrap === "verify") {
          return yield* missing(
            `publication "${pub}" does not exist: run ${create}; or set WALERA_WAL_BOOTSTRAP=auto to let Walera create it`,
          )
        }
        yield* query(sql.unsafe(create)).pipe(
          Effect.mapError((e) =>
            missing(`could not create publication "${pub}" (${e.message}); create it yourself: ${create}`),
          ),
        )
        log.info("publication created", { publication: pub, tables: config.bootstrapTables.join(",") || "all" })
      })

      const primaryKeyOf = (relationId: number) =>
        Effect.runPromise(
          sql<{ attname: string }>`
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = ${relationId} AND i.indisprimary
            ORDER BY array_position(i.indkey::int2[], a.attnum)`.pipe(
            Effect.map((rows) => rows.map((r) => r.attname)),
            Effect.orElseSucceed(() => [] as string[]),
          ),
        )

      /** Connects, creates the slot and starts streaming; the session's `lost` fails when it ends. */
      const connect = (sink: WalSink) =>
        Effect.callback<Session, WalError>((resume) => {
          const lost = Deferred.makeUnsafe<never, WalError>()
          const plugin = new WaleraPgoutput({ publication: config.publicationName, slot }, (error) => {
            metrics.decodeErrors.labels("message").inc()
            log.warn("unparseable pgoutput message skipped", { error: message(error) })
          })
          const service = new LogicalReplicationService(
            { connectionString: config.url, application_name: "walera" } as never,
            { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
          )
          let dispatched = 0n
          let acked = 0n
          let lastAckAt = 0
          let inTx = false
          let held: PgMessage[] | null = null
          let done = false

          const ack = (lsn: bigint, force: boolean) => {
            if (lsn <= 0n || (!force && lsn <= acked)) return
            acked = lsn > acked ? lsn : acked
            lastAckAt = Date.now()
            void service.acknowledge(formatLsn(acked - 1n)).catch(() => {})
          }
          const deliver = (msg: PgMessage) => {
            if (msg.tag === "begin") inTx = true
            sink.onMessage(msg)
            if (msg.tag === "commit") {
              inTx = false
              dispatched = msg.endLsn
            }
          }
          const connectionStream = () =>
            (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })._connection?.stream
          /** Relations whose key the catalog must name hold back every later message until it has answered. */
          const accept = (msg: PgMessage) => {
            if (held !== null) held.push(msg)
            else if (msg.tag === "relation" && msg.replicaIdentity !== "default") resolveRelation(msg)
            else deliver(msg)
          }
          const resolveRelation = (msg: RelationMessage) => {
            held = []
            connectionStream()?.pause()
            void primaryKeyOf(msg.relationId).then((primaryKey) => {
              if (done) return
              const queue = held ?? []
              held = null
              deliver({ ...msg, primaryKey })
              for (const m of queue) accept(m)
              if (held === null) connectionStream()?.resume()
            })
          }

          service.on("data", (_lsn: string, msg: PgMessage) => accept(msg))
          service.on("heartbeat", (lsn: string, _ts: number, shouldRespond: boolean) => {
            // Between transactions everything up to the server's WAL end was dispatched, so an idle
            // database does not pin WAL behind the slot.
            if (!inTx && held === null) {
              const walEnd = parseLsn(lsn)
              if (walEnd > dispatched) dispatched = walEnd
            }
            if (shouldRespond) ack(dispatched, true)
          })
          const close = Effect.promise(async () => {
            if (done) return
            done = true
            clearInterval(timer)
            metrics.pgStatus.set(0)
            if (dispatched > acked) await service.acknowledge(formatLsn(dispatched - 1n)).catch(() => {})
            await service.stop().catch(() => {})
          })
          service.on("start", () => {
            metrics.pgStatus.set(1)
            resume(Effect.succeed({ lost, close }))
            sink.onStreaming({ slot, startLsn: plugin.startLsn })
          })
          const timer = setInterval(() => {
            if (dispatched > acked || Date.now() - lastAckAt > 10_000) ack(dispatched, true)
          }, ACK_INTERVAL_MS)

          const fail = (reason: "unreachable" | "lost", error: unknown) => {
            if (done) return
            done = true
            clearInterval(timer)
            metrics.pgStatus.set(0)
            void service.stop().catch(() => {})
            const error_ = new WalError({ reason, message: message(error) })
            if (started) Deferred.doneUnsafe(lost, Effect.fail(error_))
            else resume(Effect.fail(error_))
          }
          service.on("error", (error: unknown) => fail("lost", error))
          let started = false
          service.once("start", () => {
            started = true
          })
          service
            .subscribe(plugin as never, slot)
            .then(() => fail(started ? "lost" : "unreachable", new Error("replication connection closed")))
            .catch((error: unknown) => fail(started ? "lost" : "unreachable", error))

          return close
        })

      const stream = (sink: WalSink) =>
        Effect.acquireRelease(connect(sink).pipe(Effect.withSpan("WalSource.connect")), (s) => s.close).pipe(
          Effect.flatMap((s) => Deferred.await(s.lost)),
          Effect.scoped,
        )

      const slotLagBytes = query(
        sql<{ lag: string | null }>`
          SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
          FROM pg_replication_slots WHERE slot_name = ${slot}`,
      ).pipe(Effect.map((rows) => (rows[0]?.lag == null ? undefined : Number(rows[0].lag))))

      return WalSource.of({ prepare: prepare(), stream, slotLagBytes })
    }),
  )
