// Port: what Walera reports about itself, named by what happened rather than by metric. The prom-client adapter
// turns each call into metric updates (docs/operations.md, "Metrics"); tests use an in-memory recorder.
// Called on hot paths, so every method is a plain synchronous function.
import { Context, type Effect } from "effect"
import type { BreakerStatus } from "../Breaker.ts"
import type { ErrorReason } from "../Frames.ts"

export type SubscriberKind = "exact" | "wildcard"
export type CloseReason = ErrorReason | "client_closed" | "shutdown"
export type FrameType = "tx" | "heartbeat" | "initial_data" | "resumed" | "error" | "shutdown"
export type DropReason = "multi_root" | "tx_too_large" | "slow_consumer"
export type AuthResult = "ok" | "unauthorized" | "forbidden" | "not_found" | "rate_limited" | "unavailable"
export type LimitKind = "global_concurrent" | "per_user_concurrent" | "auth_breaker_open" | "auth_concurrency"
export type ConnectionRejection = "max_connections" | "headers_timeout" | "pipelining" | "malformed"
export type ResumeResult = "hit" | "miss" | "over_budget"
export type DecodeErrorKind = "message" | "anomaly" | "transaction" | "relation"

export interface ObservabilityShape {
  readonly subscriberOpened: (kind: SubscriberKind) => void
  readonly subscriberClosed: (kind: SubscriberKind, reason: CloseReason) => void
  readonly framesSent: (type: FrameType, count: number) => void
  /** A transaction decoded: its size, and commit → decoded in seconds. */
  readonly txDecoded: (changes: number, lagSeconds: number) => void
  readonly txDelivered: (deliveries: number, fanoutSeconds: number) => void
  readonly txDropped: (reason: DropReason, count: number) => void
  readonly valuesSentAsText: (count: number) => void
  readonly authCall: (result: AuthResult, seconds: number) => void
  readonly breakerChanged: (status: BreakerStatus) => void
  readonly limitRejected: (kind: LimitKind) => void
  /** Every handshake answer, by HTTP status. */
  readonly openAnswered: (status: number) => void
  readonly connectionRejected: (reason: ConnectionRejection) => void
  readonly replicationStreaming: (streaming: boolean) => void
  readonly replicationRetried: () => void
  readonly slotLag: (bytes: number) => void
  readonly decodeError: (kind: DecodeErrorKind) => void
  readonly relationSkipped: () => void
  readonly resumed: (result: ResumeResult) => void
  readonly replayWindow: (transactions: number, bytes: number) => void
}

export class Observability extends Context.Service<Observability, ObservabilityShape>()("walera/Observability") {}

/** The Prometheus text of every metric, for the transport's /metrics route. */
export class MetricsExposition extends Context.Service<
  MetricsExposition,
  { readonly render: Effect.Effect<{ readonly contentType: string; readonly body: string }> }
>()("walera/MetricsExposition") {}
