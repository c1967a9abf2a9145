// One `text/event-stream` request over fetch, read to its end: the transport under both `connect` and
// `WaleraEventSource`. fetch can send headers (a bearer token), which a native EventSource cannot, and its streaming
// body works the same in browsers and Node >= 20.
import { parseRetryAfterMs } from "./backoff.js"
import { type SseEvent, parseSse } from "./parseSse.js"

export type EventStreamRequest = {
  url: string
  /** Sent as they are, after `Accept: text/event-stream`. */
  headers: Record<string, string>
  /** Sent as `Last-Event-ID` when not empty, and seeds the parser's last event id. */
  lastEventId: string
  withCredentials: boolean
  fetch: typeof fetch
  /** No bytes for this long (heartbeats count) ends the request with `idle_timeout`; 0 = off. */
  idleTimeoutMs: number
  /** Aborting it ends the request at once with `aborted`. */
  signal: AbortSignal
}

export type EventStreamHandlers = {
  /** The answer is a 200 `text/event-stream`; called before any event. */
  open(): void
  /** One event, in stream order. Return a reason to end the stream after it; throw to end it with the error. */
  event(ev: SseEvent): string | undefined
}

export type EventStreamEnd =
  /** Any status but 200: nothing was streamed. */
  | { kind: "refused"; status: number; retryAfterMs: number | undefined }
  /** No stream was opened. */
  | { kind: "failed"; reason: "network" | "idle_timeout" | "bad_content_type" | "aborted"; error?: unknown }
  /** The stream was open: `retry` and `lastEventId` are the parser's state when it ended. */
  | {
      kind: "ended"
      reason: string
      error?: unknown
      openedAt: number
      retry: number | undefined
      lastEventId: string
    }

/** Thrown by a handler to end the stream with this reason. */
export class StreamEnd {
  readonly reason: string
  readonly error: unknown
  constructor(reason: string, error?: unknown) {
    this.reason = reason
    this.error = error
  }
}

const isEventStream = (contentType: string | null): boolean =>
  (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "text/event-stream"

/** Opens one stream and reads it until it ends; never throws. */
export const openEventStream = async (
  req: EventStreamRequest,
  handlers: EventStreamHandlers,
): Promise<EventStreamEnd> => {
  if (req.signal.aborted) return { kind: "failed", reason: "aborted" }
  const abort = new AbortController()
  const onAbort = (): void => abort.abort()
  req.signal.addEventListener("abort", onAbort, { once: true })
  let idleTimer: ReturnType<typeof setTimeout> | undefined
  let idleFired = false
  const armIdle = (): void => {
    if (req.idleTimeoutMs <= 0) return
    if (idleTimer !== undefined) clearTimeout(idleTimer)
    idleTimer = setTimeout(() => {
      idleFired = true
      abort.abort()
    }, req.idleTimeoutMs)
  }
  const why = (): "idle_timeout" | "aborted" | "network" =>
    idleFired ? "idle_timeout" : req.signal.aborted ? "aborted" : "network"

  try {
    let response: Response
    try {
      armIdle() // also bounds a handshake that never answers
      const headers: Record<string, string> = { Accept: "text/event-stream", ...req.headers }
      if (req.lastEventId !== "") headers["Last-Event-ID"] = req.lastEventId
      const init: RequestInit = { method: "GET", headers, signal: abort.signal }
      if (req.withCredentials) init.credentials = "include"
      response = await req.fetch(req.url, init)
    } catch (error) {
      return { kind: "failed", reason: why(), error }
    }
    if (req.signal.aborted) {
      await response.body?.cancel().catch(() => {})
      return { kind: "failed", reason: "aborted" }
    }
    if (response.status !== 200) {
      const retryAfterMs = parseRetryAfterMs(response.headers.get("retry-after"))
      await response.body?.cancel().catch(() => {})
      return { kind: "refused", status: response.status, retryAfterMs }
    }
    if (!isEventStream(response.headers.get("content-type")) || response.body === null) {
      await response.body?.cancel().catch(() => {})
      return { kind: "failed", reason: "bad_content_type" }
    }

    const openedAt = Date.now()
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    const parser = parseSse({ lastEventId: req.lastEventId })
    const ended = (reason: string, error?: unknown): EventStreamEnd => {
      const end: EventStreamEnd = {
        kind: "ended",
        reason,
        openedAt,
        retry: parser.retry,
        lastEventId: parser.lastEventId,
      }
      if (error !== undefined) end.error = error
      return end
    }
    try {
      handlers.open()
      for (;;) {
        armIdle()
        let chunk: Awaited<ReturnType<typeof reader.read>>
        try {
          chunk = await reader.read()
        } catch (error) {
          return ended(why(), error)
        }
        if (req.signal.aborted) return ended("aborted")
        if (chunk.done) return ended("end")
        for (const ev of parser.push(decoder.decode(chunk.value, { stream: true }))) {
          const terminal = handlers.event(ev)
          if (req.signal.aborted) return ended("aborted")
          if (terminal !== undefined) return ended(terminal)
        }
      }
    } catch (error) {
      return error instanceof StreamEnd ? ended(error.reason, error.error) : ended("callback_error", error)
    } finally {
      reader.cancel().catch(() => {})
    }
  } finally {
    if (idleTimer !== undefined) clearTimeout(idleTimer)
    req.signal.removeEventListener("abort", onAbort)
    abort.abort() // frees the socket whatever happened
  }
}
