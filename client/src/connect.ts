// Follows one Walera stream for an app: typed callbacks in stream order, a resume or a resync on every open, and
// reconnects that obey the server (`Retry-After`, the `retry:` sent before `shutdown`) with jitter everywhere else.
import { type BackoffOptions, backoffDelayMs, retryDelayMs } from "./backoff.js"
import {
  BadFrameError,
  decodeEvent,
  type ErrorReason,
  type WaleraResumed,
  type WaleraShutdown,
  type WaleraEvent,
  type WaleraTx,
} from "./events.js"
import { type EventStreamEnd, type EventStreamHandlers, openEventStream, StreamEnd } from "./openEventStream.js"
import { type EventSourceConstructor, openNativeStream } from "./openNativeStream.js"
import type { WaleraHeaders, WaleraHeadersInit } from "./WaleraEventSource.js"

export type CloseInfo = {
  /**
   * Why the connection (or the attempt) ended:
   * - `http_<status>`: the handshake was refused (400/401/403/404… stop; 408/429/5xx retry);
   * - an `ErrorReason` (`wal_disconnected`, `auth_revoked`, …): a terminal `error` frame;
   * - `shutdown`: a `shutdown` frame (the delay is the server's `retry:`);
   * - `reconnect`: you called `reconnect()`;
   * - `end`: the server ended the stream without a frame;
   * - `network`: fetch or the body read failed (with the EventSource transport: any failure, refusals included);
   * - `idle_timeout`: nothing (not even a heartbeat) arrived for `idleTimeoutMs`;
   * - `bad_content_type`: a 200 that is not `text/event-stream` (e.g. a proxy's HTML page);
   * - `bad_frame`: an `initial_data`/`tx`/`resumed` frame that is not what the protocol says (resync follows);
   * - `callback_error`: one of your callbacks threw (see `error`); the stream is dropped and resynced;
   * - `headers_failed`: the `headers` function threw or rejected (see `error`); this stops the client.
   */
  reason: string
  willRetry: boolean
  /** The delay before the next attempt, when `willRetry`. */
  retryInMs?: number
  /** The exception, for `callback_error`, `bad_frame`, `headers_failed` and `network`. */
  error?: unknown
}

export type ConnectOptions<InitialData = unknown> = {
  /** The stream URL, e.g. `https://walera.example.com/sse/v1/orders/42` (encode the pk with encodeURIComponent). */
  url: string | URL
  /** Request headers, e.g. `Authorization`. A function is called before every attempt (fresh tokens). */
  headers?: WaleraHeadersInit
  /** Send cookies cross-origin (fetch `credentials: "include"`, EventSource `withCredentials`). */
  withCredentials?: boolean
  /** Send the last event id on every reconnect so the server can resume (default true). */
  resume?: boolean
  /** Resume from this id on the first connection, e.g. one you stored with your mirror (see `lastEventId`). */
  lastEventId?: string
  /** After a reconnect that sent an id, how long to wait for `resumed` before calling it a normal open (1000 ms). */
  resumeWaitMs?: number
  /** The stream is open (200, `text/event-stream`). */
  onOpen?(): void
  /**
   * A normal open: the stream starts "now", so your state may have missed changes. Reload it here, or in
   * `onInitialData`, which follows when the grant carries one. Called on the first open and on every open that did
   * not resume, before any of that stream's events.
   */
  onResync?(): void
  /** The server resumed after the id it names: the transactions you missed follow as `onTx`; keep your state. */
  onResumed?(info: WaleraResumed): void
  /** The grant's `initial_data` (first event of a normal open, when the grant has one). */
  onInitialData?(data: InitialData): void
  /** One transaction, in commit order. */
  onTx?(tx: WaleraTx): void
  /** A terminal `error` frame. The client reconnects afterwards (after `auth_revoked`, refresh credentials). */
  onError?(reason: ErrorReason): void
  /** A `shutdown` frame: the instance is stopping. The client reconnects after the server's `retry:`. */
  onShutdown?(info: WaleraShutdown): void
  /** A connection or connection attempt ended. Not called for `close()`. */
  onClose?(info: CloseInfo): void
  backoff?: BackoffOptions
  /** Treat this long without any bytes (Walera sends a heartbeat every ~15 s) as a dead connection. 0 = off. */
  idleTimeoutMs?: number
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch
  /**
   * Use this EventSource implementation (e.g. `globalThis.EventSource`) instead of fetch: no custom headers (use
   * cookies and `withCredentials`), the resume id goes in `?last_event_id=`, refusals cannot be told from network
   * errors (all are retried), and `shutdown` waits a random delay in [baseMs, maxMs] (the `retry:` is not visible).
   */
  EventSource?: EventSourceConstructor
}

export type ConnectionState = "connecting" | "open" | "closed"

export type WaleraConnection = {
  /** Aborts the current request or wait and stops retrying. Idempotent; no callback is called afterwards. */
  close(): void
  /** Drops the current stream (or skips the current wait) and connects again at once, resuming if it can. */
  reconnect(): void
  readonly state: ConnectionState
  /** The id the next connection sends to resume (the last `id:` seen since the last resync), if any. */
  readonly lastEventId: string | undefined
}

type Outcome = {
  reason: string
  retry: boolean
  /** A delay decided by the end itself (the server's `retry:`, `reconnect()`), instead of the backoff. */
  delayMs?: number
  minDelayMs?: number
  /** The stream stayed open long enough to start the backoff over. */
  resetBackoff?: boolean
  error?: unknown
}

const retryableStatus = (status: number): boolean => status === 408 || status === 429 || status >= 500

const report = (error: unknown): void => {
  const g = globalThis as { reportError?: (e: unknown) => void }
  if (typeof g.reportError === "function") g.reportError(error)
  else console.error("walera client: onClose threw", error)
}

const withLastEventId = (url: string, id: string): string => {
  const u = new URL(url)
  u.searchParams.set("last_event_id", id)
  return u.href
}

/**
 * Follows one Walera stream until `close()`: opens it, decodes events into the typed callbacks, and reconnects after
 * every end (terminal frame, end of stream, network error, 408/429/5xx); 400/401/403/404 and other refusals stop it.
 * Each reconnect sends the last event id; the open then either resumes (`onResumed`, the missed transactions
 * follow) or is a normal one (`onResync`). The delay is the server's `retry:` after a `shutdown`, otherwise
 * full-jitter exponential backoff, never less than `Retry-After`.
 */
export const connect = <InitialData = unknown>(options: ConnectOptions<InitialData>): WaleraConnection => {
  const baseMs = options.backoff?.baseMs ?? 1000
  const maxMs = options.backoff?.maxMs ?? 30_000
  const resetAfterMs = options.backoff?.resetAfterMs ?? 30_000
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000
  const resumeWaitMs = options.resumeWaitMs ?? 1000
  const resume = options.resume ?? true
  const url = new URL(options.url, (globalThis as { location?: { href: string } }).location?.href).href
  // Called through a closure: a browser's fetch throws "Illegal invocation" when called as a method of `options`.
  const fetchFn: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))

  let state: ConnectionState = "connecting"
  let stopped = false
  let resumeId: string | undefined = options.lastEventId || undefined
  let current: AbortController | undefined
  let reconnectRequested = false
  let sleeper: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined

  const attemptOnce = async (): Promise<Outcome> => {
    const abort = new AbortController()
    current = abort
    reconnectRequested = false
    let headers: WaleraHeaders
    try {
      const h = options.headers
      headers = typeof h === "function" ? await h() : (h ?? {})
    } catch (error) {
      return { reason: "headers_failed", retry: false, error }
    }

    const sentId = resume ? resumeId : undefined
    let decision: "pending" | "resumed" | "normal" = "pending"
    let decisionTimer: ReturnType<typeof setTimeout> | undefined
    let timerEnd: StreamEnd | undefined // a callback threw inside the decision timer, outside the read loop

    const call = (f: () => void): void => {
      try {
        f()
      } catch (error) {
        throw new StreamEnd("callback_error", error)
      }
    }
    const decideNormal = (): void => {
      decision = "normal"
      if (decisionTimer !== undefined) clearTimeout(decisionTimer)
      resumeId = undefined // the state is rebuilt from this stream on: an older id no longer describes it
      call(() => options.onResync?.())
    }

    const handlers: EventStreamHandlers = {
      open: () => {
        state = "open"
        call(() => options.onOpen?.())
        if (sentId === undefined) return decideNormal()
        decisionTimer = setTimeout(() => {
          if (decision !== "pending" || abort.signal.aborted) return
          try {
            decideNormal()
          } catch (error) {
            timerEnd = error as StreamEnd
            abort.abort()
          }
        }, resumeWaitMs)
      },
      event: (ev) => {
        let decoded: WaleraEvent<InitialData> | undefined
        try {
          decoded = decodeEvent<InitialData>(ev.event, ev.data, ev.id)
        } catch (error) {
          throw new StreamEnd("bad_frame", error instanceof BadFrameError ? (error.cause ?? error) : error)
        }
        if (decoded === undefined) return undefined // "message" and unknown events are not part of the protocol
        if (decision === "pending") {
          if (decoded.type === "resumed") {
            decision = "resumed"
            clearTimeout(decisionTimer)
            const info = decoded.data
            call(() => options.onResumed?.(info))
            return undefined
          }
          // A stream that ends before saying anything about state leaves the id for the next open to try.
          if (decoded.type !== "error" && decoded.type !== "shutdown") decideNormal()
        }
        // Before the callback, so it can store the id with its state; a throwing callback clears it again below.
        if (ev.id !== "") resumeId = ev.id
        switch (decoded.type) {
          case "resumed":
            // Too late to be a resume: the resync already happened; the replay after it converges when applied.
            return undefined
          case "initial_data": {
            const data = decoded.data
            call(() => options.onInitialData?.(data))
            break
          }
          case "tx": {
            const tx = decoded.data
            call(() => options.onTx?.(tx))
            break
          }
          case "error": {
            const reason = decoded.data.reason
            call(() => options.onError?.(reason))
            return reason
          }
          case "shutdown": {
            const info = decoded.data
            call(() => options.onShutdown?.(info))
            return "shutdown"
          }
        }
        return undefined
      },
    }

    let end: EventStreamEnd
    try {
      if (options.EventSource !== undefined) {
        const target = sentId === undefined ? url : withLastEventId(url, sentId)
        end = await openNativeStream(
          options.EventSource,
          target,
          options.withCredentials === true,
          handlers,
          abort.signal,
        )
      } else {
        end = await openEventStream(
          {
            url,
            headers: sentId === undefined ? headers : { ...headers, "Last-Event-ID": sentId },
            lastEventId: "", // ids are tracked per stream here: one from an earlier stream is not this stream's
            withCredentials: options.withCredentials === true,
            fetch: fetchFn,
            idleTimeoutMs,
            signal: abort.signal,
          },
          handlers,
        )
      }
    } finally {
      if (decisionTimer !== undefined) clearTimeout(decisionTimer)
    }

    if (stopped) return { reason: "closed", retry: false }
    if (end.kind === "refused") {
      const outcome: Outcome = { reason: `http_${end.status}`, retry: retryableStatus(end.status) }
      if (end.retryAfterMs !== undefined) outcome.minDelayMs = end.retryAfterMs
      return outcome
    }
    let reason = end.reason
    let error = end.error
    if (reason === "aborted" && timerEnd !== undefined) {
      reason = timerEnd.reason
      error = timerEnd.error
    } else if (reason === "aborted" && reconnectRequested) {
      reason = "reconnect"
      error = undefined // the abort was ours
    }
    // The app's state may be wrong after these: the next open must be a normal one, so it resyncs.
    if (reason === "callback_error" || reason === "bad_frame") resumeId = undefined
    const outcome: Outcome = { reason, retry: true }
    if (error !== undefined) outcome.error = error
    if (end.kind === "ended") {
      if (Date.now() - end.openedAt >= resetAfterMs) outcome.resetBackoff = true
      if (reason === "shutdown")
        outcome.delayMs =
          end.retry !== undefined ? retryDelayMs(end.retry) : baseMs + Math.random() * Math.max(0, maxMs - baseMs)
    }
    if (reason === "reconnect") outcome.delayMs = 0
    return outcome
  }

  const sleep = (ms: number): Promise<void> =>
    new Promise((wake) => {
      sleeper = { timer: setTimeout(wake, ms), wake }
    })

  const run = async (): Promise<void> => {
    let attempt = 0
    while (!stopped) {
      state = "connecting"
      const outcome = await attemptOnce()
      if (stopped) return
      const info: CloseInfo = { reason: outcome.reason, willRetry: outcome.retry }
      if (outcome.error !== undefined) info.error = outcome.error
      if (!outcome.retry) {
        stopped = true
        state = "closed"
      } else {
        if (outcome.resetBackoff === true) attempt = 0
        if (outcome.delayMs !== undefined) info.retryInMs = Math.round(outcome.delayMs)
        else {
          info.retryInMs = Math.round(backoffDelayMs(attempt, { baseMs, maxMs }, outcome.minDelayMs))
          attempt++
        }
        state = "connecting"
      }
      try {
        options.onClose?.(info)
      } catch (error) {
        report(error)
      }
      if (stopped || info.retryInMs === undefined) return
      if (reconnectRequested) continue // reconnect() from onClose: no wait
      await sleep(info.retryInMs)
      sleeper = undefined
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
      current?.abort()
      if (sleeper !== undefined) {
        clearTimeout(sleeper.timer)
        sleeper.wake()
      }
    },
    reconnect() {
      if (stopped) return
      reconnectRequested = true
      current?.abort()
      if (sleeper !== undefined) {
        clearTimeout(sleeper.timer)
        sleeper.wake()
      }
    },
    get state() {
      return state
    },
    get lastEventId() {
      return resumeId
    },
  }
}
