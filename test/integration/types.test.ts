// Value mapping (docs/delivery-semantics.md) from real pgoutput text, plus the relation shapes PostgreSQL sends:
// REPLICA IDENTITY FULL, composite keys, added columns and unchanged TOAST values.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSse, type SseClient } from "../support/SseClient.ts"
import { type Env, setup } from "./fixtures.ts"

const SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE everything (
  id int PRIMARY KEY,
  i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8, f8nan float8, f8inf float8, b bool,
  j json, jb jsonb, by bytea, ts timestamp, tstz timestamptz, d date, t time, iv interval, u uuid,
  ip inet, tx text, m mood, arr_i int4[], arr_t text[], arr_i8 int8[], arr_2d int4[], n text, money_v money
);
CREATE TABLE pairs (a int, b text, v text, PRIMARY KEY (a, b));
CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE nokey (v text);
`

let env: Env
beforeAll(async () => {
  env = await setup({ schema: SCHEMA })
  env.auth.answers.set("all-token", {
    status: 200,
    body: {
      user_id: "typer",
      tables: {
        everything: [
          "i2",
          "i4",
          "i8",
          "num",
          "f4",
          "f8",
          "f8nan",
          "f8inf",
          "b",
          "j",
          "jb",
          "by",
          "ts",
          "tstz",
          "d",
          "t",
          "iv",
          "u",
          "ip",
          "tx",
          "m",
          "arr_i",
          "arr_t",
          "arr_i8",
          "arr_2d",
          "n",
          "money_v",
          "added",
        ],
        pairs: ["v"],
        docs: ["title", "body"],
        nokey: ["v"],
      },
    },
  })
})
afterAll(async () => {
  await env?.close()
})

const open = async (path: string): Promise<SseClient> => {
  await env.settle()
  const sse = await openSse(env.walera.url, path, { authorization: "Bearer all-token" })
  expect(sse.status).toBe(200)
  return sse
}

describe("value mapping", () => {
  it("maps every type of the value mapping", async () => {
    const sse = await open("/sse/v1/everything/1")
    await env.db.sql(`SET TIME ZONE 'Europe/Berlin'; INSERT INTO everything VALUES (
      1, 12, 123456, 9223372036854775807, 12345678901234567890.123456789, 1.5, 2.25, 'NaN', '-Infinity', true,
      '{"a": 1,\n "b": [1, 2]}', '{"big": 12345678901234567890123, "s": "x y"}', '\\x00ff10',
      '2026-05-18 08:30:12.5', '2026-05-18 10:30:12.123456+02', '2026-05-18', '08:30:00', '1 day 02:00:00',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', E'line\\nbreak "quoted"', 'happy',
      '{1,NULL,3}', '{"a,b","c\\"d",NULL}', '{9223372036854775807}', '{{1,2},{3,4}}', NULL, '12.50'
    )`)
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "insert")
    const data = sse.txs()[0]!.changes[0]!["data"] as Record<string, unknown>
    expect(data).toEqual({
      id: 1,
      i2: 12,
      i4: 123456,
      i8: "9223372036854775807",
      num: "12345678901234567890.123456789",
      f4: 1.5,
      f8: 2.25,
      f8nan: "NaN",
      f8inf: "-Infinity",
      b: true,
      j: { a: 1, b: [1, 2] },
      jb: { big: 1.2345678901234568e22, s: "x y" },
      by: "AP8Q",
      ts: "2026-05-18T08:30:12.5Z",
      tstz: "2026-05-18T08:30:12.123456Z",
      d: "2026-05-18",
      t: "08:30:00",
      iv: "1 day 02:00:00",
      u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
      ip: "192.168.0.1/24",
      tx: 'line\nbreak "quoted"',
      m: "happy",
      arr_i: [1, null, 3],
      arr_t: ["a,b", 'c"d', null],
      arr_i8: ["9223372036854775807"],
      arr_2d: "{{1,2},{3,4}}",
      n: null,
      money_v: expect.stringContaining("12.50"),
    })
    // Big numbers inside jsonb keep every digit on the wire.
    expect(sse.raw()).toContain('"big":12345678901234567890123')
    // One line per payload.
    for (const f of sse.events("tx")) expect(f.data).not.toContain("\n")
    sse.close()
  })
})

describe("relation shapes", () => {
  it("composite primary keys: pk parts joined with ',' and percent-encoded", async () => {
    const sse = await open(`/sse/v1/pairs/${encodeURIComponent("1,x%2Cy%25z")}`)
    await env.db.sql("INSERT INTO pairs VALUES (1, 'x,y%z', 'v1')")
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "composite insert")
    expect(sse.txs()[0]!.changes).toEqual([
      { op: "insert", table: "pairs", pk: "1,x%2Cy%25z", data: { a: 1, b: "x,y%z", v: "v1" } },
    ])
    sse.close()
  })

  it("an added column appears in later events (DDL picked up)", async () => {
    const sse = await open("/sse/v1/everything/1")
    await env.db.sql("ALTER TABLE everything ADD COLUMN added text DEFAULT 'new-col'")
    await env.db.sql("UPDATE everything SET i2 = 13 WHERE id = 1")
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "update after DDL")
    expect(sse.txs()[0]!.changes[0]!["data"]).toMatchObject({ i2: 13, added: "new-col" })
    sse.close()
  })

  it("unchanged TOAST values are omitted from updates (absent never means null)", async () => {
    const big = "B".repeat(100_000)
    await env.db.sql("INSERT INTO docs VALUES (1, 'first', $1)", [big])
    const sse = await open("/sse/v1/docs/1")
    await env.db.sql("UPDATE docs SET title = 'second' WHERE id = 1")
    await sse.waitFor((c) => c.txs().length === 1, 10_000, "update")
    expect(sse.txs()[0]!.changes[0]!["data"]).toEqual({ id: 1, title: "second" })
    sse.close()
  })

  it("REPLICA IDENTITY FULL: updates carry only the changed columns, deletes the pk", async () => {
    await env.db.sql("ALTER TABLE docs REPLICA IDENTITY FULL")
    await env.db.sql("INSERT INTO docs VALUES (2, 'two', 'short body')")
    const sse = await open("/sse/v1/docs/2")
    await env.db.sql("UPDATE docs SET body = 'changed body' WHERE id = 2")
    await env.db.sql("DELETE FROM docs WHERE id = 2")
    await sse.waitFor((c) => c.txs().length === 2, 10_000, "update and delete")
    expect(sse.txs().map((t) => t.changes[0])).toEqual([
      { op: "update", table: "docs", pk: "2", data: { id: 2, body: "changed body" } },
      { op: "delete", table: "docs", pk: "2" },
    ])
    sse.close()
  })

  it("a relation without a primary key is skipped with one warning", async () => {
    await env.db.sql("INSERT INTO nokey VALUES ('a')")
    await env.db.sql("INSERT INTO nokey VALUES ('b')")
    await env.settle()
    const warnings = env.walera
      .logLines()
      .filter((l) => l["msg"] === "relation skipped" && l["table"] === "public.nokey")
    expect(warnings.length).toBe(1)
    const metrics = (await env.walera.get("/metrics")).body
    expect(metrics).toMatch(/walera_wal_relations_skipped_total [1-9]/)
  })
})
