// The Observability port on prom-client: every metric Walera exports (docs/operations.md, "Metrics"), on its own
// registry with Node process metrics (event-loop lag, heap, handles), and the Prometheus text for /metrics.
// Labelled children are bound once, so the hot path only adds to numbers.
import { Context, Effect, Layer } from "effect"
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client"
import type { BreakerStatus } from "../../domain/Breaker.ts"
import {
  type CloseReason,
  MetricsExposition,
  Observability,
  type ObservabilityShape,
} from "../../domain/ports/Observability.ts"
import { FastHistogram } from "./FastHistogram.ts"

const BREAKER_VALUE: Record<BreakerStatus, number> = { closed: 0, open: 1, half_open: 2 }
const CLOSE_REASONS: ReadonlyArray<CloseReason> = [
  "client_closed",
  "slow_consumer",
  "tx_too_large",
  "auth_revoked",
  "auth_unavailable",
  "wal_disconnected",
  "shutdown",
]

export const make = (version: string) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 })
  const r = [registry]
  const counter = (name: string, help: string, labels: ReadonlyArray<string> = []) =>
    new Counter({ name, help, labelNames: [...labels], registers: r })
  const gauge = (name: string, help: string, labels: ReadonlyArray<string> = []) =>
    new Gauge({ name, help, labelNames: [...labels], registers: r })
  // Observed per transaction or per open: no labels, so the hot-path histogram renders the same lines for less.
  const histogram = (name: string, help: string, buckets: Array<number>) =>
    new FastHistogram(name, help, buckets, registry)

  gauge("walera_build_info", "Always 1; the version label says which Walera runs.", ["version"]).labels(version).set(1)
  const subscribersActive = gauge(
    "walera_subscribers_active",
    "Open SSE streams, by type (exact = one row, wildcard = /all).",
    ["type"],
  )
  const eventsSent = counter(
    "walera_events_sent_total",
    "SSE frames written, by type (tx, heartbeat, initial_data, resumed, error, shutdown).",
    ["type"],
  )
  const txDropped = counter(
    "walera_tx_dropped_total",
    "Transactions not delivered to a subscriber, by reason (multi_root, tx_too_large, slow_consumer).",
    ["reason"],
  )
  const disconnects = counter("walera_subscriber_disconnects_total", "Streams ended, by reason.", ["reason"])
  const authRequests = counter(
    "walera_auth_requests_total",
    "Calls to the auth backend (opens and refreshes), by result (ok, unauthorized, forbidden, not_found, rate_limited, unavailable).",
    ["result"],
  )
  const authDuration = histogram(
    "walera_auth_request_duration_seconds",
    "Auth backend call duration, from the request on the wire to the answer.",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
  )
  const breakerState = gauge(
    "walera_auth_circuit_breaker_state",
    "Auth circuit breaker: 0 = closed (calls flow), 1 = open (opens refused without calling the backend), 2 = half_open (one probe call decides).",
  )
  const limitRejected = counter(
    "walera_limit_rejected_total",
    "Stream opens refused by a limit: global_concurrent (503), per_user_concurrent (429), auth_breaker_open (503, backend not called), auth_concurrency (503, auth.max_concurrent_calls in flight).",
    ["kind"],
  )
  const opens = counter(
    "walera_stream_opens_total",
    "Stream handshakes answered, by HTTP status (200 = stream opened).",
    ["status"],
  )
  const connectionsRejected = counter(
    "walera_connections_rejected_total",
    "Client connections closed by a protection, by reason (max_connections, headers_timeout, pipelining, malformed).",
    ["reason"],
  )
  const pgStatus = gauge("walera_pg_connection_status", "1 while the replication connection streams, else 0.")
  const pgReconnects = counter("walera_pg_reconnects_total", "Replication sessions lost and retried.")
  const lsnLag = gauge(
    "walera_wal_lsn_lag_bytes",
    "WAL bytes between the server's current LSN and Walera's slot confirmed_flush_lsn (sampled every 5 s).",
  )
  const walLag = histogram(
    "walera_wal_lag_seconds",
    "Time from commit in PostgreSQL to decoded in Walera.",
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  )
  const fanoutLatency = histogram(
    "walera_fanout_latency_seconds",
    "Time from decoded to written to every subscribed connection, per transaction.",
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  )
  const txSize = histogram(
    "walera_wal_tx_size_changes",
    "Changes per decoded transaction.",
    [1, 2, 5, 10, 100, 1000, 10000, 100000],
  )
  const decodeErrors = counter(
    "walera_wal_decode_errors_total",
    "WAL messages or transactions that could not be decoded, by kind (message, anomaly, transaction, relation).",
    ["kind"],
  )
  const valueFallbacks = counter(
    "walera_wal_value_fallbacks_total",
    "Column values sent as PostgreSQL text because they could not be mapped to JSON.",
  )
  const relationsSkipped = counter(
    "walera_wal_relations_skipped_total",
    "Relations whose changes are skipped (no primary key, not in schema public).",
  )
  const walTx = counter("walera_wal_transactions_total", "Transactions decoded from the WAL.")
  const resumes = counter(
    "walera_resume_total",
    "Opens that asked to resume (Last-Event-ID) with router.resume_window on, by result (hit, miss, over_budget).",
    ["result"],
  )
  const windowTx = gauge("walera_replay_window_transactions", "Transactions held in the replay window.")
  const windowBytes = gauge("walera_replay_window_bytes", "Bytes held in the replay window.")

  for (const t of ["exact", "wildcard"]) subscribersActive.labels(t).set(0)
  for (const t of ["tx", "heartbeat", "initial_data", "resumed", "error", "shutdown"]) eventsSent.labels(t).inc(0)
  for (const t of ["multi_root", "tx_too_large", "slow_consumer"]) txDropped.labels(t).inc(0)
  for (const t of CLOSE_REASONS) disconnects.labels(t).inc(0)
  for (const t of ["ok", "unauthorized", "forbidden", "not_found", "rate_limited", "unavailable"])
    authRequests.labels(t).inc(0)
  for (const t of ["global_concurrent", "per_user_concurrent", "auth_breaker_open", "auth_concurrency"])
    limitRejected.labels(t).inc(0)
  for (const t of ["max_connections", "headers_timeout", "pipelining", "malformed"])
    connectionsRejected.labels(t).inc(0)
  for (const t of ["message", "anomaly", "transaction", "relation"]) decodeErrors.labels(t).inc(0)
  for (const t of ["hit", "miss", "over_budget"]) resumes.labels(t).inc(0)
  opens.labels("200").inc(0)
  breakerState.set(0)
  pgStatus.set(0)
  windowTx.set(0)
  windowBytes.set(0)

  const active = { exact: subscribersActive.labels("exact"), wildcard: subscribersActive.labels("wildcard") }
  const sentTx = eventsSent.labels("tx")
  const opensByStatus = new Map<number, ReturnType<typeof opens.labels>>()

  const observability: ObservabilityShape = {
    subscriberOpened: (kind) => active[kind].inc(),
    subscriberClosed: (kind, reason) => {
      active[kind].dec()
      disconnects.labels(reason).inc()
    },
    framesSent: (type, count) => (type === "tx" ? sentTx.inc(count) : eventsSent.labels(type).inc(count)),
    txDecoded: (changes, lagSeconds) => {
      walTx.inc()
      txSize.observe(changes)
      walLag.observe(lagSeconds)
    },
    txDelivered: (_deliveries, seconds) => fanoutLatency.observe(seconds),
    txDropped: (reason, count) => txDropped.labels(reason).inc(count),
    valuesSentAsText: (count) => valueFallbacks.inc(count),
    authCall: (result, seconds) => {
      authRequests.labels(result).inc()
      authDuration.observe(seconds)
    },
    breakerChanged: (status) => breakerState.set(BREAKER_VALUE[status]),
    limitRejected: (kind) => limitRejected.labels(kind).inc(),
    openAnswered: (status) => {
      let child = opensByStatus.get(status)
      if (child === undefined) opensByStatus.set(status, (child = opens.labels(String(status))))
      child.inc()
    },
    connectionRejected: (reason) => connectionsRejected.labels(reason).inc(),
    replicationStreaming: (streaming) => pgStatus.set(streaming ? 1 : 0),
    replicationRetried: () => pgReconnects.inc(),
    slotLag: (bytes) => lsnLag.set(bytes),
    decodeError: (kind) => decodeErrors.labels(kind).inc(),
    relationSkipped: () => relationsSkipped.inc(),
    resumed: (result) => resumes.labels(result).inc(),
    replayWindow: (transactions, bytes) => {
      windowTx.set(transactions)
      windowBytes.set(bytes)
    },
  }
  const exposition = MetricsExposition.of({
    render: Effect.promise(async () => ({ contentType: registry.contentType, body: await registry.metrics() })),
  })
  return { observability, exposition, registry }
}

/** Provides both Observability and MetricsExposition from one registry. */
export const layer = (version: string) =>
  Layer.syncContext(() => {
    const made = make(version)
    return Context.make(Observability, made.observability).pipe(Context.add(MetricsExposition, made.exposition))
  })
