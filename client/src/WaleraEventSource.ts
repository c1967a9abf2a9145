// A drop-in for the browser's EventSource that can send request headers (a bearer token) because it runs on fetch,
// for code written against the EventSource interface and for Node >= 20, which has no EventSource.
import { retryDelayMs } from "./backoff.js"
import { openEventStream } from "./openEventStream.js"

/** Request headers, e.g. `{ Authorization: "Bearer …" }`. */
export type WaleraHeaders = Record<string, string>

/** Headers, or a (possibly async) function called before every connection attempt (fresh tokens). */
export type WaleraHeadersInit = WaleraHeaders | (() => WaleraHeaders | Promise<WaleraHeaders>)

export type WaleraEventSourceInit = {
  /** Send cookies cross-origin (fetch `credentials: "include"`), as EventSource's own option. */
  withCredentials?: boolean
  /** Request headers; a function is called before every connection, so it can hand out fresh tokens. */
  headers?: WaleraHeadersInit
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch
  /** The reconnection time until the server sends `retry:` (default 3000 ms, as browsers use). */
  reconnectMs?: number
  /** The last event id to send on the first connection (default none). */
  lastEventId?: string
  /** No bytes (heartbeats count) for this long counts as a dropped connection; 0 = off (default, as EventSource). */
  idleTimeoutMs?: number
}

/**
 * EventSource over fetch. Same surface: `readyState` (`CONNECTING`, `OPEN`, `CLOSED`), `url`, `withCredentials`,
 * `onopen` / `onmessage` / `onerror`, `addEventListener(name)` for named events (a `MessageEvent` whose `data` is
 * the text and `lastEventId` the id), `close()`. Same rules: a refusal (any status but 200) or a body that is not
 * `text/event-stream` fails the connection for good (`CLOSED`, then `error`); a dropped stream fires `error` with
 * `CONNECTING` and reconnects after the reconnection time (the server's `retry:`), plus up to 10 % jitter, doubled
 * for every attempt in a row that failed to open (at most 60 s, or the `retry:` if longer), sending
 * `Last-Event-ID`.
 */
export class WaleraEventSource extends EventTarget {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSED = 2

  readonly url: string
  readonly withCredentials: boolean
  onopen: ((this: WaleraEventSource, ev: Event) => unknown) | null = null
  onmessage: ((this: WaleraEventSource, ev: MessageEvent) => unknown) | null = null
  onerror: ((this: WaleraEventSource, ev: Event) => unknown) | null = null

  #readyState = 0
  #lastEventId: string
  #reconnectMs: number
  readonly #init: WaleraEventSourceInit
  readonly #abort = new AbortController()
  #sleep: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined

  constructor(url: string | URL, init: WaleraEventSourceInit = {}) {
    super()
    this.url = new URL(url, (globalThis as { location?: { href: string } }).location?.href).href
    this.withCredentials = init.withCredentials === true
    this.#init = init
    this.#lastEventId = init.lastEventId ?? ""
    this.#reconnectMs = init.reconnectMs ?? 3000
    this.addEventListener("open", (ev) => this.onopen?.call(this, ev))
    this.addEventListener("message", (ev) => this.onmessage?.call(this, ev as MessageEvent))
    this.addEventListener("error", (ev) => this.onerror?.call(this, ev))
    // Like EventSource, the first connection starts after the constructor returns, so listeners can be added.
    queueMicrotask(() => void this.#run())
  }

  get readyState(): number {
    return this.#readyState
  }

  /** The id that is sent as `Last-Event-ID` on the next connection. */
  get lastEventId(): string {
    return this.#lastEventId
  }

  /** Aborts the stream or the wait and stops for good; no event follows. */
  close(): void {
    this.#readyState = WaleraEventSource.CLOSED
    this.#abort.abort()
    if (this.#sleep !== undefined) {
      clearTimeout(this.#sleep.timer)
      this.#sleep.wake()
    }
  }

  #fail(): void {
    if (this.#readyState === WaleraEventSource.CLOSED) return
    this.#readyState = WaleraEventSource.CLOSED
    this.dispatchEvent(new Event("error"))
  }

  async #run(): Promise<void> {
    const origin = new URL(this.url).origin
    const fetchFn: typeof fetch = this.#init.fetch ?? ((input, init) => globalThis.fetch(input, init))
    let failedInARow = 0
    while (this.#readyState !== WaleraEventSource.CLOSED) {
      let headers: WaleraHeaders
      try {
        const h = this.#init.headers
        headers = typeof h === "function" ? await h() : (h ?? {})
      } catch {
        return this.#fail()
      }
      if (this.#readyState === WaleraEventSource.CLOSED) return
      const end = await openEventStream(
        {
          url: this.url,
          headers,
          lastEventId: this.#lastEventId,
          withCredentials: this.withCredentials,
          fetch: fetchFn,
          idleTimeoutMs: this.#init.idleTimeoutMs ?? 0,
          signal: this.#abort.signal,
        },
        {
          open: () => {
            this.#readyState = WaleraEventSource.OPEN
            failedInARow = 0
            this.dispatchEvent(new Event("open"))
          },
          event: (ev) => {
            this.#lastEventId = ev.id
            this.dispatchEvent(new MessageEvent(ev.event, { data: ev.data, lastEventId: ev.id, origin }))
            return undefined
          },
        },
      )
      if (this.#readyState === WaleraEventSource.CLOSED) return
      if (end.kind === "refused" || (end.kind === "failed" && end.reason === "bad_content_type")) return this.#fail()
      if (end.kind === "ended") {
        this.#lastEventId = end.lastEventId
        if (end.retry !== undefined) this.#reconnectMs = end.retry
      } else failedInARow++
      this.#readyState = WaleraEventSource.CONNECTING
      this.dispatchEvent(new Event("error"))
      if (this.#readyState !== WaleraEventSource.CONNECTING) return // an error listener called close()
      const base = this.#reconnectMs * 2 ** Math.min(failedInARow, 16)
      await new Promise<void>((wake) => {
        this.#sleep = {
          timer: setTimeout(wake, retryDelayMs(Math.min(base, Math.max(this.#reconnectMs, 60_000)))),
          wake,
        }
      })
      this.#sleep = undefined
    }
  }
}
