// Every Prometheus metric Walera exports (SPEC §9), on its own prom-client registry with
// Node process metrics (event-loop lag, heap, handles). Labelled children are bound once
// so the hot path only increments numbers.
import { Context, Effect, Layer } from "effect"
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client"

const make = () => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 })
  const r = [registry]

  const subscribersActive = new Gauge({
    name: "walera_subscribers_active",
    help: "Open SSE streams, by type (exact = one row, wildcard = /all).",
    labelNames: ["type"],
    registers: r,
  })
  const eventsSent = new Counter({
    name: "walera_events_sent_total",
    help: "SSE frames written to sockets, by type (tx, heartbeat, initial_data, error, shutdown).",
    labelNames: ["type"],
    registers: r,
  })
  const txDropped = new Counter({
    name: "walera_tx_dropped_total",
    help: "Transactions not delivered to a subscriber, by reason (multi_root, tx_too_large, slow_consumer).",
    labelNames: ["reason"],
    registers: r,
  })
  const disconnects = new Counter({
    name: "walera_subscriber_disconnects_total",
    help: "Streams ended, by reason.",
    labelNames: ["reason"],
    registers: r,
  })
  const authRequests = new Counter({
    name: "walera_auth_requests_total",
    help: "Calls to the auth backend (opens and refreshes), by result (ok, unauthorized, forbidden, not_found, unavailable).",
    labelNames: ["result"],
    registers: r,
  })
  const authDuration = new Histogram({
    name: "walera_auth_request_duration_seconds",
    help: "Auth backend call duration.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: r,
  })
  const breakerState = new Gauge({
    name: "walera_auth_circuit_breaker_state",
    help: "Auth circuit breaker: 0 closed, 1 open, 2 half-open.",
    registers: r,
  })
  const limitRejected = new Counter({
    name: "walera_limit_rejected_total",
    help: "Stream opens refused by a limit: global_concurrent (503), per_user_concurrent (429), auth_breaker_open (503, backend not called).",
    labelNames: ["kind"],
    registers: r,
  })
  const pgStatus = new Gauge({
    name: "walera_pg_connection_status",
    help: "1 while the replication connection streams, else 0.",
    registers: r,
  })
  const pgReconnects = new Counter({
    name: "walera_pg_reconnects_total",
    help: "Replication sessions lost and retried.",
    registers: r,
  })
  const lsnLag = new Gauge({
    name: "walera_wal_lsn_lag_bytes",
    help: "WAL bytes between the server's current LSN and Walera's slot confirmed_flush_lsn (sampled).",
    registers: r,
  })
  const walLag = new Histogram({
    name: "walera_wal_lag_seconds",
    help: "Time from commit in PostgreSQL to decoded in Walera.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: r,
  })
  const fanoutLatency = new Histogram({
    name: "walera_fanout_latency_seconds",
    help: "Time from decoded to written to every subscribed socket, per transaction.",
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: r,
  })
  const txSize = new Histogram({
    name: "walera_wal_tx_size_changes",
    help: "Changes per decoded transaction.",
    buckets: [1, 2, 5, 10, 100, 1000, 10000, 100000],
    registers: r,
  })
  const decodeErrors = new Counter({
    name: "walera_wal_decode_errors_total",
    help: "WAL messages that could not be decoded or did not fit a transaction, by kind.",
    labelNames: ["kind"],
    registers: r,
  })
  const valueFallbacks = new Counter({
    name: "walera_wal_value_fallbacks_total",
    help: "Column values sent as PostgreSQL text because they could not be mapped to JSON.",
    registers: r,
  })
  const relationsSkipped = new Counter({
    name: "walera_wal_relations_skipped_total",
    help: "Relations whose changes are skipped (no primary key, not in schema public).",
    registers: r,
  })
  const walTx = new Counter({
    name: "walera_wal_transactions_total",
    help: "Transactions decoded from the WAL.",
    registers: r,
  })

  for (const t of ["exact", "wildcard"]) subscribersActive.labels(t).set(0)
  for (const t of ["tx", "heartbeat", "initial_data", "error", "shutdown"]) eventsSent.labels(t).inc(0)
  for (const t of ["multi_root", "tx_too_large", "slow_consumer"]) txDropped.labels(t).inc(0)
  for (const t of [
    "client_closed",
    "slow_consumer",
    "tx_too_large",
    "auth_revoked",
    "auth_unavailable",
    "wal_disconnected",
    "shutdown",
  ])
    disconnects.labels(t).inc(0)
  for (const t of ["ok", "unauthorized", "forbidden", "not_found", "unavailable"]) authRequests.labels(t).inc(0)
  for (const t of ["global_concurrent", "per_user_concurrent", "auth_breaker_open"]) limitRejected.labels(t).inc(0)
  for (const t of ["message", "anomaly"]) decodeErrors.labels(t).inc(0)
  breakerState.set(0)
  pgStatus.set(0)

  return {
    registry,
    subscribersActive,
    eventsSent,
    sentTx: eventsSent.labels("tx"),
    sentHeartbeat: eventsSent.labels("heartbeat"),
    txDropped,
    disconnects,
    authRequests,
    authDuration,
    breakerState,
    limitRejected,
    pgStatus,
    pgReconnects,
    lsnLag,
    walLag,
    fanoutLatency,
    txSize,
    decodeErrors,
    valueFallbacks,
    relationsSkipped,
    walTx,
  }
}

export type MetricsShape = ReturnType<typeof make>

export class Metrics extends Context.Service<Metrics, MetricsShape>()("walera/Metrics") {
  static readonly layer = Layer.effect(Metrics, Effect.sync(make))
}
