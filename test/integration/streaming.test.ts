// The core path end to end, one scenario per routing rule (docs/delivery-semantics.md): real
// PostgreSQL, a real auth backend over HTTP, Walera as a process, SSE over real sockets.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { metricValue } from "../support/Scrape.ts"
import { openSse, type SseClient } from "../support/SseClient.ts"
import { ALICE, type Env, setup } from "./fixtures.ts"

let env: Env
beforeAll(async () => {
  env = await setup()
  env.auth.answers.set("bob-token", {
    status: 200,
    body: { user_id: "bob", tables: { orders: ["id", "status"] }, ttl_seconds: 60 },
  })
  await env.db.sql(`
    INSERT INTO orders (id, status, total_cents, secret_note) VALUES (1, 'new', 100, 'n1'), (2, 'new', 200, 'n2'), (3, 'new', 300, 'n3'), (4, 'new', 1, 'n4');
    INSERT INTO line_items (id, order_id, qty, hidden_cost) VALUES (11, 1, 1, 5), (21, 2, 1, 5), (31, 3, 1, 5), (41, 4, 1, 5);
  `)
})
afterAll(async () => {
  await env?.close()
})

const open = async (path: string, token = "alice-token"): Promise<SseClient> => {
  // Earlier commits must be decoded first, or they would (rightly) reach the new stream.
  await env.settle()
  const sse = await openSse(env.walera.url, path, env.bearer(token))
  expect(sse.status).toBe(200)
  await sse.waitFor((c) => c.raw().startsWith("retry: 15000\n\n"), 5000, "retry line")
  return sse
}

/** Commits a marker update on order `id` and waits until `sse` received it: everything before it was decided. */
const barrier = async (sse: SseClient, id: number) => {
  const marker = `barrier-${Date.now()}-${Math.random()}`
  await env.db.sql("UPDATE orders SET status = $1 WHERE id = $2", [marker, id])
  await sse.waitFor((c) => c.raw().includes(marker), 10_000, `barrier ${marker}`)
}

describe("one row stream", () => {
  it("sends SSE headers and the retry line first", async () => {
    const sse = await open("/sse/v1/orders/1")
    expect(sse.headers["content-type"]).toBe("text/event-stream")
    expect(sse.headers["cache-control"]).toBe("no-cache")
    expect(sse.headers["x-accel-buffering"]).toBe("no")
    expect(sse.headers["x-content-type-options"]).toBe("nosniff")
    expect(sse.headers.vary).toBe("Origin")
    // Raw SSE bytes to the end of the connection: no chunk framing around each event.
    expect(sse.headers["transfer-encoding"]).toBeUndefined()
    expect(sse.headers.connection).toBe("close")
    sse.close()
  })

  it("delivers insert, update and delete of the row, each as one tx event", async () => {
    const sse = await open("/sse/v1/orders/500")
    await env.db.sql(
      "INSERT INTO orders (id, status, total_cents, secret_note) VALUES (500, 'new', 7, 'SECRET-INSERT')",
    )
    await env.db.sql("UPDATE orders SET status = 'paid' WHERE id = 500")
    await env.db.sql("DELETE FROM orders WHERE id = 500")
    await sse.waitFor((c) => c.txs().length === 3, 10_000, "three txs")
    const [ins, upd, del] = sse.txs()
    expect(ins!.changes).toEqual([
      {
        op: "insert",
        table: "orders",
        pk: "500",
        data: { id: "500", status: "new", total_cents: 7, updated_at: expect.stringMatching(/Z$/) },
      },
    ])
    expect(upd!.changes[0]).toMatchObject({ op: "update", table: "orders", pk: "500" })
    expect(upd!.changes[0]!["data"]).toMatchObject({ id: "500", status: "paid" })
    expect(del!.changes).toEqual([{ op: "delete", table: "orders", pk: "500" }])
    const frames = sse.events("tx")
    expect(frames.map((f) => Number(f.id))).toEqual(sse.txs().map((t) => t.tx_id))
    expect(ins!.commit_ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$/)
    expect(sse.raw()).not.toContain("SECRET-INSERT")
    sse.close()
  })

  it("several changes in one transaction arrive as one event in WAL order", async () => {
    const sse = await open("/sse/v1/orders/1")
    await env.db.sql(`BEGIN;
      UPDATE orders SET status = 'a' WHERE id = 1;
      UPDATE orders SET total_cents = 101 WHERE id = 1;
      UPDATE orders SET status = 'b' WHERE id = 1;
      COMMIT;`)
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "one tx")
    await barrier(sse, 1)
    const tx = sse.txs()[0]!
    expect(tx.changes.map((c) => (c["data"] as Record<string, unknown>)["status"])).toEqual(["a", "a", "b"])
    expect(sse.events("tx").length).toBe(2)
    sse.close()
  })

  it("a child write whose trigger bumps the root arrives with it, filtered by the whitelist", async () => {
    const sse = await open("/sse/v1/orders/2")
    await env.db.sql("UPDATE line_items SET qty = 9, hidden_cost = 777777 WHERE id = 21")
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "child tx")
    const tx = sse.txs()[0]!
    expect(tx.changes.map((c) => `${c["op"]}:${c["table"]}:${c["pk"]}`)).toEqual([
      "update:line_items:21",
      "update:orders:2",
    ])
    expect(tx.changes[0]!["data"]).toEqual({ id: "21", order_id: "2", qty: 9 })
    expect(sse.raw()).not.toContain("777777")
    expect(sse.raw()).not.toContain("hidden_cost")
    sse.close()
  })

  it("a child write without its root is not delivered", async () => {
    await env.db.sql("ALTER TABLE line_items DISABLE TRIGGER line_items_bump")
    try {
      const sse = await open("/sse/v1/orders/3")
      await env.db.sql("UPDATE line_items SET qty = 42 WHERE id = 31")
      await barrier(sse, 3)
      expect(sse.txs().length).toBe(1)
      expect(sse.raw()).not.toContain('"line_items"')
      sse.close()
    } finally {
      await env.db.sql("ALTER TABLE line_items ENABLE TRIGGER line_items_bump")
    }
  })

  it("a multi-root transaction is dropped, the stream stays open and the next transaction arrives", async () => {
    const sse = await open("/sse/v1/orders/1")
    const all = await open("/sse/v1/orders/all")
    const before = await env.walera.get("/metrics")
    const dropsBefore = metricValue(before.body, 'walera_tx_dropped_total{reason="multi_root"}')
    await env.db.sql("UPDATE orders SET status = 'MULTI-ROOT' WHERE id IN (1, 2)")
    await barrier(sse, 1)
    await all.waitFor((c) => c.txs().length === 1, 10_000, "barrier on /all")
    expect(sse.raw()).not.toContain("MULTI-ROOT")
    expect(all.raw()).not.toContain("MULTI-ROOT")
    expect(sse.isEnded()).toBe(false)
    const after = await env.walera.get("/metrics")
    const dropsAfter = metricValue(after.body, 'walera_tx_dropped_total{reason="multi_root"}')
    expect(dropsAfter - dropsBefore).toBe(2)
    expect(env.walera.logs()).toContain("multi-root transaction dropped")
    sse.close()
    all.close()
  })

  it("hidden columns and tables outside the grant never reach the wire", async () => {
    const sse = await open("/sse/v1/orders/4")
    await env.db.sql("UPDATE orders SET secret_note = 'HIDDEN-MARKER-1' WHERE id = 4")
    await env.db.sql("INSERT INTO audit (id, what) VALUES (1, 'AUDIT-MARKER')")
    await env.db.sql(
      "BEGIN; UPDATE orders SET total_cents = 5 WHERE id = 4; INSERT INTO audit (id, what) VALUES (2, 'AUDIT-MARKER-2'); COMMIT;",
    )
    await barrier(sse, 4)
    // Default replica identity sends the whole new row, so an update carries every granted column.
    const txs = sse.txs()
    expect(txs.length).toBe(3)
    expect(txs[1]!.changes).toEqual([
      {
        op: "update",
        table: "orders",
        pk: "4",
        data: { id: "4", status: expect.any(String), total_cents: 5, updated_at: expect.any(String) },
      },
    ])
    expect(sse.raw()).not.toContain("HIDDEN-MARKER")
    expect(sse.raw()).not.toContain("secret_note")
    expect(sse.raw()).not.toContain("AUDIT-MARKER")
    expect(sse.raw()).not.toContain('"audit"')
    sse.close()
  })

  it("with REPLICA IDENTITY FULL an update of hidden columns only is dropped", async () => {
    await env.db.sql(`
      CREATE TABLE accounts (id int PRIMARY KEY, name text, ssn text, plan text);
      ALTER TABLE accounts REPLICA IDENTITY FULL;
      INSERT INTO accounts VALUES (7, 'ann', '111-22-3333', 'free');
    `)
    await env.settle()
    env.auth.answers.set("acct-token", {
      status: 200,
      body: { user_id: "carol", tables: { accounts: ["name", "plan"] } },
    })
    const sse = await open("/sse/v1/accounts/7", "acct-token")
    await env.db.sql("UPDATE accounts SET ssn = '999-99-9999' WHERE id = 7")
    await env.db.sql("UPDATE accounts SET plan = 'pro' WHERE id = 7")
    await sse.waitFor((c) => c.txs().length >= 1, 10_000, "visible update")
    await env.db.sql("UPDATE accounts SET name = 'ann2' WHERE id = 7")
    await sse.waitFor((c) => c.txs().length >= 2, 10_000, "second visible update")
    expect(sse.txs().map((t) => t.changes[0]!["data"])).toEqual([
      { id: 7, plan: "pro" },
      { id: 7, name: "ann2" },
    ])
    expect(sse.raw()).not.toContain("999-99-9999")
    sse.close()
  })

  it("each subscriber sees its own whitelist of the same transaction", async () => {
    const alice = await open("/sse/v1/orders/1", "alice-token")
    const bob = await open("/sse/v1/orders/1", "bob-token")
    await env.db.sql("UPDATE orders SET total_cents = 123456, status = 'seen-by-both' WHERE id = 1")
    await alice.waitFor((c) => c.txs().length === 1, 10_000, "alice tx")
    await bob.waitFor((c) => c.txs().length === 1, 10_000, "bob tx")
    expect(alice.txs()[0]!.changes[0]!["data"]).toMatchObject({ total_cents: 123456, status: "seen-by-both" })
    expect(bob.txs()[0]!.changes[0]!["data"]).toEqual({ id: "1", status: "seen-by-both" })
    expect(bob.raw()).not.toContain("123456")
    alice.close()
    bob.close()
  })

  it("a change committed (and decoded) before the stream opened is not delivered", async () => {
    await env.db.sql("UPDATE orders SET status = 'BEFORE-OPEN' WHERE id = 2")
    await env.settle()
    const sse = await open("/sse/v1/orders/2")
    await barrier(sse, 2)
    expect(sse.raw()).not.toContain("BEFORE-OPEN")
    expect(sse.txs().length).toBe(1)
    sse.close()
  })
})

describe("table stream", () => {
  it("/all receives every single-root transaction of the table and nothing of other tables", async () => {
    const sse = await open("/sse/v1/orders/all")
    await env.db.sql("UPDATE orders SET status = 'all-1' WHERE id = 1")
    await env.db.sql("UPDATE orders SET status = 'all-2' WHERE id = 2")
    await env.db.sql("INSERT INTO audit (id, what) VALUES (10, 'not-for-orders')")
    await barrier(sse, 3)
    const statuses = sse.txs().map((t) => (t.changes[0]!["data"] as Record<string, unknown>)["status"])
    expect(statuses.slice(0, 2)).toEqual(["all-1", "all-2"])
    expect(sse.txs().length).toBe(3)
    expect(sse.raw()).not.toContain("not-for-orders")
    sse.close()
  })
})

describe("initial_data", () => {
  it("is the first frame after retry, compacted to one line, and absent when null", async () => {
    env.auth.answers.set("init-token", {
      status: 200,
      body: JSON.stringify({ ...ALICE, initial_data: { list: [1, 2, { deep: "value with\nnewline" }] } }).replace(
        /}$/,
        ', "initial_data": {"list": [1, 2, {"deep": "value with\\nnewline"}],\n "big": 12345678901234567890}}',
      ),
    })
    env.auth.answers.set("null-init-token", { status: 200, body: { ...ALICE, initial_data: null } })
    const sse = await open("/sse/v1/orders/1", "init-token")
    await sse.waitFor((c) => c.events("initial_data").length === 1, 5000, "initial_data")
    const frames = sse.frames()
    expect(frames[0]!.retry).toBe("15000")
    expect(frames[1]!.event).toBe("initial_data")
    expect(JSON.parse(frames[1]!.data!)).toEqual({
      list: [1, 2, { deep: "value with\nnewline" }],
      big: 12345678901234567000,
    })
    expect(sse.raw()).toContain('event: initial_data\ndata: {"list":[1,2,{"deep":"value with\\nnewline"}]')
    sse.close()
    const none = await open("/sse/v1/orders/1", "null-init-token")
    await barrier(none, 1)
    expect(none.events("initial_data").length).toBe(0)
    none.close()
  })
})

describe("client disconnect", () => {
  it("frees the stream at once", async () => {
    const sse = await open("/sse/v1/orders/1")
    const active = async () =>
      metricValue((await env.walera.get("/metrics")).body, 'walera_subscribers_active{type="exact"}')
    const before = await active()
    sse.close()
    const deadline = performance.now() + 3000
    while ((await active()) !== before - 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    expect(await active()).toBe(before - 1)
  })
})
