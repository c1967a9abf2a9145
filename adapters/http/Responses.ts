// The HTTP answers of the stream endpoints and probes: every refusal's status, body and Retry-After (the table in
// docs/operations.md, "The handshake"), the SSE response headers, CORS, and the health bodies.
import type { Health, Refusal } from "../../domain/ports/Gateway.ts"

export interface Answer {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

export const BASE_HEADERS: Readonly<Record<string, string>> = { "x-content-type-options": "nosniff", vary: "Origin" }
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  ...BASE_HEADERS,
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
}
const JSON_TYPE = { "content-type": "application/json" }

const json = (status: number, error: string, retryAfterSeconds?: number): Answer => ({
  status,
  body: JSON.stringify({ error }),
  headers: retryAfterSeconds === undefined ? JSON_TYPE : { ...JSON_TYPE, "retry-after": String(retryAfterSeconds) },
})

export const refusalAnswer = (r: Refusal): Answer => {
  switch (r._tag) {
    case "InvalidChannel":
      return json(400, "invalid_channel")
    case "WalNotStreaming":
      return json(503, "wal_not_streaming", 5)
    case "ShuttingDown":
      return json(503, "shutting_down", 5)
    case "TooManyStreams":
      return json(503, "too_many_streams", 5)
    case "MissingCredentials":
      return json(401, "missing_credentials")
    case "InvalidRequestId":
      return json(400, "invalid_request_id")
    case "AuthBreakerOpen":
      return json(503, "auth_unavailable", r.retryAfterSeconds)
    case "AuthBusy":
      return json(503, "auth_busy", 1)
    case "AuthUnavailable":
      return json(503, "auth_unavailable", 5)
    case "Denied":
      return {
        status: r.status,
        body: r.body,
        headers:
          r.retryAfterSeconds === undefined ? JSON_TYPE : { ...JSON_TYPE, "retry-after": String(r.retryAfterSeconds) },
      }
    case "TooManyStreamsForUser":
      return json(429, "too_many_streams_for_user")
    case "NotARoot":
      return json(403, "not_a_root")
    case "NotAllowed":
      return json(403, "not_allowed")
    case "ReplayUnavailable":
      return json(503, "replay_unavailable", 1)
  }
}

export const notFound: Answer = json(404, "not_found")
export const methodNotAllowed = (allow: string): Answer => ({
  ...json(405, "method_not_allowed"),
  headers: { ...JSON_TYPE, allow },
})
export const internalError: Answer = json(500, "internal")
export const pipelined: Answer = {
  status: 400,
  body: JSON.stringify({ error: "pipelining_not_supported" }),
  headers: { ...JSON_TYPE, connection: "close" },
}

const ok: Answer = { status: 200, body: '{"status":"ok"}', headers: JSON_TYPE }

export const livez = (): Answer => ok

export const healthz = (h: Health): Answer =>
  h.replicationStreaming
    ? ok
    : { status: 503, body: '{"status":"unavailable","reason":"wal_not_streaming"}', headers: JSON_TYPE }

export const readyz = (h: Health): Answer => {
  const reasons: string[] = []
  if (!h.replicationStreaming) reasons.push("replication connection not streaming")
  if (h.authProbeError !== undefined) reasons.push(h.authProbeError)
  if (h.breaker === "open") reasons.push("auth circuit breaker open")
  if (h.shuttingDown) reasons.push("shutting down")
  return reasons.length === 0
    ? ok
    : {
        status: 503,
        body: JSON.stringify({ status: "unavailable", reason: reasons.join("; "), breaker: h.breaker }),
        headers: JSON_TYPE,
      }
}

export const preflightHeaders = (allowHeaders: string): Readonly<Record<string, string>> => ({
  "access-control-allow-methods": "GET, OPTIONS",
  "access-control-allow-headers": allowHeaders,
  "access-control-max-age": "86400",
})
