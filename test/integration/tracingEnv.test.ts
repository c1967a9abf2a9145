// Tracing as an operator configures it: the standard OTEL_* variables read by a running Walera, spans exported to a
// local OTLP receiver, an incoming traceparent continued through the auth call, log lines carrying the trace, and
// the exporter flushed on SIGTERM (the batch processor would otherwise wait five seconds).
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { type AuthServer, startAuthServer } from "../support/AuthServer.ts"
import { createTestDb, type TestDb } from "../support/Db.ts"
import { type OtlpReceiver, startOtlpGrpcReceiver, startOtlpHttpReceiver } from "../support/OtlpReceiver.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { startWalera } from "../support/Walera.ts"
import { ALICE, ORDERS_SCHEMA } from "./fixtures.ts"

let db: TestDb
let auth: AuthServer
beforeAll(async () => {
  db = await createTestDb(inject("adminUrl"), ORDERS_SCHEMA)
  await db.sql("INSERT INTO orders (id) VALUES (1)")
  auth = await startAuthServer()
  auth.answers.set("alice-token", { status: 200, body: ALICE })
})
afterAll(async () => {
  await auth?.close()
  await db?.drop()
})

const traceparent = () => {
  const traceId = randomBytes(16).toString("hex")
  return { traceId, header: `00-${traceId}-${randomBytes(8).toString("hex")}-01` }
}

/** Starts Walera with these OTEL_* variables, opens one stream with a traceparent, stops it, returns what it saw. */
const runOnce = async (otel: Record<string, string>, slot: string) => {
  const walera = await startWalera({
    WALERA_DATABASE_URL: db.url,
    WALERA_AUTH_BACKEND_URL: auth.url,
    WALERA_WAL_SLOT_NAME_PREFIX: slot,
    ...otel,
  })
  const trace = traceparent()
  const calls = auth.calls.length
  const s = await openSse(walera.url, "/sse/v1/orders/1", {
    authorization: "Bearer alice-token",
    traceparent: trace.header,
  })
  expect(s.status).toBe(200)
  s.close()
  expect(await walera.stop("SIGTERM")).toBe(0)
  const call = auth.calls.slice(calls).find((c) => c.channel === "orders:1")
  return { trace, walera, authTraceparent: call?.headers["traceparent"] as string | undefined }
}

describe("OTEL_* variables", () => {
  let receiver: OtlpReceiver
  beforeAll(async () => {
    receiver = await startOtlpHttpReceiver()
  })
  afterAll(async () => {
    await receiver?.close()
  })

  it("OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone: the open span under the client's trace, with its auth call", async () => {
    const { trace, authTraceparent, walera } = await runOnce(
      {
        OTEL_SERVICE_NAME: "walera-edge-eu",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/custom/traces`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      },
      "otela",
    )
    // Flushed on SIGTERM: the batch processor's five-second delay did not pass.
    const spans = receiver.spans().filter((s) => s.traceId === trace.traceId)
    const open = spans.find((s) => s.name === "Subscriber.open")
    expect(open?.serviceName).toBe("walera-edge-eu")
    const call = spans.find((s) => s.name === "AuthBackend.openSession")
    expect(call?.parentSpanId).toBe(open?.spanId)
    expect(receiver.exports.every((e) => e.path === "/custom/traces")).toBe(true)
    // The auth backend saw the same trace, as the child of Walera's span.
    expect(authTraceparent).toMatch(new RegExp(`^00-${trace.traceId}-${call?.spanId}-01$`))
    // A line written inside the open carries the trace.
    const accepted = walera.logLines().find((l) => l["msg"] === "subscriber accepted")
    expect(accepted?.["trace_id"]).toBe(trace.traceId)
  })

  it("OTEL_EXPORTER_OTLP_ENDPOINT: the base URL, /v1/traces appended", async () => {
    const before = receiver.exports.length
    await runOnce({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }, "otelb")
    const added = receiver.exports.slice(before)
    expect(added.length).toBeGreaterThan(0)
    expect(added.every((e) => e.path === "/v1/traces")).toBe(true)
    expect(receiver.spans().some((s) => s.serviceName === "walera")).toBe(true)
  })

  it("OTEL_RESOURCE_ATTRIBUTES: on the resource of every span", async () => {
    const { trace } = await runOnce(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=staging,team=sync%20core",
      },
      "otelc",
    )
    const open = receiver.spans().find((s) => s.traceId === trace.traceId && s.name === "Subscriber.open")
    expect(open?.resource).toMatchObject({ "deployment.environment": "staging", team: "sync core" })
  })

  it("OTEL_SDK_DISABLED=true: nothing exported and no traceparent sent to the auth backend", async () => {
    const before = receiver.exports.length
    const { authTraceparent } = await runOnce(
      { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SDK_DISABLED: "true" },
      "oteld",
    )
    expect(receiver.exports.length).toBe(before)
    expect(authTraceparent).toBeUndefined()
  })

  it("OTEL_TRACES_SAMPLER=always_off: nothing exported, even under a sampled client trace", async () => {
    const before = receiver.exports.length
    await runOnce(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_TRACES_SAMPLER: "always_off",
      },
      "otele",
    )
    expect(receiver.exports.slice(before).flatMap((e) => (e.contentType.includes("json") ? [e] : []))).toEqual([])
  })

  it("OTEL_EXPORTER_OTLP_PROTOCOL unset: http/protobuf, the specification's default", async () => {
    const before = receiver.exports.length
    const { trace } = await runOnce({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, "otelf")
    const added = receiver.exports.slice(before)
    expect(added.length).toBeGreaterThan(0)
    expect(added[0]!.contentType).toBe("application/x-protobuf")
    // Protobuf carries the trace id as its 16 raw bytes.
    expect(added.some((e) => e.body.includes(Buffer.from(trace.traceId, "hex")))).toBe(true)
  })
})

describe("OTEL_EXPORTER_OTLP_PROTOCOL=grpc", () => {
  it("exports to an OTLP/gRPC receiver", async () => {
    const grpc = await startOtlpGrpcReceiver()
    try {
      const { trace } = await runOnce(
        { OTEL_EXPORTER_OTLP_ENDPOINT: grpc.url, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
        "otelg",
      )
      await waitUntil(() => grpc.exports.length > 0, 5000, "a gRPC export")
      expect(grpc.exports[0]!.path).toBe("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
      expect(grpc.exports.some((e) => e.body.includes(Buffer.from(trace.traceId, "hex")))).toBe(true)
    } finally {
      await grpc.close()
    }
  })
})
