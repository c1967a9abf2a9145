// OpenTelemetry spans through @effect/opentelemetry, pinned with an in-memory exporter:
// WAL connect, stream open with the auth call as its child, and grant refresh. Nothing per row.
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Fiber, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { makeLog } from "../../adapters/telemetry/Log.ts"
import * as Tracing from "../../adapters/telemetry/Tracing.ts"
import * as App from "../../src/App.ts"
import { loadConfig } from "../../src/Config.ts"
import { type AuthServer, startAuthServer } from "../support/AuthServer.ts"
import { createTestDb, type TestDb } from "../support/Db.ts"
import { freePort } from "../support/EmbeddedPg.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { ALICE, ORDERS_SCHEMA } from "./fixtures.ts"

let db: TestDb
let auth: AuthServer
let fiber: Fiber.Fiber<unknown, unknown>
let url: string
const exporter = new InMemorySpanExporter()

beforeAll(async () => {
  db = await createTestDb(inject("adminUrl"), ORDERS_SCHEMA)
  await db.sql("INSERT INTO orders (id) VALUES (1)")
  auth = await startAuthServer()
  auth.answers.set("alice-token", { status: 200, body: { ...ALICE, ttl_seconds: 1 } })
  const port = await freePort()
  url = `http://127.0.0.1:${port}`
  const loaded = loadConfig({
    env: {
      WALERA_DATABASE_URL: db.url,
      WALERA_AUTH_BACKEND_URL: auth.url,
      WALERA_AUTH_ALLOW_PLAINTEXT: "true",
      WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
    },
  })
  if (loaded._tag === "Invalid") throw new Error(JSON.stringify(loaded.problems))
  const settings = Tracing.settingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://unused" }, "test")!
  const layer = App.layer({
    config: loaded.config,
    log: makeLog({ level: "error", pretty: false }),
    tracing: {
      layer: Tracing.layerWith(new SimpleSpanProcessor(exporter), settings) as Layer.Layer<never>,
      enabled: true,
    },
  })
  fiber = Effect.runFork(Layer.launch(layer))
  await waitUntil(
    async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200,
    20_000,
    "streaming",
  )
})
afterAll(async () => {
  if (fiber !== undefined) await Effect.runPromise(Fiber.interrupt(fiber))
  await auth?.close()
  await db?.drop()
})

describe("spans", () => {
  it("cover WAL connect, stream open with the auth call as a child, and refresh — not rows", async () => {
    const s = await openSse(url, "/sse/v1/orders/1", { authorization: "Bearer alice-token" })
    expect(s.status).toBe(200)
    for (let i = 0; i < 5; i++) await db.sql("UPDATE orders SET status = $1 WHERE id = 1", [`s${i}`])
    await s.waitFor((c) => c.txs().length === 5, 10_000, "five txs")
    await waitUntil(() => exporter.getFinishedSpans().some((x) => x.name === "Subscriber.refresh"), 5000, "a refresh")
    s.close()
    const spans = exporter.getFinishedSpans()
    const names = spans.map((x) => x.name)
    expect(names).toContain("WalSource.connect")
    expect(names).toContain("WalSource.prepare")
    const open = spans.find((x) => x.name === "Subscriber.open")!
    expect(open.attributes["walera.channel"]).toBe("orders:1")
    const call = spans.find(
      (x) => x.name === "AuthBackend.openSession" && x.parentSpanContext?.spanId === open.spanContext().spanId,
    )
    expect(call).toBeDefined()
    expect(call!.spanContext().traceId).toBe(open.spanContext().traceId)
    const refresh = spans.find((x) => x.name === "Subscriber.refresh")!
    expect(
      spans.some(
        (x) => x.name === "AuthBackend.openSession" && x.parentSpanContext?.spanId === refresh.spanContext().spanId,
      ),
    ).toBe(true)
    // Nothing per transaction or per row.
    expect(spans.length).toBeLessThan(20)
    for (const span of spans) expect(JSON.stringify(span.attributes)).not.toContain("alice-token")
  })
})
