// Port: the PostgreSQL write-ahead log as a stream of decoded pgoutput messages. One `open` is one
// replication session on a fresh temporary slot, owned by the caller's scope: closing the scope closes
// the connection and PostgreSQL drops the slot. The session's events fail with WalError when it is lost.
import { Context, type Effect, Schema, type Scope, type Stream } from "effect"
import type { PgMessage } from "../PgMessage.ts"

export class WalError extends Schema.TaggedError<WalError>()("WalError", {
  /** unreachable: no connection; prerequisite: reachable but not set up for Walera; lost: the session ended. */
  reason: Schema.Literals(["unreachable", "prerequisite", "lost", "protocol"]),
  message: Schema.String,
}) {}

/** PostgreSQL's keepalive: where its WAL ends, and whether it wants a status update now. */
export interface Keepalive {
  readonly _tag: "keepalive"
  readonly walEnd: bigint
  readonly replyRequested: boolean
}

export type WalEvent = PgMessage | Keepalive

export interface WalSession {
  readonly slot: string
  /** The slot's consistent point: the session streams every transaction committed after it. */
  readonly startLsn: bigint
  /** Decoded events in WAL order; a pull returns what one read of the replication socket brought. */
  readonly events: Stream.Stream<WalEvent, WalError>
  /** Confirms to PostgreSQL that everything up to this LSN was dispatched (it may recycle that WAL). */
  readonly acknowledge: (lsn: bigint) => Effect.Effect<void>
}

export class WalSource extends Context.Service<
  WalSource,
  {
    /** Checks wal_level, the REPLICATION attribute and the publication (creating it in bootstrap mode auto). */
    readonly prepare: Effect.Effect<void, WalError>
    readonly open: Effect.Effect<WalSession, WalError, Scope.Scope>
    /** The primary-key columns of a relation, in key order, from the catalog (empty: none). */
    readonly primaryKey: (relationId: number) => Effect.Effect<ReadonlyArray<string>, WalError>
    /** WAL bytes between the server's current LSN and this instance's slot (undefined without a slot). */
    readonly slotLagBytes: Effect.Effect<number | undefined, WalError>
  }
>()("walera/WalSource") {}
