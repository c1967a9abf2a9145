// The composition root: which adapter implements which port, and in what order resources
// start — so that shutdown runs in reverse: HTTP (shutdown frames) first, then the
// gateway, then the replication session (PostgreSQL drops the slot), then the pool.
import { PgClient } from "@effect/sql-pg"
import { Layer, Redacted } from "effect"
import * as HttpAuthBackend from "../adapters/auth/HttpAuthBackend.ts"
import * as HttpServer from "../adapters/http/HttpServer.ts"
import { Metrics } from "../adapters/metrics/Metrics.ts"
import * as PgWalSource from "../adapters/pg/PgWalSource.ts"
import { Log, type LogShape } from "../adapters/telemetry/Log.ts"
import * as Tracing from "../adapters/telemetry/Tracing.ts"
import { canonicalOrigin, type WaleraConfig } from "./Config.ts"
import * as Gateway from "./Gateway.ts"
import { HubService } from "./Hub.ts"
import { VERSION } from "./Version.ts"
import * as WalPipeline from "./WalPipeline.ts"

export interface AppOptions {
  readonly config: WaleraConfig
  readonly log: LogShape
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Replaces the OTLP-from-environment tracing (tests pass an in-memory exporter). */
  readonly tracing?: Layer.Layer<never>
}

export const layer = ({ config, log, env = {}, tracing }: AppOptions) => {
  const base = Layer.mergeAll(Layer.succeed(Log, log), Metrics.layer, WalPipeline.Fatal.layer)
  const pool = PgClient.layer({
    url: Redacted.make(config.database.url),
    maxConnections: 3,
    connectTimeout: "5 seconds",
    applicationName: "walera",
  })
  const wal = PgWalSource.layer({
    url: config.database.url,
    publicationName: config.wal.publicationName,
    slotNamePrefix: config.wal.slotNamePrefix,
    bootstrap: config.wal.bootstrap,
    bootstrapTables: config.wal.bootstrapTables,
  }).pipe(Layer.provide(pool))
  const auth = HttpAuthBackend.layer({
    backendUrl: config.auth.backendUrl,
    requestTimeoutMs: config.auth.requestTimeoutMs,
  })
  const hub = HubService.layer({
    heartbeatIntervalMs: config.router.heartbeatIntervalMs,
    writeTimeoutMs: config.http.writeTimeoutMs,
    maxBufferedBytes: config.http.maxBufferedBytesPerSubscriber,
    maxPayloadBytes: config.http.maxPayloadBytes,
  })
  const origins = new Set(config.http.corsOrigins)
  const core = Layer.mergeAll(hub, wal, auth).pipe(Layer.provideMerge(base))
  const pipeline = WalPipeline.layer({ maxChangesPerTx: config.router.maxChangesPerTx }).pipe(Layer.provideMerge(core))
  const gateway = Gateway.layer(config).pipe(Layer.provideMerge(pipeline))
  const http = HttpServer.layer({
    host: config.http.host,
    port: config.http.port,
    allowOrigin: (origin) => {
      const canonical = canonicalOrigin(origin)
      return canonical !== undefined && origins.has(canonical)
    },
    forwardedHeaders: config.auth.forwardedHeaders,
    shutdownDeadlineMs: config.shutdown.deadlineMs,
  }).pipe(Layer.provideMerge(gateway))
  return http.pipe(Layer.provide(tracing ?? Tracing.layerFromEnv(env, VERSION)))
}
