// AuthBackend over HTTP: `POST {backend}/auth/sessions` with the caller's forwarded credentials, a timeout that
// runs from the moment the request has a connection (Walera's own queue is never charged to the backend), and a
// 64 KiB cap on the answer. Every failure mode of the backend becomes AuthUnavailable; nothing it sends can crash
// the process. With tracing on, the call carries the open's `traceparent`.
import http from "node:http"
import https from "node:https"
import { Effect, Layer } from "effect"
import type { Channel } from "../../domain/Channel.ts"
import { parseGrant } from "../../domain/Grant.ts"
import {
  AuthBackend,
  AuthUnavailable,
  type SessionAnswer,
  type SessionRequest,
} from "../../domain/ports/AuthBackend.ts"

export interface HttpAuthConfig {
  readonly backendUrl: string
  readonly requestTimeoutMs: number
  /** auth.max_concurrent_calls: the connection pool is sized so no call waits for a socket. */
  readonly maxConcurrentCalls: number
  /** Send the current span as `traceparent` (tracing on). */
  readonly propagateTrace: boolean
}

export const MAX_AUTH_BODY_BYTES = 64 * 1024
const MAX_RETRY_AFTER_SECONDS = 24 * 3600

interface RawAnswer {
  readonly status: number
  readonly body: string
  readonly retryAfter: string | undefined
}

const post = (
  url: URL,
  agent: http.Agent,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Effect.Effect<RawAnswer, AuthUnavailable> =>
  Effect.callback<RawAnswer, AuthUnavailable>((resume) => {
    const lib = url.protocol === "https:" ? https : http
    let settled = false
    let timer: NodeJS.Timeout | undefined
    const settle = (effect: Effect.Effect<RawAnswer, AuthUnavailable>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(effect)
    }
    const unavailable = (reason: AuthUnavailable["reason"], message: string) =>
      settle(Effect.fail(new AuthUnavailable({ reason, message })))
    const req = lib.request(url, { method: "POST", agent, headers }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on("data", (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_AUTH_BODY_BYTES) {
          unavailable("too_large", `auth backend answer larger than ${MAX_AUTH_BODY_BYTES} bytes`)
          req.destroy()
          return
        }
        chunks.push(chunk)
      })
      res.on("end", () => {
        const retryAfter = res.headers["retry-after"]
        settle(
          Effect.succeed({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            retryAfter: typeof retryAfter === "string" ? retryAfter : undefined,
          }),
        )
      })
      res.on("error", (e) => unavailable("transport", e.message))
    })
    // The clock starts when the request is on the wire: time spent in Walera before that (its own queue, a busy
    // event loop) is not the backend's. A connection that cannot even be made in that time is the backend's.
    const expire = (what: string) => () => {
      unavailable("timeout", `auth backend ${what} within ${timeoutMs} ms`)
      req.destroy()
    }
    timer = setTimeout(expire("did not accept the connection"), timeoutMs)
    req.once("finish", () => {
      clearTimeout(timer)
      if (!settled) timer = setTimeout(expire("did not answer"), timeoutMs)
    })
    req.on("error", (e) => unavailable("transport", e.message))
    req.end(body)
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      req.destroy()
    })
  })

/** Retry-After as whole seconds (delta-seconds or an HTTP date), bounded; undefined when absent or unreadable. */
export const retryAfterSeconds = (value: string | undefined, nowMs: number): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d{1,10}$/.test(text)) return Math.min(Number(text), MAX_RETRY_AFTER_SECONDS)
  const at = Date.parse(text)
  if (Number.isNaN(at)) return undefined
  return Math.min(Math.max(0, Math.ceil((at - nowMs) / 1000)), MAX_RETRY_AFTER_SECONDS)
}

export const toAnswer = (raw: RawAnswer, nowMs = Date.now()): Effect.Effect<SessionAnswer, AuthUnavailable> => {
  if (raw.status === 200) {
    const parsed = parseGrant(raw.body)
    return parsed._tag === "Valid"
      ? Effect.succeed({ _tag: "Granted", grant: parsed.grant })
      : Effect.fail(new AuthUnavailable({ reason: "malformed", message: `auth backend answer: ${parsed.reason}` }))
  }
  if (raw.status === 401 || raw.status === 403 || raw.status === 404 || raw.status === 429) {
    return Effect.succeed({
      _tag: "Denied",
      status: raw.status,
      body: raw.body,
      retryAfterSeconds: raw.status === 429 ? retryAfterSeconds(raw.retryAfter, nowMs) : undefined,
    })
  }
  return Effect.fail(new AuthUnavailable({ reason: "status", message: `auth backend answered ${raw.status}` }))
}

/** The session request body: the channel string and its parts, so the backend never parses it. */
export const sessionBody = (channel: Channel): string =>
  JSON.stringify({ channel: channel.name, table: channel.table, pk: channel.pk })

export const layer = (config: HttpAuthConfig) =>
  Layer.effect(
    AuthBackend,
    Effect.gen(function* () {
      const url = new URL(`${config.backendUrl.replace(/\/+$/, "")}/auth/sessions`)
      // One socket per call in flight (plus the readiness probe): no call waits in the agent's queue. All of them
      // may stay idle between bursts: with fewer kept, a burst of opens closes and reconnects sockets on every wave,
      // and each new socket is garbage the heap keeps until its next major collection. The backend's keep-alive
      // timeout closes what stays unused.
      const sockets = config.maxConcurrentCalls + 1
      const options = { keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets }
      const agent = url.protocol === "https:" ? new https.Agent(options) : new http.Agent(options)
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))

      const openSession = Effect.fn("AuthBackend.openSession")(function* (request: SessionRequest) {
        const headers: Record<string, string> = {}
        for (const [name, value] of request.credentials.headers) headers[name] = value
        if (request.credentials.cookie !== undefined) headers["cookie"] = request.credentials.cookie
        if (request.credentials.authorization !== undefined)
          headers["authorization"] = request.credentials.authorization
        headers["content-type"] = "application/json"
        headers["accept"] = "application/json"
        headers["x-request-id"] = request.requestId
        yield* Effect.annotateCurrentSpan({
          "walera.channel": request.channel.name,
          "walera.request_id": request.requestId,
        })
        if (config.propagateTrace) {
          const span = yield* Effect.currentSpan.pipe(Effect.catch(() => Effect.succeed(undefined)))
          if (span !== undefined)
            headers["traceparent"] = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
        }
        const raw = yield* post(url, agent, headers, sessionBody(request.channel), config.requestTimeoutMs)
        return yield* toAnswer(raw)
      })

      const probe = post(
        url,
        agent,
        { "content-type": "application/json", "x-request-id": "walera-readiness-probe" },
        JSON.stringify({ channel: "_walera_probe", table: "_walera_probe", pk: null }),
        config.requestTimeoutMs,
      ).pipe(
        Effect.flatMap((raw) =>
          raw.status < 500 && raw.status !== 429
            ? Effect.void
            : Effect.fail(new AuthUnavailable({ reason: "status", message: `auth backend answered ${raw.status}` })),
        ),
        Effect.withSpan("AuthBackend.probe"),
      )

      return AuthBackend.of({ openSession, probe })
    }),
  )
