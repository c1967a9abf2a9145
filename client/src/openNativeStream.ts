// One connection through a native EventSource (or any implementation of its interface), for pages that authenticate
// with cookies and want the browser's own transport. It is closed at its first error so that reconnecting stays with
// `connect` (jitter, resume id in the URL) instead of the browser's fixed-delay retry.
import type { EventStreamEnd, EventStreamHandlers } from "./openEventStream.js"
import { StreamEnd } from "./openEventStream.js"

/** The part of the EventSource interface `connect` uses. */
export interface EventSourceLike {
  close(): void
  addEventListener(type: string, listener: (ev: Event) => void): void
}

export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike

/** The named events of the protocol; a native EventSource dispatches only names someone listens to. */
const WALERA_EVENTS = ["initial_data", "tx", "resumed", "error", "shutdown"] as const

/**
 * Opens `url` with `EventSourceImpl` and resolves when the stream ends. The transport hides HTTP statuses, `retry:`
 * and comments: a refusal and a network error both end as `network`, and the result carries no `retry`.
 */
export const openNativeStream = (
  EventSourceImpl: EventSourceConstructor,
  url: string,
  withCredentials: boolean,
  handlers: EventStreamHandlers,
  signal: AbortSignal,
): Promise<EventStreamEnd> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve({ kind: "failed", reason: "aborted" })
    const es = new EventSourceImpl(url, { withCredentials })
    let openedAt: number | undefined
    let lastEventId = ""
    let done = false
    const ended = (reason: string, error?: unknown): EventStreamEnd => {
      if (openedAt === undefined) return { kind: "failed", reason: reason === "aborted" ? "aborted" : "network" }
      const end: EventStreamEnd = { kind: "ended", reason, openedAt, retry: undefined, lastEventId }
      if (error !== undefined) end.error = error
      return end
    }
    const finish = (end: EventStreamEnd): void => {
      if (done) return
      done = true
      es.close()
      signal.removeEventListener("abort", onAbort)
      resolve(end)
    }
    const onAbort = (): void => finish(ended("aborted"))
    signal.addEventListener("abort", onAbort, { once: true })
    const guarded = (f: () => string | undefined): void => {
      try {
        const terminal = f()
        if (terminal !== undefined) finish(ended(terminal))
      } catch (error) {
        finish(error instanceof StreamEnd ? ended(error.reason, error.error) : ended("callback_error", error))
      }
    }
    es.addEventListener("open", () => {
      if (done) return
      openedAt = Date.now()
      guarded(() => {
        handlers.open()
        return undefined
      })
    })
    for (const type of WALERA_EVENTS) {
      es.addEventListener(type, (ev) => {
        if (done) return
        const message = ev as Partial<MessageEvent>
        // A server `error` frame is a MessageEvent with data; the transport's own failure is a plain Event.
        if (typeof message.data !== "string") {
          if (type === "error") finish(ended("network"))
          return
        }
        lastEventId = message.lastEventId ?? lastEventId
        const data = message.data
        guarded(() => handlers.event({ event: type, data, id: lastEventId }))
      })
    }
  })
