// The composition root: which adapter implements which port, and in what order resources start, so that
// shutdown runs in reverse — HTTP first (every subscriber gets its shutdown frame), then the handshake and grant
// fibers, the replication session (PostgreSQL drops the slot), the pool, and last the telemetry exporter.
import { PgClient } from "@effect/sql-pg"
import { Layer, Redacted, References } from "effect"
import * as HttpAuthBackend from "../adapters/auth/HttpAuthBackend.ts"
import * as HttpServer from "../adapters/http/HttpServer.ts"
import * as PromObservability from "../adapters/metrics/PromObservability.ts"
import * as PgWalSource from "../adapters/pg/PgWalSource.ts"
import * as JsonLog from "../adapters/telemetry/Log.ts"
import * as Tracing from "../adapters/telemetry/Tracing.ts"
import { Admission } from "./Admission.ts"
import { AuthGate } from "./AuthGate.ts"
import { canonicalOrigin, type WaleraConfig } from "./Config.ts"
import { Grants } from "./Grants.ts"
import * as Handshake from "./Handshake.ts"
import { HubService } from "./Hub.ts"
import { Fatal, Replication } from "./Replication.ts"
import { VERSION } from "./Version.ts"

export interface AppOptions {
  readonly config: WaleraConfig
  readonly log: JsonLog.LogWriter
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Replaces the OTLP-from-environment tracing (tests pass an in-memory exporter). */
  readonly tracing?: { readonly layer: Layer.Layer<never>; readonly enabled: boolean }
}

export const layer = ({ config, log, env = {}, tracing }: AppOptions) => {
  const tracingOn = tracing?.enabled ?? Tracing.enabledByEnv(env)
  const base = Layer.mergeAll(
    JsonLog.layerFrom(log, config.log.level),
    PromObservability.layer(VERSION),
    Fatal.layer,
    Admission.layer(config.limits),
  )
  const pool = PgClient.layer({
    url: Redacted.make(config.database.url),
    maxConnections: 3,
    connectTimeout: "5 seconds",
    applicationName: "walera",
  })
  const wal = PgWalSource.layer({
    url: config.database.url,
    maxValueBytes: config.router.maxTxBytes,
    publicationName: config.wal.publicationName,
    slotNamePrefix: config.wal.slotNamePrefix,
    bootstrap: config.wal.bootstrap,
    bootstrapTables: config.wal.bootstrapTables,
  }).pipe(Layer.provide(pool))
  const auth = HttpAuthBackend.layer({
    backendUrl: config.auth.backendUrl,
    requestTimeoutMs: config.auth.requestTimeoutMs,
    maxConcurrentCalls: config.auth.maxConcurrentCalls,
    propagateTrace: tracingOn,
  })
  const hub = HubService.layer({
    heartbeatIntervalMs: config.router.heartbeatIntervalMs,
    writeTimeoutMs: config.http.writeTimeoutMs,
    maxBufferedBytes: config.http.maxBufferedBytesPerSubscriber,
    maxPayloadBytes: config.http.maxPayloadBytes,
    replay: {
      // Gapless opens need what was decoded during the auth call, plus a second of margin; resume may ask for more.
      retentionMs: Math.max(config.router.resumeWindowMs, config.auth.requestTimeoutMs + 1000),
      maxBytes: config.router.replayMaxBytes,
      // Resume keeps the window (indexed by row) whether or not a handshake is in flight.
      keep: config.router.resumeWindowMs > 0,
    },
  })
  const gate = AuthGate.layer({ breaker: config.auth.breaker, maxConcurrentCalls: config.auth.maxConcurrentCalls })
  const core = Layer.mergeAll(hub, wal, auth).pipe(Layer.provideMerge(base))
  const replication = Replication.layer({
    maxChangesPerTx: config.router.maxChangesPerTx,
    maxTxBytes: config.router.maxTxBytes,
  }).pipe(Layer.provideMerge(core))
  const grants = Grants.layer({ defaultTtlSeconds: config.auth.defaultTtlSeconds }).pipe(
    Layer.provideMerge(gate),
    Layer.provideMerge(replication),
  )
  const gateway = Handshake.layer({
    resume: config.router.resumeWindowMs > 0,
    maxBufferedBytes: config.http.maxBufferedBytesPerSubscriber,
    maxPayloadBytes: config.http.maxPayloadBytes,
    reconnectSpreadMs: config.shutdown.reconnectSpreadMs,
  }).pipe(Layer.provideMerge(grants))
  const origins = new Set(config.http.corsOrigins)
  const http = HttpServer.layer({
    listen: { host: config.http.host, port: config.http.port },
    admin: config.http.admin,
    tls: config.http.tls,
    allowOrigin: (origin) => {
      const canonical = canonicalOrigin(origin)
      return canonical !== undefined && origins.has(canonical)
    },
    forwarding: { forwardedCookies: config.auth.forwardedCookies, forwardedHeaders: config.auth.forwardedHeaders },
    headersTimeoutMs: config.http.headersTimeoutMs,
    maxConnections: config.http.maxConnections,
    h2MaxConcurrentStreams: config.http.h2MaxConcurrentStreams,
    shutdownDeadlineMs: config.shutdown.deadlineMs,
    continueTraces: tracingOn,
  }).pipe(Layer.provideMerge(gateway))
  // Without an exporter no span is registered at all: each open would otherwise build two spans nobody reads.
  const telemetry = tracingOn
    ? (tracing?.layer ?? Tracing.layerFromEnv(env, VERSION))
    : Layer.succeed(References.TracerEnabled, false)
  return http.pipe(Layer.provide(telemetry))
}
