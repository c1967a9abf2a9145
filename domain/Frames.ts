// The SSE wire frames (docs/delivery-semantics.md, "Frames"), as strings. The hub turns each into bytes once
// and writes the same bytes to every subscriber of an audience.

export type ErrorReason = "slow_consumer" | "tx_too_large" | "auth_revoked" | "auth_unavailable" | "wal_disconnected"

export const RETRY_FRAME = "retry: 15000\n\n"
export const HEARTBEAT_FRAME = ":\n\n"
export const SHUTDOWN_FRAME = 'event: shutdown\ndata: {"reason":"service_restart"}\n\n'

export const txFrame = (xid: number, json: string): string => `event: tx\nid: ${xid}\ndata: ${json}\n\n`

export const errorFrame = (reason: ErrorReason): string => `event: error\ndata: {"reason":"${reason}"}\n\n`

/** initial_data is the backend's JSON, already compacted to one line; with resume on it carries an id to resume from. */
export const initialDataFrame = (json: string, id?: number): string =>
  id === undefined ? `event: initial_data\ndata: ${json}\n\n` : `event: initial_data\nid: ${id}\ndata: ${json}\n\n`

/** Sent instead of initial_data when a Last-Event-ID was found in the replay window. */
export const resumedFrame = (lastEventId: string): string =>
  `event: resumed\ndata: {"last_event_id":${JSON.stringify(lastEventId)}}\n\n`

/** The per-subscriber reconnect delay sent right before `shutdown`, so clients come back spread out. */
export const retryFrame = (ms: number): string => `retry: ${Math.max(0, Math.round(ms))}\n\n`

/** A delay in [1 s, spreadMs] from a uniform random number in [0, 1). */
export const shutdownRetryMs = (spreadMs: number, random: number): number => {
  const top = Math.max(1000, spreadMs)
  const r = random >= 0 ? Math.min(random, 1) : 0
  return Math.round(1000 + r * (top - 1000))
}
