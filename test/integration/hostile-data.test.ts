// Hostile row data (docs/security.md): a single value far past every limit, a transaction of
// hidden bytes over router.max_tx_bytes, and a REPLICA IDENTITY FULL table whose key the
// catalog will not tell. Walera never exits because of data and never skips a table silently.
import { randomBytes } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest"
import { expectWhole, HOSTILE_SCHEMA, legit, sleep, type Stack, startStack } from "../support/Hostile.ts"
import { metricValue } from "../support/Scrape.ts"
import { openSse, type SseClient, waitUntil } from "../support/SseClient.ts"

/** Waits for a condition on a stream, failing at once if Walera exits meanwhile. */
const waitOrExit = (stack: Stack, s: SseClient, text: string, timeoutMs: number) =>
  Promise.race([
    s.waitFor((c) => c.raw().includes(text), timeoutMs, `"${text}" on the bystander stream`),
    stack.walera.exited.then((code) => {
      throw new Error(`walera exited with ${code}:\n${stack.walera.logs().slice(-3000)}`)
    }),
  ])

describe("one value of 90 MB", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: { WALERA_LIMITS_GLOBAL_CONCURRENT: "6", WALERA_LIMITS_PER_USER_CONCURRENT: "6" },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("in a table nobody subscribes to does not stop the process or disturb other streams", async () => {
    const bystander = await openSse(stack.url, "/sse/v1/orders/1", legit)
    // Control characters escape to six bytes each in JSON: 90 MB becomes 540 MB of string.
    await stack.db.sql("INSERT INTO audit (id, what) VALUES (1, repeat(chr(1), 90000000))")
    await stack.db.sql("UPDATE orders SET status = 'after-huge-value' WHERE id = 1")
    await waitOrExit(stack, bystander, "after-huge-value", 60_000)
    expect(bystander.isEnded(), "the bystander stream is still open").toBe(false)
    bystander.close()
    await expectWhole(stack, 6)
  }, 120_000)
})

describe("a transaction over router.max_tx_bytes", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_ROUTER_MAX_TX_BYTES: "1048576",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
      },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("ends the streams it touches with tx_too_large, though its bytes are all in a hidden column", async () => {
    const victim = await openSse(stack.url, "/sse/v1/orders/3", legit)
    const bystander = await openSse(stack.url, "/sse/v1/orders/1", legit)
    // 40 × 100 kB of decoded values in secret_note, which no grant shows: 4 MB against a 1 MiB bound.
    const updates = Array.from(
      { length: 40 },
      (_, i) => `UPDATE orders SET status = 'big-${i}', secret_note = repeat('s', 100000) || '${i}' WHERE id = 3;`,
    )
    await stack.db.sql(`BEGIN; ${updates.join("\n")} COMMIT;`)
    await Promise.race([victim.ended, sleep(20_000)])
    expect(victim.raw(), "the touched stream").toMatch(/event: error\ndata: \{"reason":"tx_too_large"\}\n\n$/)
    expect(victim.raw()).not.toContain("big-")
    expect(
      metricValue(await stack.metrics(), 'walera_tx_dropped_total{reason="tx_too_large"}'),
      "walera_tx_dropped_total{reason=tx_too_large}",
    ).toBe(1)
    await stack.db.sql("UPDATE orders SET status = 'after-big-tx' WHERE id = 1")
    await waitOrExit(stack, bystander, "after-big-tx", 20_000)
    bystander.close()
    await expectWhole(stack, 6)
  }, 60_000)
})

describe("a REPLICA IDENTITY FULL table whose primary key cannot be looked up", () => {
  const role = `walera_lim_${randomBytes(4).toString("hex")}`
  const DOCS = { user_id: "dora", tables: { docs: ["id", "body"] }, roots: ["docs"], ttl_seconds: 60 }
  let stack: Stack
  const asAdmin = async (database: string, sql: string) => {
    const url = new URL(inject("adminUrl"))
    url.pathname = `/${database}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  beforeAll(async () => {
    stack = await startStack({
      schema: `${HOSTILE_SCHEMA}
        CREATE TABLE docs (id bigint PRIMARY KEY, body text);
        ALTER TABLE docs REPLICA IDENTITY FULL;
        INSERT INTO docs VALUES (1, 'first'), (2, 'second');
        CREATE PUBLICATION walera_pub FOR ALL TABLES;`,
      env: { WALERA_LIMITS_GLOBAL_CONCURRENT: "6", WALERA_LIMITS_PER_USER_CONCURRENT: "6" },
      // A replication role that may not read pg_index: the walsender decodes, the key lookup fails.
      databaseUrl: async (db) => {
        await asAdmin(db.name, `CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'walera'`)
        await asAdmin(db.name, "REVOKE SELECT ON pg_catalog.pg_index FROM PUBLIC")
        const url = new URL(db.url)
        url.username = role
        url.password = "walera"
        return url.toString()
      },
    })
    stack.auth.answers.set("docs-token", { status: 200, body: DOCS })
  })
  afterAll(async () => {
    await stack?.close()
    await asAdmin("postgres", `DROP ROLE IF EXISTS ${role}`).catch(() => {})
  })

  it("ends its streams with wal_disconnected instead of skipping the table", async () => {
    const docs = await openSse(stack.url, "/sse/v1/docs/1", { authorization: "Bearer docs-token" })
    expect(docs.status).toBe(200)
    await stack.db.sql("UPDATE docs SET body = 'changed' WHERE id = 1")
    await Promise.race([docs.ended, sleep(20_000)])
    expect(docs.raw(), "the docs stream is told about the gap").toMatch(
      /event: error\ndata: \{"reason":"wal_disconnected"\}\n\n$/,
    )
    // Once the catalog answers again, the table streams.
    await stack.db.sql("GRANT SELECT ON pg_catalog.pg_index TO PUBLIC")
    await waitUntil(async () => (await stack.probe("/healthz")).status === 200, 40_000, "replication to stream again")
    const again = await openSse(stack.url, "/sse/v1/docs/2", { authorization: "Bearer docs-token" })
    await stack.db.sql("UPDATE docs SET body = 'after-grant' WHERE id = 2")
    await again.waitFor((c) => c.raw().includes("after-grant"), 15_000, "a docs change after the catalog recovered")
    again.close()
    await expectWhole(stack, 6)
  }, 90_000)
})
