// Port: the product's auth backend, asked on every subscriber open and grant refresh (docs/auth.md).
import { Context, type Effect, Schema } from "effect"
import type { Channel } from "../Channel.ts"
import type { Grant } from "../Grant.ts"

/** The credentials of one open, kept in memory for refreshes and never logged. */
export interface Credentials {
  /** The full `Authorization` header value (`Bearer …`), when the client sent one. */
  readonly authorization: string | undefined
  /** Allow-listed cookies, already serialised as a `Cookie` header value. */
  readonly cookie: string | undefined
  /** Allow-listed headers (lower-case names). */
  readonly headers: ReadonlyArray<readonly [string, string]>
}

export interface SessionRequest {
  readonly channel: Channel
  readonly requestId: string
  readonly credentials: Credentials
}

/** Statuses the backend may answer a session with, passed through to the client. */
export type DeniedStatus = 401 | 403 | 404 | 429

export type SessionAnswer =
  | { readonly _tag: "Granted"; readonly grant: Grant }
  | {
      readonly _tag: "Denied"
      readonly status: DeniedStatus
      readonly body: string
      /** 429 only: the backend's Retry-After, in seconds. */
      readonly retryAfterSeconds: number | undefined
    }

export class AuthUnavailable extends Schema.TaggedError<AuthUnavailable>()("AuthUnavailable", {
  /** timeout, transport, status (5xx, other), malformed (bad JSON or shape, missing user_id), too_large */
  reason: Schema.Literals(["timeout", "transport", "status", "malformed", "too_large"]),
  message: Schema.String,
}) {}

export class AuthBackend extends Context.Service<
  AuthBackend,
  {
    /**
     * One call. Its timeout runs from the moment the request is on the wire; interrupting the effect abandons
     * the call (the connection is closed).
     */
    readonly openSession: (request: SessionRequest) => Effect.Effect<SessionAnswer, AuthUnavailable>
    /** A credential-less call that only proves the backend answers (any status below 500 but 429). */
    readonly probe: Effect.Effect<void, AuthUnavailable>
  }
>()("walera/AuthBackend") {}
