// OpenTelemetry tracing through @effect/opentelemetry: spans for stream open (with the auth
// call as a child), refresh and WAL connect. Exported over OTLP/HTTP only when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT variable is set; otherwise tracing costs nothing.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Layer } from "effect"

export const layerWith = (spanProcessor: SpanProcessor, version: string) =>
  NodeSdk.layer(() => ({ resource: { serviceName: "walera", serviceVersion: version }, spanProcessor }))

export const layerFromEnv = (env: Readonly<Record<string, string | undefined>>, version: string) =>
  env["OTEL_EXPORTER_OTLP_ENDPOINT"] === undefined || env["OTEL_EXPORTER_OTLP_ENDPOINT"] === ""
    ? Layer.empty
    : layerWith(new BatchSpanProcessor(new OTLPTraceExporter()), version)
