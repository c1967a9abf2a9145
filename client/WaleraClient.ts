// Browser/Node client helper for Walera streams: SSE parsing, jittered reconnects and mirror updates, with no
// dependencies so front ends can copy or bundle it as-is (fetch + ReadableStream + AbortController only).

// ---------------------------------------------------------------------------------------------------------------
// Wire types (SPEC §2)
// ---------------------------------------------------------------------------------------------------------------

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
  /** PostgreSQL xid (also the SSE `id:`). Not ordered by commit and wraps: never sort or deduplicate by it. */
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

// ---------------------------------------------------------------------------------------------------------------
// SSE parser (HTML Living Standard, "Server-sent events", §9.2.6 interpreting an event stream)
// ---------------------------------------------------------------------------------------------------------------

/** A dispatched SSE event. `event` defaults to "message"; `id` is the last event ID seen so far on the stream. */
export type SseEvent = {
  event: string
  data: string
  id: string
}

export type SseParser = {
  /** Feeds decoded text (any chunking) and returns the events completed by it, in order. */
  push(chunk: string): SseEvent[]
  /** The last valid `retry:` value (ms), if any. Informational: `connect` uses its own jittered backoff. */
  readonly retry: number | undefined
}

/**
 * An incremental SSE parser. Lines end in CRLF, LF or CR (a CRLF split over two chunks counts once); a leading
 * BOM is dropped; comments are ignored; an event is dispatched on a blank line only if it has data; an unfinished
 * event at the end of the stream is never dispatched (the caller simply stops pushing).
 */
export const parseSse = (): SseParser => {
  let buffer = "" // text of the current, unfinished line
  let first = true
  let skipLf = false // the previous chunk ended in CR: a leading LF belongs to that line break
  let eventType = ""
  let data = ""
  let hasData = false
  let lastEventId = ""
  let retry: number | undefined

  const processLine = (line: string, out: SseEvent[]): void => {
    if (line === "") {
      if (hasData) out.push({ event: eventType === "" ? "message" : eventType, data, id: lastEventId })
      eventType = ""
      data = ""
      hasData = false
      return
    }
    const colon = line.indexOf(":")
    if (colon === 0) return // comment (heartbeat)
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    switch (field) {
      case "event":
        eventType = value
        break
      case "data":
        data = hasData ? `${data}\n${value}` : value
        hasData = true
        break
      case "id":
        if (!value.includes("\0")) lastEventId = value
        break
      case "retry":
        if (/^[0-9]+$/.test(value)) retry = Number(value)
        break
      default:
        break // unknown fields are ignored
    }
  }

  const push = (chunk: string): SseEvent[] => {
    const out: SseEvent[] = []
    let text = chunk
    if (first && text.length > 0) {
      first = false
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    let start = 0
    if (skipLf && text.length > 0) {
      skipLf = false
      if (text.charCodeAt(0) === 10) start = 1
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      processLine(buffer + text.slice(start, i), out)
      buffer = ""
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++
        } else {
          skipLf = true
        }
      }
      start = i + 1
    }
    if (start < text.length) buffer += text.slice(start)
    return out
  }

  return {
    push,
    get retry() {
      return retry
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mirror
// ---------------------------------------------------------------------------------------------------------------

/** An in-memory mirror: table → pk (text form, as in `WaleraChange.pk`) → row. */
export type WaleraMirror = Map<string, Map<string, Record<string, unknown>>>

/**
 * Applies one transaction's changes, in order, to `mirror` and returns the tables the transaction names.
 * insert → the row becomes `data`; update → `data` is merged into the row (absent keys keep their value, a missing
 * row is created from `data`); delete → the row is removed. Rows are replaced, never mutated, so a renderer can
 * compare row objects by identity. Touches nothing but `mirror`.
 */
export const applyTx = (mirror: WaleraMirror, tx: Pick<WaleraTx, "changes">): Set<string> => {
  const touched = new Set<string>()
  for (const change of tx.changes) {
    touched.add(change.table)
    let rows = mirror.get(change.table)
    if (change.op === "delete") {
      rows?.delete(change.pk)
      continue
    }
    if (rows === undefined) {
      rows = new Map()
      mirror.set(change.table, rows)
    }
    if (change.op === "insert") rows.set(change.pk, { ...change.data })
    else rows.set(change.pk, { ...rows.get(change.pk), ...change.data })
  }
  return touched
}

// ---------------------------------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------------------------------

export type BackoffOptions = {
  /** Cap of the first retry's delay (default 1000 ms). */
  baseMs?: number
  /** Largest cap (default 30 000 ms). */
  maxMs?: number
  /** A stream that stayed open at least this long resets the attempt counter (default 30 000 ms). */
  resetAfterMs?: number
}

/**
 * Full-jitter exponential backoff: uniform in [0, min(maxMs, baseMs · 2^attempt)], but never below `minMs`
 * (a server's `Retry-After`). `attempt` counts from 0.
 */
export const backoffDelayMs = (
  attempt: number,
  backoff: { baseMs: number; maxMs: number },
  minMs = 0,
  random: () => number = Math.random,
): number => {
  const cap = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 52))
  return Math.max(minMs, random() * cap)
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export const parseRetryAfterMs = (value: string | null, now: number = Date.now()): number | undefined => {
  if (value === null) return undefined
  const trimmed = value.trim()
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

// ---------------------------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------------------------

/** Request headers, e.g. `{ Authorization: "Bearer …" }`. */
export type WaleraHeaders = Record<string, string>

export type CloseInfo = {
  /**
   * Why the connection (or the attempt) ended:
   * - `http_<status>`: the handshake was refused (401/403/404/400… stop; 408/429/5xx retry);
   * - an `ErrorReason` (`wal_disconnected`, `auth_revoked`, …): a terminal `error` frame;
   * - `shutdown`: a `shutdown` frame;
   * - `end`: the server ended the stream without a frame;
   * - `network`: fetch or the body read failed;
   * - `idle_timeout`: nothing (not even a heartbeat) arrived for `idleTimeoutMs`;
   * - `bad_content_type`: a 200 that is not `text/event-stream` (e.g. a proxy's HTML page);
   * - `bad_frame`: an `initial_data`/`tx` frame that is not valid JSON (the mirror could be wrong: resync);
   * - `callback_error`: one of your callbacks threw (see `error`); the stream is dropped and resynced;
   * - `headers_failed`: the `headers` function threw or rejected (see `error`); this stops the client.
   */
  reason: string
  willRetry: boolean
  /** The delay before the next attempt, when `willRetry`. */
  retryInMs?: number
  /** The exception, for `callback_error`, `headers_failed` and `network`. */
  error?: unknown
}

export type ConnectOptions = {
  /** The stream URL, e.g. `https://walera.example.com/sse/v1/orders/42` (encode the pk with encodeURIComponent). */
  url: string
  /** Extra request headers, e.g. `Authorization`. A function is called before every attempt (fresh tokens). */
  headers?: WaleraHeaders | (() => WaleraHeaders | Promise<WaleraHeaders>)
  /** Send cookies cross-origin (fetch `credentials: "include"`), like `EventSource`'s `withCredentials`. */
  withCredentials?: boolean
  /** The stream's `initial_data` (first event, when the grant has one): the resync point, once per connection. */
  onInitialData?(data: unknown): void
  /** One transaction, in commit order. */
  onTx?(tx: WaleraTx): void
  /** A terminal `error` frame. The client reconnects afterwards (after `auth_revoked`, refresh credentials). */
  onError?(reason: ErrorReason): void
  /** A `shutdown` frame: the instance is stopping. The client reconnects afterwards. */
  onShutdown?(): void
  /** The stream is open (200, `text/event-stream`). */
  onOpen?(): void
  /** A connection or connection attempt ended. Not called for `close()`. */
  onClose?(info: CloseInfo): void
  backoff?: BackoffOptions
  /** Treat this long without any bytes (Walera sends a heartbeat every ~15 s) as a dead connection. 0 = off. */
  idleTimeoutMs?: number
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch
}

export type ConnectionState = "connecting" | "open" | "closed"

export type WaleraConnection = {
  /** Aborts the current request or wait and stops retrying. Idempotent; no callback is called afterwards. */
  close(): void
  readonly state: ConnectionState
}

type Outcome = { reason: string; retry: boolean; minDelayMs?: number; openedAt?: number; error?: unknown }

const retryableStatus = (status: number): boolean => status === 408 || status === 429 || status >= 500

const isEventStream = (contentType: string | null): boolean =>
  (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "text/event-stream"

/** Thrown inside the read loop to end a connection with a reason. */
class StreamEnd {
  readonly reason: string
  readonly error: unknown
  constructor(reason: string, error?: unknown) {
    this.reason = reason
    this.error = error
  }
}

const report = (error: unknown): void => {
  const g = globalThis as { reportError?: (e: unknown) => void }
  if (typeof g.reportError === "function") g.reportError(error)
  else console.error("WaleraClient: onClose threw", error)
}

/**
 * Follows one Walera stream until `close()`: opens it with fetch, parses events, and reconnects with full-jitter
 * exponential backoff after every end (terminal frame, end of stream, network error, 408/429/5xx). 400/401/403/404
 * and other refusals stop it. `Last-Event-ID` is never sent: Walera does not replay, so every new connection is a
 * fresh start whose `initial_data` (or your REST API) is the resync point.
 */
export const connect = (options: ConnectOptions): WaleraConnection => {
  const baseMs = options.backoff?.baseMs ?? 1000
  const maxMs = options.backoff?.maxMs ?? 30_000
  const resetAfterMs = options.backoff?.resetAfterMs ?? 30_000
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000
  // Called through a closure: a browser's fetch throws "Illegal invocation" when called as a method of `options`.
  const fetchFn: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))

  let state: ConnectionState = "connecting"
  let stopped = false
  let controller: AbortController | undefined
  let wakeUp: (() => void) | undefined
  let sleepTimer: ReturnType<typeof setTimeout> | undefined

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      wakeUp = resolve
      sleepTimer = setTimeout(resolve, ms)
    })

  const attemptOnce = async (): Promise<Outcome> => {
    let headers: WaleraHeaders
    try {
      const h = options.headers
      headers = typeof h === "function" ? await h() : (h ?? {})
    } catch (error) {
      return { reason: "headers_failed", retry: false, error }
    }
    if (stopped) return { reason: "closed", retry: false }

    const abort = new AbortController()
    controller = abort
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    let idleFired = false
    const armIdle = (): void => {
      if (idleTimeoutMs <= 0) return
      if (idleTimer !== undefined) clearTimeout(idleTimer)
      idleTimer = setTimeout(() => {
        idleFired = true
        abort.abort()
      }, idleTimeoutMs)
    }

    try {
      let response: Response
      try {
        armIdle() // also bounds a handshake that never answers
        const init: RequestInit = {
          method: "GET",
          headers: { Accept: "text/event-stream", ...headers },
          signal: abort.signal,
        }
        if (options.withCredentials) init.credentials = "include"
        response = await fetchFn(options.url, init)
      } catch (error) {
        return { reason: idleFired ? "idle_timeout" : "network", retry: true, error }
      }
      if (stopped) return { reason: "closed", retry: false } // close() raced with the response

      if (response.status !== 200) {
        const minDelayMs = parseRetryAfterMs(response.headers.get("retry-after"))
        await response.body?.cancel().catch(() => {})
        const outcome: Outcome = { reason: `http_${response.status}`, retry: retryableStatus(response.status) }
        if (minDelayMs !== undefined) outcome.minDelayMs = minDelayMs
        return outcome
      }
      if (!isEventStream(response.headers.get("content-type")) || response.body === null) {
        await response.body?.cancel().catch(() => {})
        return { reason: "bad_content_type", retry: true }
      }

      const openedAt = Date.now()
      const ended = (reason: string, error?: unknown): Outcome =>
        error === undefined ? { reason, retry: true, openedAt } : { reason, retry: true, openedAt, error }
      const reader = response.body.getReader()
      const decoder = new TextDecoder()
      const parser = parseSse()

      const callback = (f: () => void): void => {
        try {
          f()
        } catch (error) {
          throw new StreamEnd("callback_error", error)
        }
      }
      const json = (text: string): unknown => {
        try {
          return JSON.parse(text)
        } catch (error) {
          throw new StreamEnd("bad_frame", error)
        }
      }
      /** Returns the terminal reason when the event ends the stream. */
      const dispatch = (ev: SseEvent): string | undefined => {
        switch (ev.event) {
          case "initial_data": {
            const data = json(ev.data)
            callback(() => options.onInitialData?.(data))
            return undefined
          }
          case "tx": {
            const tx = json(ev.data) as WaleraTx
            if (tx === null || typeof tx !== "object" || !Array.isArray(tx.changes)) throw new StreamEnd("bad_frame")
            callback(() => options.onTx?.(tx))
            return undefined
          }
          case "error": {
            let reason: ErrorReason = "unknown"
            try {
              const parsed = JSON.parse(ev.data) as { reason?: unknown }
              if (typeof parsed?.reason === "string") reason = parsed.reason
            } catch {
              // a malformed terminal frame is still terminal
            }
            callback(() => options.onError?.(reason))
            return reason
          }
          case "shutdown":
            callback(() => options.onShutdown?.())
            return "shutdown"
          default:
            return undefined // "message" and unknown events are not part of the protocol
        }
      }

      state = "open"
      try {
        callback(() => options.onOpen?.())
        for (;;) {
          armIdle()
          let chunk: Awaited<ReturnType<typeof reader.read>>
          try {
            chunk = await reader.read()
          } catch (error) {
            return ended(idleFired ? "idle_timeout" : "network", error)
          }
          if (stopped) return { reason: "closed", retry: false }
          if (chunk.done) return ended("end")
          for (const ev of parser.push(decoder.decode(chunk.value, { stream: true }))) {
            const terminal = dispatch(ev)
            if (stopped) return { reason: "closed", retry: false }
            if (terminal !== undefined) return ended(terminal)
          }
        }
      } catch (error) {
        if (error instanceof StreamEnd) return ended(error.reason, error.error)
        throw error
      } finally {
        reader.cancel().catch(() => {})
      }
    } finally {
      if (idleTimer !== undefined) clearTimeout(idleTimer)
      abort.abort() // frees the socket whatever happened
    }
  }

  const run = async (): Promise<void> => {
    let attempt = 0
    while (!stopped) {
      state = "connecting"
      const outcome = await attemptOnce()
      if (stopped) return
      if (outcome.openedAt !== undefined && Date.now() - outcome.openedAt >= resetAfterMs) attempt = 0
      const info: CloseInfo = { reason: outcome.reason, willRetry: outcome.retry }
      if (outcome.error !== undefined) info.error = outcome.error
      if (!outcome.retry) {
        stopped = true
        state = "closed"
      } else {
        info.retryInMs = Math.round(backoffDelayMs(attempt, { baseMs, maxMs }, outcome.minDelayMs))
        attempt++
        state = "connecting"
      }
      try {
        options.onClose?.(info)
      } catch (error) {
        report(error)
      }
      if (stopped || info.retryInMs === undefined) return
      await sleep(info.retryInMs)
    }
  }

  void run().catch((error: unknown) => {
    // Not expected: everything above is caught. Stop rather than spin.
    stopped = true
    state = "closed"
    report(error)
  })

  return {
    close() {
      if (stopped && state === "closed") return
      stopped = true
      state = "closed"
      controller?.abort()
      if (sleepTimer !== undefined) clearTimeout(sleepTimer)
      wakeUp?.()
    },
    get state() {
      return state
    },
  }
}
