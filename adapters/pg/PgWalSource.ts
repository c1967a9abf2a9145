// WalSource over pgoutput: prerequisite checks and publication bootstrap through @effect/sql-pg, and one
// replication session per `open` through pg-logical-replication on a TEMPORARY slot (PostgreSQL drops it when
// the connection closes). Decoded messages and keepalives go into a queue in WAL order; what to acknowledge is
// the caller's decision (domain/ReplicationSession.ts).
import { hostname } from "node:os"
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Layer, Queue, Stream } from "effect"
import { LogicalReplicationService } from "pg-logical-replication"
import { formatLsn, parseLsn } from "../../domain/Lsn.ts"
import type { PgMessage } from "../../domain/PgMessage.ts"
import { decodeUtf8, parsePgOutput, type Utf8Decode } from "../../domain/PgOutput.ts"
import { Observability } from "../../domain/ports/Observability.ts"
import { WalError, type WalEvent, type WalSession, WalSource } from "../../domain/ports/WalSource.ts"

/** Buffer's own UTF-8 decoding: the same U+FFFD for invalid bytes as TextDecoder, without a view per value. */
export const bufferUtf8: Utf8Decode = (bytes, start, end) => (bytes as Buffer).toString("utf8", start, end)

export interface PgWalConfig {
  readonly url: string
  /** Column values longer than this are not decoded (their transaction is over router.max_tx_bytes anyway). */
  readonly maxValueBytes: number
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

class WaleraPgoutput {
  readonly name = "pgoutput"
  readonly options: { readonly publication: string; readonly slot: string; readonly maxValueBytes: number }
  readonly onBadMessage: (error: unknown) => void
  startLsn = 0n
  constructor(
    options: { publication: string; slot: string; maxValueBytes: number },
    onBadMessage: (error: unknown) => void,
  ) {
    this.options = options
    this.onBadMessage = onBadMessage
  }
  parse(buffer: Uint8Array): PgMessage {
    try {
      return parsePgOutput(buffer, this.options.maxValueBytes, Buffer.isBuffer(buffer) ? bufferUtf8 : decodeUtf8)
    } catch (error) {
      this.onBadMessage(error)
      return { _tag: "other", kind: "unparseable" }
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

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Above this many queued events the replication socket is paused until the consumer catches up. */
const PAUSE_ABOVE = 10_000
const RESUME_BELOW = 1_000

export const layer = (config: PgWalConfig) =>
  Layer.effect(
    WalSource,
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const obs = yield* Observability
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
        yield* Effect.logInfo("publication created").pipe(
          Effect.annotateLogs({ publication: pub, tables: config.bootstrapTables.join(",") || "all" }),
        )
      })

      const primaryKey = (relationId: number) =>
        query(
          sql<{ attname: string }>`
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = ${relationId} AND i.indisprimary
            ORDER BY array_position(i.indkey::int2[], a.attnum)`,
        ).pipe(
          Effect.map((rows) => rows.map((r) => r.attname)),
          Effect.mapError(
            (e) =>
              new WalError({
                reason: "lost",
                message: `could not look up the primary key of relation ${relationId}: ${e.message}`,
              }),
          ),
        )

      /** Connects, creates the slot and starts streaming into a queue; resolves once PostgreSQL streams. */
      const connect = Effect.flatMap(Queue.unbounded<WalEvent, WalError | Cause.Done>(), (queue) =>
        Effect.callback<WalSession & { readonly close: Effect.Effect<void> }, WalError>((resume) => {
          const plugin = new WaleraPgoutput(
            { publication: config.publicationName, slot, maxValueBytes: config.maxValueBytes },
            (error) => {
              // A message we cannot parse: what follows would be silently wrong, so the session ends (a gap, signalled).
              obs.decodeError("message")
              fail("lost", new Error(`unparseable pgoutput message: ${message(error)}`))
            },
          )
          const service = new LogicalReplicationService(
            { connectionString: config.url, application_name: "walera" } as never,
            { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
          )
          let done = false
          let started = false
          let paused = false
          const connectionStream = () =>
            (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })._connection?.stream
          const offer = (event: WalEvent) => {
            Queue.offerUnsafe(queue, event)
            if (!paused && Queue.sizeUnsafe(queue) > PAUSE_ABOVE) {
              paused = true
              connectionStream()?.pause()
            }
          }
          service.on("data", (_lsn: string, msg: WalEvent) => {
            if (msg._tag !== "other") offer(msg)
          })
          service.on("heartbeat", (lsn: string, _ts: number, shouldRespond: boolean) =>
            offer({ _tag: "keepalive", walEnd: parseLsn(lsn), replyRequested: shouldRespond }),
          )
          // pg-logical-replication reports `lsn + 1`; PostgreSQL's walsender only exits at a server shutdown once the
          // confirmed flush equals what it sent, so it is handed `lsn - 1` to make the report exact.
          const acknowledge = (lsn: bigint) =>
            Effect.promise(() =>
              lsn > 0n && !done ? service.acknowledge(formatLsn(lsn - 1n)).catch(() => false) : Promise.resolve(false),
            ).pipe(Effect.asVoid)
          const close = Effect.promise(async () => {
            if (done) return
            done = true
            Queue.endUnsafe(queue)
            await service.stop().catch(() => {})
          })
          const fail = (reason: "unreachable" | "lost", error: unknown) => {
            if (done) return
            done = true
            void service.stop().catch(() => {})
            const walError = new WalError({ reason, message: message(error) })
            if (started) Queue.failCauseUnsafe(queue, Cause.fail(walError))
            else resume(Effect.fail(walError))
          }
          const events = Stream.fromQueue(queue).pipe(
            Stream.mapArray((batch) => {
              if (paused && Queue.sizeUnsafe(queue) < RESUME_BELOW) {
                paused = false
                connectionStream()?.resume()
              }
              return batch
            }),
          )
          service.on("start", () => {
            started = true
            resume(Effect.succeed({ slot, startLsn: plugin.startLsn, events, acknowledge, close }))
          })
          service.on("error", (error: unknown) => fail("lost", error))
          service
            .subscribe(plugin as never, slot)
            .then(() => fail(started ? "lost" : "unreachable", new Error("replication connection closed")))
            .catch((error: unknown) => fail(started ? "lost" : "unreachable", error))
          return close
        }),
      )

      const open = Effect.acquireRelease(connect.pipe(Effect.withSpan("WalSource.connect")), (s) => s.close).pipe(
        Effect.map((s): WalSession => s),
      )

      const slotLagBytes = query(
        sql<{ lag: string | null }>`
          SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
          FROM pg_replication_slots WHERE slot_name = ${slot}`,
      ).pipe(Effect.map((rows) => (rows[0]?.lag == null ? undefined : Number(rows[0].lag))))

      return WalSource.of({ prepare: prepare(), open, primaryKey, slotLagBytes })
    }),
  )
