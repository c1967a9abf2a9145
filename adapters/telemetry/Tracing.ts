// OpenTelemetry tracing through @effect/opentelemetry, configured by the standard OTEL_* variables
// (docs/operations.md, "Tracing"): on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none; service name,
// resource attributes, protocol and sampler from their variables. Off, it costs nothing.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type { Attributes } from "@opentelemetry/api"
import { OTLPTraceExporter as OtlpGrpc } from "@opentelemetry/exporter-trace-otlp-grpc"
import { OTLPTraceExporter as OtlpHttpJson } from "@opentelemetry/exporter-trace-otlp-http"
import { OTLPTraceExporter as OtlpHttpProtobuf } from "@opentelemetry/exporter-trace-otlp-proto"
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base"
import { Layer } from "effect"

type Env = Readonly<Record<string, string | undefined>>

export type Protocol = "http/protobuf" | "http/json" | "grpc"

export interface TracingSettings {
  readonly serviceName: string
  readonly serviceVersion: string
  readonly attributes: Attributes
  readonly protocol: Protocol
  readonly sampler: Sampler
}

const value = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim()
  return v === undefined || v === "" ? undefined : v
}

/** OTEL_RESOURCE_ATTRIBUTES: `key=value` pairs separated by commas, each part percent-decoded. */
export const parseResourceAttributes = (text: string | undefined): Attributes => {
  const out: Attributes = {}
  if (text === undefined) return out
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=")
    if (eq <= 0) continue
    try {
      const key = decodeURIComponent(pair.slice(0, eq).trim())
      if (key !== "") out[key] = decodeURIComponent(pair.slice(eq + 1).trim())
    } catch {}
  }
  return out
}

const ratio = (arg: string | undefined): number => {
  const n = arg === undefined ? 1 : Number(arg)
  return Number.isFinite(n) && n >= 0 && n <= 1 ? n : 1
}

/** OTEL_TRACES_SAMPLER (+ OTEL_TRACES_SAMPLER_ARG); the default is parentbased_always_on, as the spec says. */
export const samplerFromEnv = (env: Env): Sampler => {
  const arg = value(env, "OTEL_TRACES_SAMPLER_ARG")
  switch (value(env, "OTEL_TRACES_SAMPLER")) {
    case "always_on":
      return new AlwaysOnSampler()
    case "always_off":
      return new AlwaysOffSampler()
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio(arg))
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio(arg)) })
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() })
  }
}

/** undefined: tracing is off. */
export const settingsFromEnv = (env: Env, version: string): TracingSettings | undefined => {
  if (value(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined
  if (value(env, "OTEL_TRACES_EXPORTER")?.toLowerCase() === "none") return undefined
  if (
    value(env, "OTEL_EXPORTER_OTLP_ENDPOINT") === undefined &&
    value(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") === undefined
  )
    return undefined
  const protocol = value(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value(env, "OTEL_EXPORTER_OTLP_PROTOCOL")
  return {
    serviceName: value(env, "OTEL_SERVICE_NAME") ?? "walera",
    serviceVersion: version,
    attributes: parseResourceAttributes(value(env, "OTEL_RESOURCE_ATTRIBUTES")),
    protocol: protocol === "http/json" || protocol === "grpc" ? protocol : "http/protobuf",
    sampler: samplerFromEnv(env),
  }
}

/** The exporters read their endpoint, headers and timeout from the same OTEL_EXPORTER_OTLP_* variables. */
const exporterFor = (protocol: Protocol): SpanExporter => {
  switch (protocol) {
    case "http/json":
      return new OtlpHttpJson()
    case "grpc":
      return new OtlpGrpc()
    case "http/protobuf":
      return new OtlpHttpProtobuf()
  }
}

export const layerWith = (spanProcessor: SpanProcessor, settings: Omit<TracingSettings, "protocol">) =>
  NodeSdk.layer(() => ({
    resource: {
      serviceName: settings.serviceName,
      serviceVersion: settings.serviceVersion,
      attributes: settings.attributes,
    },
    spanProcessor,
    tracerConfig: { sampler: settings.sampler },
  }))

export const layerFromEnv = (env: Env, version: string) => {
  const settings = settingsFromEnv(env, version)
  return settings === undefined
    ? Layer.empty
    : layerWith(new BatchSpanProcessor(exporterFor(settings.protocol)), settings)
}

/** Whether layerFromEnv turns tracing on (the transport then continues incoming traceparents). */
export const enabledByEnv = (env: Env): boolean => settingsFromEnv(env, "") !== undefined
