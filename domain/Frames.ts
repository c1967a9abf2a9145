// The SSE wire frames of SPEC §1.3 and §2, as strings. The hub turns each into bytes once
// and writes the same bytes to every socket of an audience.

export type ErrorReason = "slow_consumer" | "tx_too_large" | "auth_revoked" | "auth_unavailable" | "wal_disconnected"

export const RETRY_FRAME = "retry: 15000\n\n"
export const HEARTBEAT_FRAME = ":\n\n"
export const SHUTDOWN_FRAME = 'event: shutdown\ndata: {"reason":"service_restart"}\n\n'

export const txFrame = (xid: number, json: string): string => `event: tx\nid: ${xid}\ndata: ${json}\n\n`

export const errorFrame = (reason: ErrorReason): string => `event: error\ndata: {"reason":"${reason}"}\n\n`

/** initial_data is the backend's JSON, already compacted to one line. */
export const initialDataFrame = (json: string): string => `event: initial_data\ndata: ${json}\n\n`
