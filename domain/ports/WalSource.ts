// Port: the PostgreSQL write-ahead log as a sequence of decoded pgoutput messages.
// One `stream` call is one replication session on a fresh temporary slot; it fails with
// WalError when the session is lost and closes the connection when interrupted.
import { Context, type Effect, Schema } from "effect"
import type { PgMessage } from "../PgMessage.ts"

export class WalError extends Schema.TaggedError<WalError>()("WalError", {
  /** unreachable: no connection; prerequisite: PostgreSQL is reachable but not set up for Walera; lost: the session ended. */
  reason: Schema.Literals(["unreachable", "prerequisite", "lost", "protocol"]),
  message: Schema.String,
}) {}

export interface WalSink {
  /** The session streams: the slot exists and START_REPLICATION succeeded. */
  readonly onStreaming: (info: { readonly slot: string; readonly startLsn: bigint }) => void
  /**
   * Called synchronously for every message in WAL order. When it returns for a commit, the
   * transaction counts as dispatched and its end LSN may be acknowledged to PostgreSQL.
   */
  readonly onMessage: (msg: PgMessage) => void
}

export class WalSource extends Context.Service<
  WalSource,
  {
    /** Checks wal_level, the REPLICATION attribute and the publication (creating it in bootstrap mode auto). */
    readonly prepare: Effect.Effect<void, WalError>
    readonly stream: (sink: WalSink) => Effect.Effect<never, WalError>
    /** WAL bytes between the server's current LSN and this instance's slot (undefined without a slot). */
    readonly slotLagBytes: Effect.Effect<number | undefined, WalError>
  }
>()("walera/WalSource") {}
