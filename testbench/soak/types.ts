// The soak's shared vocabulary: what the writer committed, what the auth backend answered and what
// each client received. The oracle judges these records only, so every process writes the same shapes.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

export type ColumnType = "int8" | "int4" | "text" | "bool" | "timestamptz"

export interface ColumnSpec {
  readonly name: string
  readonly type: ColumnType
}

export interface TableSpec {
  readonly name: string
  readonly pk: string
  /** In table-column order: Walera's `data` keys follow it. */
  readonly columns: ReadonlyArray<ColumnSpec>
}

/** One row change as the writer made it; `row` is the whole new tuple in Walera's JSON mapping, null for a delete. */
export interface HChange {
  readonly op: "insert" | "update" | "delete"
  readonly table: string
  readonly pk: string
  readonly row: Readonly<Record<string, Json>> | null
}

/** Why Walera must not deliver a transaction as a frame (router.max_changes_per_tx / max_tx_bytes): too many changes, too many bytes, or near the byte limit. */
export type Oversize = "changes" | "bytes" | "maybe" | null

/** A committed transaction. The writer commits sequentially on one connection, so `seq` is the commit order. */
export interface HTx {
  readonly seq: number
  readonly xid: number
  /** Epoch ms just before COMMIT was sent: the commit happened after this. */
  readonly commitStart: number
  /** Epoch ms when the commit was acknowledged (or found committed after a lost connection): it happened before this. */
  readonly commitEnd: number
  readonly kind: string
  readonly changes: ReadonlyArray<HChange>
  readonly oversize: Oversize
}

export interface Grant {
  readonly userId: string
  readonly tables: Readonly<Record<string, ReadonlyArray<string>>>
  readonly roots: ReadonlyArray<string> | null
}

/** One POST /auth/sessions as the backend saw it. */
export interface AuthCall {
  readonly tRecv: number
  /** When the answer left (or the connection was dropped); for a call never answered, when it was abandoned. */
  readonly tSent: number
  readonly token: string
  readonly requestId: string
  readonly channel: string
  /** HTTP status sent; 0 = no answer (connection dropped or abandoned). */
  readonly status: number
  /** "grant": a well-formed grant; "garbage": 200 with a body Walera must refuse; "error": 5xx / no answer; "deny": 401/403/404. */
  readonly outcome: "grant" | "garbage" | "error" | "deny"
  readonly grant?: Grant
}

export interface FrameRec {
  /** Epoch ms when the client read the frame. */
  readonly t: number
  /** "tx", "initial_data", "error", "shutdown", "resumed", … or "retry" for a bare `retry:` block. */
  readonly event: string
  readonly id?: string
  /** The data line(s); for a large tx frame, the canonical form (big strings hashed) — see `canon`. */
  readonly data?: string
  readonly canon?: boolean
  readonly retry?: number
}

/** One HTTP request of one client: a handshake and, on 200, the stream it opened. */
export interface StreamRec {
  /** Also the X-Request-ID sent, so the backend's log ties the open call to the stream. */
  readonly id: string
  readonly client: number
  readonly behaviour: string
  readonly path: string
  readonly table: string
  readonly pk: string | null
  readonly user: string
  readonly token: string
  /** Walera incarnation ("A1", "B1", …) the request went to. */
  readonly instance: string
  readonly lastEventIdSent: string | null
  readonly tReq: number
  tSent: number | null
  tHdr: number | null
  status: number
  contentType: string | null
  retryAfter: string | null
  body: string | null
  /** The client hung up before the response headers (or right after them, on purpose). */
  abortedByClient: boolean
  frames: FrameRec[]
  heartbeats: number
  /** Longest time the client stopped reading this stream, ms. */
  maxPauseMs: number
  /** Start of the first pause of at least the stall threshold (the socket may have filled), or null. */
  stallFrom: number | null
  end: { t: number; by: "client" | "server" | "error"; final: boolean } | null
}

/** One Walera process lifetime. */
export interface Incarnation {
  readonly id: string
  readonly slotPrefix: string
  readonly startedAt: number
  /** Streaming and in the client pool from this time. */
  readyAt: number | null
  stopSignalAt: number | null
  exitedAt: number | null
  exitCode: number | null
  readonly env: Readonly<Record<string, string>>
  /** walera_tx_dropped_total{reason="multi_root"} over time. */
  readonly multiRootScrapes: Array<{ t: number; value: number }>
}
