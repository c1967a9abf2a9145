// The core path end to end: a committed transaction that touches the subscribed row
// arrives as exactly one tx event, carrying only the granted columns.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSse } from "../support/SseClient.ts"
import { type Env, setup } from "./fixtures.ts"

let env: Env
beforeAll(async () => {
  env = await setup()
  await env.db.sql(
    "INSERT INTO orders (id, status, total_cents, secret_note) VALUES (42, 'new', 100, 'x'), (43, 'new', 5, 'y')",
  )
})
afterAll(async () => {
  await env?.close()
})

describe("one row stream", () => {
  it("delivers insert, update and delete of the row, each as one tx event", async () => {
    const sse = await openSse(env.walera.url, "/sse/v1/orders/42", env.bearer("alice-token"))
    expect(sse.status).toBe(200)
    expect(sse.headers["content-type"]).toBe("text/event-stream")
    await sse.waitFor((c) => c.raw().startsWith("retry: 15000\n\n"), 5000, "retry line")
    await env.db.sql("UPDATE orders SET status = 'paid', secret_note = 'SECRET-MARKER' WHERE id = 42")
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "first tx")
    const [tx] = sse.txs()
    expect(tx!.changes).toEqual([
      { op: "update", table: "orders", pk: "42", data: expect.objectContaining({ id: "42", status: "paid" }) },
    ])
    expect(sse.raw()).not.toContain("SECRET-MARKER")
    expect(sse.raw()).not.toContain("secret_note")
    sse.close()
  })
})
