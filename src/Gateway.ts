// The application side of the stream endpoints: the handshake in the exact order of
// SPEC §1.2, grant refresh with the breaker's bounded fail-open, health and readiness.
// It implements the StreamGateway port that the HTTP adapter calls.
import { randomUUID } from "node:crypto"
import { Clock, Effect, Layer, Schedule } from "effect"
import {
  acquire,
  type BreakerConfig,
  type BreakerState,
  initialBreaker,
  record,
  statusGauge,
  view,
} from "../domain/Breaker.ts"
import { type Channel, isValidRequestId, parseChannel } from "../domain/Channel.ts"
import { initialDataFrame, RETRY_FRAME } from "../domain/Frames.ts"
import { checkChannel, type Grant } from "../domain/Grant.ts"
import { jitteredRefreshDelayMs } from "../domain/Jitter.ts"
import { AuthBackend, type AuthUnavailable, type Credentials, type SessionAnswer } from "../domain/ports/AuthBackend.ts"
import {
  type Accept,
  type Headers,
  type OpenRequest,
  type Reject,
  StreamGateway,
} from "../domain/ports/StreamGateway.ts"
import { Metrics } from "../adapters/metrics/Metrics.ts"
import { Log } from "../adapters/telemetry/Log.ts"
import type { WaleraConfig } from "./Config.ts"
import { HubService, type Stream } from "./Hub.ts"

const JSON_HEADERS = { "content-type": "application/json" }
const reject = (status: number, body = "", headers: Record<string, string> = {}): Reject => ({
  _tag: "Reject",
  status,
  body,
  headers: body === "" ? headers : { ...JSON_HEADERS, ...headers },
})
const unavailable = (retryAfterSeconds: number, error: string) =>
  reject(503, JSON.stringify({ error }), { "retry-after": String(retryAfterSeconds) })

type Called =
  | { readonly kind: "refused"; readonly retryAfterSeconds: number }
  | { readonly kind: "answer"; readonly answer: SessionAnswer }
  | { readonly kind: "failure"; readonly failure: AuthUnavailable }

const header = (headers: Headers, name: string): string | undefined => {
  const v = headers[name]
  return typeof v === "string" ? v : v?.[0]
}

const parseCookies = (raw: string | undefined, allowed: ReadonlyArray<string>): string | undefined => {
  if (raw === undefined || allowed.length === 0) return undefined
  const kept: string[] = []
  for (const part of raw.split(";")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    if (allowed.includes(name)) kept.push(`${name}=${part.slice(eq + 1).trim()}`)
  }
  return kept.length === 0 ? undefined : kept.join("; ")
}

const NO_HEADERS: ReadonlyArray<readonly [string, string]> = []

export const credentialsOf = (headers: Headers, config: WaleraConfig["auth"]): Credentials | undefined => {
  const auth = header(headers, "authorization")
  const bearer = auth !== undefined && /^bearer\s+\S/i.test(auth) ? auth : undefined
  const cookie = parseCookies(header(headers, "cookie"), config.forwardedCookies)
  let forwarded: Array<readonly [string, string]> | undefined
  for (const name of config.forwardedHeaders) {
    const v = header(headers, name)
    if (v !== undefined) (forwarded ??= []).push([name, v])
  }
  if (bearer === undefined && cookie === undefined && forwarded === undefined) return undefined
  // Kept for the stream's lifetime (refresh), so no empty array per stream.
  return { authorization: bearer, cookie, headers: forwarded ?? NO_HEADERS }
}

export const layer = (config: WaleraConfig) =>
  Layer.effect(
    StreamGateway,
    Effect.gen(function* () {
      const hub = yield* HubService
      const auth = yield* AuthBackend
      const metrics = yield* Metrics
      const log = yield* Log
      const clock = yield* Clock.Clock
      const now = () => clock.currentTimeMillisUnsafe()
      const context = yield* Effect.context<AuthBackend>()
      const run = Effect.runForkWith(context)
      const breakerConfig: BreakerConfig = config.auth.breaker
      let breaker: BreakerState = initialBreaker(breakerConfig)
      let probeOk = false
      let probeError = "auth backend not probed yet"
      const ttlOf = (grant: Grant) => grant.ttlSeconds ?? config.auth.defaultTtlSeconds

      /** One backend call under the breaker (which may refuse it). */
      const callBackend = (channel: string, requestId: string, credentials: Credentials) =>
        Effect.gen(function* (): Effect.fn.Return<Called> {
          const gate = acquire(breaker, breakerConfig, now())
          breaker = gate.state
          metrics.breakerState.set(statusGauge(breaker.status))
          if (!gate.allowed)
            return { kind: "refused", retryAfterSeconds: Math.max(1, Math.ceil(gate.retryAfterMs / 1000)) }
          const started = performance.now()
          const result = yield* Effect.result(auth.openSession({ channel, requestId, credentials })).pipe(
            // A client that leaves mid-call says nothing about the backend; only a probe must be released.
            Effect.onInterrupt(() =>
              Effect.sync(() => {
                if (breaker.status === "half_open") breaker = record(breaker, breakerConfig, now(), false)
              }),
            ),
          )
          metrics.authDuration.observe((performance.now() - started) / 1000)
          const ok = result._tag === "Success"
          breaker = record(breaker, breakerConfig, now(), ok)
          metrics.breakerState.set(statusGauge(breaker.status))
          if (ok) {
            const answer: SessionAnswer = result.success
            const label =
              answer._tag === "Granted"
                ? "ok"
                : answer.status === 401
                  ? "unauthorized"
                  : answer.status === 403
                    ? "forbidden"
                    : "not_found"
            metrics.authRequests.labels(label).inc()
            return { kind: "answer", answer }
          }
          metrics.authRequests.labels("unavailable").inc()
          log.warn("auth backend unavailable", { request_id: requestId, channel, error: result.failure.message })
          return { kind: "failure", failure: result.failure }
        })

      const open = Effect.fn("Stream.open")(function* (request: OpenRequest) {
        // 1. path syntax
        const channel: Channel | undefined = parseChannel(request.path)
        if (channel === undefined) return reject(400, '{"error":"invalid_channel"}')
        yield* Effect.annotateCurrentSpan({ "walera.channel": channel.name })
        // 2. WAL streaming
        if (!hub.walStreaming || hub.closing) return unavailable(5, "wal_not_streaming")
        const epoch = hub.walEpoch
        // 3. global cap (slots held by handshakes in flight count too)
        if (hub.size + hub.pendingOpens >= config.limits.globalConcurrent) {
          metrics.limitRejected.labels("global_concurrent").inc()
          return unavailable(5, "too_many_streams")
        }
        hub.pendingOpens++
        try {
          // 4. credentials
          const credentials = credentialsOf(request.headers, config.auth)
          if (credentials === undefined) return reject(401, '{"error":"missing_credentials"}')
          // 5. request id
          const given = header(request.headers, "x-request-id")
          if (given !== undefined && !isValidRequestId(given)) return reject(400, '{"error":"invalid_request_id"}')
          const requestId = given ?? randomUUID()
          yield* Effect.annotateCurrentSpan({ "walera.request_id": requestId })
          // 6 + 7. breaker, then the backend
          const called = yield* callBackend(channel.name, requestId, credentials)
          if (called.kind === "refused") {
            metrics.limitRejected.labels("auth_breaker_open").inc()
            return unavailable(called.retryAfterSeconds, "auth_unavailable")
          }
          if (called.kind === "failure") return unavailable(5, "auth_unavailable")
          const answer = called.answer
          if (answer._tag === "Denied") return reject(answer.status, answer.body, JSON_HEADERS)
          const grant = answer.grant
          // 8. per-user cap: the slot is reserved now, so concurrent opens cannot overshoot it
          if (!hub.reserveUser(grant.userId, config.limits.perUserConcurrent)) {
            metrics.limitRejected.labels("per_user_concurrent").inc()
            return reject(429, '{"error":"too_many_streams_for_user"}')
          }
          // 9. roots and tables
          const check = checkChannel(grant, channel.table)
          if (check !== "ok") {
            hub.releaseUser(grant.userId)
            return reject(403, JSON.stringify({ error: check }))
          }
          // The replication session may have been lost while the backend answered.
          if (!hub.walStreaming || hub.walEpoch !== epoch || hub.closing) {
            hub.releaseUser(grant.userId)
            return unavailable(5, "wal_not_streaming")
          }

          let prelude = RETRY_FRAME
          if (grant.initialData !== undefined) {
            const frame = initialDataFrame(grant.initialData)
            if (Buffer.byteLength(frame) <= config.http.maxPayloadBytes) prelude += frame
            else log.warn("initial_data larger than http.max_payload_bytes, not sent", { request_id: requestId })
          }
          const ttl = ttlOf(grant)
          const accept: Accept = {
            _tag: "Accept",
            prelude: Buffer.from(prelude),
            attach: (sink) => {
              const at = now()
              if (grant.initialData !== undefined) metrics.eventsSent.labels("initial_data").inc()
              const stream = hub.attach({
                table: channel.table,
                pk: channel.pk,
                channel: channel.name,
                userId: grant.userId,
                requestId,
                credentials,
                tables: grant.tables,
                sink,
                refreshAt: ttl === 0 ? Number.POSITIVE_INFINITY : at + jitteredRefreshDelayMs(ttl, Math.random()),
                expiresAt: ttl === 0 ? Number.POSITIVE_INFINITY : at + ttl * 1000,
              })
              return { detach: hub.detacher(stream) }
            },
            cancel: () => hub.releaseUser(grant.userId),
          }
          return accept
        } finally {
          hub.pendingOpens--
        }
      })

      const refresh = Effect.fn("Stream.refresh")(function* (s: Stream) {
        yield* Effect.annotateCurrentSpan({ "walera.channel": s.channel, "walera.stream_id": s.id })
        const requestId = randomUUID()
        const called = yield* callBackend(s.channel, requestId, s.credentials)
        const at = now()
        if (!s.open) return
        if (called.kind === "answer") {
          const answer = called.answer
          if (
            answer._tag === "Denied" ||
            checkChannel(answer.grant, s.table) !== "ok" ||
            answer.grant.userId !== s.userId
          ) {
            hub.end(s, "auth_revoked")
            return
          }
          hub.replaceWhitelist(s, answer.grant.tables)
          const ttl = ttlOf(answer.grant)
          s.expiresAt = ttl === 0 ? Number.POSITIVE_INFINITY : at + ttl * 1000
          s.refreshAt = ttl === 0 ? Number.POSITIVE_INFINITY : at + jitteredRefreshDelayMs(ttl, Math.random())
          return
        }
        // Bounded fail-open: keep the last grant until it expires, try again meanwhile.
        if (at >= s.expiresAt) {
          hub.end(s, "auth_unavailable")
          return
        }
        const retryIn = Math.min(5000, Math.max(250, (s.expiresAt - at) / 2))
        s.refreshAt = at + retryIn * (0.75 + Math.random() * 0.5)
      })

      hub.onRefreshDue = (s) => {
        s.refreshing = true
        run(refresh(s).pipe(Effect.ensuring(Effect.sync(() => void (s.refreshing = false)))))
      }

      const sweep = Effect.sync(() => {
        hub.sweep(now())
        metrics.breakerState.set(statusGauge(view(breaker, breakerConfig, now()).status))
      })
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(hub.sweepIntervalMs)))

      const probe = auth.probe.pipe(
        Effect.match({
          onSuccess: () => {
            probeOk = true
            probeError = ""
          },
          onFailure: (e) => {
            probeOk = false
            probeError = `auth backend probe failed: ${e.message}`
          },
        }),
      )
      yield* Effect.forkScoped(Effect.repeat(probe, Schedule.spaced("5 seconds")))

      const healthz = () =>
        hub.walStreaming
          ? { status: 200, body: '{"status":"ok"}' }
          : { status: 503, body: '{"status":"unavailable","reason":"wal_not_streaming"}' }

      const readyz = () => {
        const reasons: string[] = []
        if (!hub.walStreaming) reasons.push("replication connection not streaming")
        if (!probeOk) reasons.push(probeError)
        const breakerView = view(breaker, breakerConfig, now())
        if (breakerView.status === "open") reasons.push("auth circuit breaker open")
        if (hub.closing) reasons.push("shutting down")
        return reasons.length === 0
          ? { status: 200, body: '{"status":"ok"}' }
          : {
              status: 503,
              body: JSON.stringify({ status: "unavailable", reason: reasons.join("; "), breaker: breakerView.status }),
            }
      }

      return StreamGateway.of({
        open,
        healthz,
        readyz,
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
        shutdown: () => hub.shutdown(),
        activeStreams: () => hub.size,
      })
    }),
  )
