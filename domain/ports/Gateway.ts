// Port: what a transport (HTTP/1.1, HTTP/2) asks of the application, in the domain's words. The transport
// parses requests and owns sockets and status codes; the gateway decides who may subscribe and what they
// receive, in the handshake order of docs/operations.md ("The handshake").
import { Context, type Effect, type Scope } from "effect"
import type { BreakerStatus } from "../Breaker.ts"
import type { Channel } from "../Channel.ts"
import type { Credentials, DeniedStatus } from "./AuthBackend.ts"

/** A subscription request as the transport parsed it; undefined fields are what the transport could not parse. */
export interface OpenRequest {
  /** undefined: the path is not a valid channel. */
  readonly channel: Channel | undefined
  /** undefined: no bearer and no allow-listed cookie or header. */
  readonly credentials: Credentials | undefined
  /** undefined: the client sent a malformed X-Request-ID (an absent one was generated). */
  readonly requestId: string | undefined
  /** Last-Event-ID (header or ?last_event_id=), when the client sent one. */
  readonly lastEventId: string | undefined
}

export type Refusal =
  | { readonly _tag: "InvalidChannel" }
  | { readonly _tag: "WalNotStreaming" }
  | { readonly _tag: "ShuttingDown" }
  | { readonly _tag: "TooManyStreams" }
  | { readonly _tag: "MissingCredentials" }
  | { readonly _tag: "InvalidRequestId" }
  | { readonly _tag: "AuthBreakerOpen"; readonly retryAfterSeconds: number }
  | { readonly _tag: "AuthBusy" }
  | {
      readonly _tag: "Denied"
      readonly status: DeniedStatus
      readonly body: string
      readonly retryAfterSeconds: number | undefined
    }
  | { readonly _tag: "AuthUnavailable" }
  | { readonly _tag: "TooManyStreamsForUser" }
  | { readonly _tag: "NotARoot" }
  | { readonly _tag: "NotAllowed" }
  /** The replay window no longer holds what was decoded since the handshake began: retry now rather than miss it. */
  | { readonly _tag: "ReplayUnavailable" }

/** One subscriber's byte sink, as the fan-out sees it: bytes out, back-pressure information in. */
export interface SubscriberSink {
  /** Queues bytes for the client. */
  readonly write: (bytes: Uint8Array) => void
  /** Bytes queued but not yet accepted by the client's connection. */
  readonly pending: () => number
  /** Holds writes back until `uncork`, so events decoded together leave in one write. */
  readonly cork: () => void
  readonly uncork: () => void
  /** Writes the last bytes (if any) and ends the response. */
  readonly close: (last?: Uint8Array) => void
  /**
   * The connection this sink shares with other sinks (an HTTP/2 session), if any. The sweep visits the subscribers of
   * one connection in the same tick, so their heartbeats leave in one write of that connection rather than in one
   * write per tick over every connection.
   */
  readonly connection?: object | undefined
}

export interface Attached {
  readonly _tag: "Attached"
  /**
   * The first bytes of the response: `retry:`, then `initial_data` or `resumed`, then the transactions replayed
   * from the window. The transport writes them with the response headers, before anything else.
   */
  readonly preface: Uint8Array
  /** The client went away: free the subscriber now. */
  readonly detach: () => void
}

export interface Accept {
  readonly _tag: "Accept"
  /**
   * Registers the subscriber — synchronously, so no transaction falls between the replay and live delivery — and
   * takes over what the handshake reserved. Must be called inside the open's scope; from then on the sink receives
   * every transaction decoded after the preface. May still refuse (ReplayUnavailable) before anything is sent.
   */
  readonly attach: (sink: SubscriberSink) => Attached | Refusal
}

export type Decision = Accept | Refusal

export interface Health {
  readonly replicationStreaming: boolean
  readonly breaker: BreakerStatus
  /** undefined: the last probe answered; otherwise why it did not. */
  readonly authProbeError: string | undefined
  readonly shuttingDown: boolean
}

export class Gateway extends Context.Service<
  Gateway,
  {
    /**
     * The handshake. Everything it reserves belongs to the given scope until `attach` takes it over, so a client
     * that goes away (interruption) or a refusal gives every slot back.
     */
    readonly open: (request: OpenRequest) => Effect.Effect<Decision, never, Scope.Scope>
    readonly health: () => Health
    /** Refuses new opens from now on, sends every subscriber its reconnect delay and `shutdown`, and ends it. */
    readonly shutdown: Effect.Effect<void>
    readonly subscriberCount: () => number
  }
>()("walera/Gateway") {}
