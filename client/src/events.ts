// The wire types of a Walera stream and their decoding from SSE `data`, shared by `connect`, `WaleraEventSource`
// users and the mirror, so every path reads a frame the same way (docs/delivery-semantics.md has the rules).

/** One row change inside a transaction. `data` is absent for deletes; for updates it holds only reported columns. */
export type WaleraChange = {
  op: "insert" | "update" | "delete"
  /** Bare table name (schema public). */
  table: string
  /** Primary-key value in PostgreSQL text form (composite keys: parts joined with `,`). */
  pk: string
  /** insert: the whole (whitelisted) row; update: the PK plus the reported columns; delete: absent. */
  data?: Record<string, unknown>
}

/** One PostgreSQL transaction, as one `tx` event. */
export type WaleraTx = {
  /** PostgreSQL xid (also the SSE `id:`). Not ordered by commit and wraps: never sort or compare by it. */
  tx_id: number
  /** Commit time, RFC 3339 UTC with "Z". */
  commit_ts: string
  /** In WAL order; the same row may appear more than once. */
  changes: WaleraChange[]
}

/** The `reason` of a terminal `error` frame. Unknown future reasons are passed through as strings. */
export type ErrorReason =
  | "slow_consumer"
  | "tx_too_large"
  | "auth_revoked"
  | "auth_unavailable"
  | "wal_disconnected"
  | (string & {})

/** `data` of a terminal `error` frame. */
export type WaleraError = { reason: ErrorReason }

/** `data` of a `shutdown` frame: the instance is stopping, reconnect (to another one) after the server's `retry:`. */
export type WaleraShutdown = { reason: "service_restart" | (string & {}) }

/** `data` of a `resumed` frame: the stream continues after this id; the transactions after it follow. */
export type WaleraResumed = { last_event_id: string }

/** What the `data` of each Walera event decodes to, by SSE event name. */
export type WaleraEventMap<InitialData = unknown> = {
  initial_data: InitialData
  tx: WaleraTx
  error: WaleraError
  shutdown: WaleraShutdown
  resumed: WaleraResumed
}

/** One decoded Walera event; `id` is the SSE last event id when it was dispatched ("" if none yet). */
export type WaleraEvent<InitialData = unknown> = {
  [K in keyof WaleraEventMap<InitialData>]: { type: K; data: WaleraEventMap<InitialData>[K]; id: string }
}[keyof WaleraEventMap<InitialData>]

/** Thrown by `decodeEvent` for a Walera frame whose `data` is not what the protocol says: the mirror must resync. */
export class BadFrameError extends Error {
  readonly type: string
  constructor(type: string, cause?: unknown) {
    super(`malformed "${type}" frame`, cause === undefined ? undefined : { cause })
    this.name = "BadFrameError"
    this.type = type
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

const parse = (type: string, data: string): unknown => {
  try {
    return JSON.parse(data)
  } catch (error) {
    throw new BadFrameError(type, error)
  }
}

/**
 * Decodes one SSE event (`type` is the SSE event name, `data` its text) into a typed Walera event. Returns
 * undefined for events that are not part of the protocol (`message`, future names). Throws `BadFrameError` when an
 * `initial_data`, `tx` or `resumed` frame is malformed; a malformed `error` or `shutdown` frame is still terminal and
 * decodes with `reason: "unknown"`.
 */
export const decodeEvent = <InitialData = unknown>(
  type: string,
  data: string,
  id = "",
): WaleraEvent<InitialData> | undefined => {
  switch (type) {
    case "initial_data":
      return { type, data: parse(type, data) as InitialData, id }
    case "tx": {
      const tx = parse(type, data)
      if (!isObject(tx) || !Array.isArray(tx["changes"])) throw new BadFrameError(type)
      return { type, data: tx as WaleraTx, id }
    }
    case "resumed": {
      const body = parse(type, data)
      const last = isObject(body) ? body["last_event_id"] : undefined
      if (typeof last !== "string" && typeof last !== "number") throw new BadFrameError(type)
      return { type, data: { last_event_id: String(last) }, id }
    }
    case "error":
    case "shutdown": {
      let reason = "unknown"
      try {
        const body: unknown = JSON.parse(data)
        if (isObject(body) && typeof body["reason"] === "string") reason = body["reason"]
      } catch {
        // a malformed terminal frame still ends the stream
      }
      return type === "error" ? { type, data: { reason }, id } : { type, data: { reason }, id }
    }
    default:
      return undefined
  }
}
