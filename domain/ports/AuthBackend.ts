// Port: the product's auth backend, asked on every stream open and refresh (SPEC §3).
import { Context, type Effect, Schema } from "effect"
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
  readonly channel: string
  readonly requestId: string
  readonly credentials: Credentials
}

export type SessionAnswer =
  | { readonly _tag: "Granted"; readonly grant: Grant }
  | { readonly _tag: "Denied"; readonly status: 401 | 403 | 404; readonly body: string }

export class AuthUnavailable extends Schema.TaggedError<AuthUnavailable>()("AuthUnavailable", {
  /** timeout, transport, status (5xx, 429, other), malformed (bad JSON or shape, missing user_id), too_large */
  reason: Schema.Literals(["timeout", "transport", "status", "malformed", "too_large"]),
  message: Schema.String,
}) {}

export class AuthBackend extends Context.Service<
  AuthBackend,
  {
    readonly openSession: (request: SessionRequest) => Effect.Effect<SessionAnswer, AuthUnavailable>
    /** A credential-less call that only proves the backend answers (any status below 500 but 429). */
    readonly probe: Effect.Effect<void, AuthUnavailable>
  }
>()("walera/AuthBackend") {}
