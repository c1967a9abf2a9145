// AuthBackend over HTTP: `POST {backend}/auth/sessions` with the caller's forwarded
// credentials, a hard timeout and a 64 KiB cap on the answer. Every failure mode of the
// backend becomes AuthUnavailable; nothing the backend sends can crash the process.
import http from "node:http"
import https from "node:https"
import { Effect, Layer } from "effect"
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
}

export const MAX_AUTH_BODY_BYTES = 64 * 1024

interface RawAnswer {
  readonly status: number
  readonly body: string
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
      res.on("end", () =>
        settle(Effect.succeed({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") })),
      )
      res.on("error", (e) => unavailable("transport", e.message))
    })
    const timer = setTimeout(() => {
      unavailable("timeout", `auth backend did not answer within ${timeoutMs} ms`)
      req.destroy()
    }, timeoutMs)
    req.on("error", (e) => unavailable("transport", e.message))
    req.end(body)
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      req.destroy()
    })
  })

export const toAnswer = (raw: RawAnswer): Effect.Effect<SessionAnswer, AuthUnavailable> => {
  if (raw.status === 200) {
    const parsed = parseGrant(raw.body)
    return parsed.ok
      ? Effect.succeed({ _tag: "Granted", grant: parsed.grant })
      : Effect.fail(new AuthUnavailable({ reason: "malformed", message: `auth backend answer: ${parsed.reason}` }))
  }
  if (raw.status === 401 || raw.status === 403 || raw.status === 404) {
    return Effect.succeed({ _tag: "Denied", status: raw.status, body: raw.body })
  }
  return Effect.fail(new AuthUnavailable({ reason: "status", message: `auth backend answered ${raw.status}` }))
}

export const layer = (config: HttpAuthConfig) =>
  Layer.effect(
    AuthBackend,
    Effect.gen(function* () {
      const url = new URL(`${config.backendUrl.replace(/\/+$/, "")}/auth/sessions`)
      const agent =
        url.protocol === "https:"
          ? new https.Agent({ keepAlive: true, maxSockets: 256 })
          : new http.Agent({ keepAlive: true, maxSockets: 256 })
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
        yield* Effect.annotateCurrentSpan({ "walera.channel": request.channel, "walera.request_id": request.requestId })
        const raw = yield* post(
          url,
          agent,
          headers,
          JSON.stringify({ channel: request.channel }),
          config.requestTimeoutMs,
        )
        return yield* toAnswer(raw)
      })

      const probe = post(
        url,
        agent,
        { "content-type": "application/json", "x-request-id": "walera-readiness-probe" },
        JSON.stringify({ channel: "_walera_probe" }),
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
