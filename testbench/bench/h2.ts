// The bench's HTTP/2 scenario (docs/performance.md, "HTTP/2: 100 000 streams"): how many streams, over how many
// prior-knowledge h2c connections, and how the load generator's processes share those connections. Kept apart from
// bench.ts, which only asks this module for the figures that differ from the HTTP/1.1 scenario.
import type { LoadProtocol, StreamSpec } from "../load/loadgen.ts"

export interface Transport {
  readonly protocol: LoadProtocol
  /** h2c: streams carried by one connection (the server must allow at least this many concurrent streams) */
  readonly streamsPerSession: number
  /** load generator processes for this many streams */
  readonly processes: (streams: number) => number
  /** what the report calls the plain server the run is compared with */
  readonly baselineName: string
}

export interface ScenarioDefaults {
  readonly streams: number
  readonly rate: number
  readonly duration: number
  readonly warmup: number
}

export const SCENARIOS = ["spec12", "h2-100k"] as const
export type ScenarioName = (typeof SCENARIOS)[number]

/** The HTTP/2 scenario (docs/performance.md): 99 990 orders/{pk} + 10 orders/all over ≤ 1 000 connections, 1 000 tx/s, 60 s. */
export const H2_FULL: ScenarioDefaults & { readonly sessions: number } = {
  streams: 100_000,
  sessions: 1000,
  rate: 1000,
  duration: 60,
  warmup: 10,
}
export const H2_QUICK: ScenarioDefaults & { readonly sessions: number } = {
  streams: 5000,
  sessions: 50,
  rate: 1000,
  duration: 20,
  warmup: 5,
}

/**
 * An HTTP/2 client process holds its streams in far fewer sockets than HTTP/1.1, so the split is by CPU and memory,
 * not by descriptors. Measured here: ~11 µs of client CPU per received event and ~11 KiB of RSS per held stream
 * (2.5 KiB of it JS heap), so 25 000 streams per process is ~280 MiB and, at 1 000 tx/s with 100 000 streams
 * (11 000 events and ~6 700 heartbeats a second over all processes), a few per cent of a core each.
 */
const H2_STREAMS_PER_PROCESS = 25_000
const HTTP1_STREAMS_PER_PROCESS = 15_000

export const http1Transport: Transport = {
  protocol: "http1",
  streamsPerSession: 1,
  processes: (streams) => Math.max(1, Math.ceil(streams / HTTP1_STREAMS_PER_PROCESS)),
  baselineName: "plain node:http",
}

export const h2Transport = (streams: number, sessions: number, processes?: number): Transport => ({
  protocol: "h2c",
  streamsPerSession: Math.max(1, Math.ceil(streams / Math.max(1, sessions))),
  processes: (n) => processes ?? Math.max(1, Math.ceil(n / H2_STREAMS_PER_PROCESS)),
  baselineName: "plain node:http2",
})

/**
 * Splits the streams over `parts` load generator processes. For h2c each part gets whole sessions, so no more than
 * `sessions` connections are opened in total.
 */
export const splitStreams = (streams: ReadonlyArray<StreamSpec>, parts: number, t: Transport): StreamSpec[][] => {
  const unit = t.protocol === "h2c" ? t.streamsPerSession : 1
  const units = Math.ceil(streams.length / unit)
  const perPart = Math.ceil(units / parts) * unit
  return Array.from({ length: parts }, (_, i) => streams.slice(i * perPart, (i + 1) * perPart)).filter(
    (s) => s.length > 0,
  )
}

/**
 * Opens started together per process. Walera answers 503 once `auth.max_concurrent_calls` (256) auth calls are in
 * flight; with many h2c processes opening at once the sum must stay under it, or the first attempts are refused.
 */
export const openBatch = (t: Transport, parts: number): number =>
  t.protocol === "h2c" ? Math.max(16, Math.floor(240 / parts)) : 250

/** Walera settings the scenario needs beyond the bench's usual ones: room for every stream under the global cap. */
export const waleraEnv = (t: Transport, streams: number): Record<string, string> =>
  t.protocol === "h2c" && streams + 1000 > 50_000 ? { WALERA_LIMITS_GLOBAL_CONCURRENT: String(streams + 1000) } : {}

/** Connections the server holds: what the descriptor limit applies to. */
export const connectionsFor = (t: Transport, streams: number): number =>
  t.protocol === "h2c" ? Math.ceil(streams / t.streamsPerSession) : streams
