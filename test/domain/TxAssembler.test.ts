// Tests for transaction assembly (docs/delivery-semantics.md): decoded pgoutput messages in, Tx events with
// the JSON fragments every subscriber shares out; skipped relations, DDL, oversized
// transactions, and a property that chunking the message stream never changes the result.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { PgMessage, TupleValue } from "../../domain/PgMessage.ts"
import { type AssemblyEvent, assembleAll } from "../../domain/TxAssembler.ts"
import {
  AUDIT_LOG,
  assemble,
  auditLog,
  begin,
  col,
  commit,
  del,
  insert,
  LINE_ITEMS,
  lineItems,
  OID,
  ORDERS,
  orders,
  relation,
  SCHEMA,
  txEvents,
  txOf,
  update,
} from "./fixtures.ts"

const tags = (events: ReadonlyArray<AssemblyEvent>) => events.map((e) => e._tag)

describe("TxAssembler: changes", () => {
  it("turns an insert into a change with the shared head and one JSON fragment per column", () => {
    const tx = txOf([insert(ORDERS, ["42", "new", "1999", null])])
    expect(tx.changes).toHaveLength(1)
    const c = tx.changes[0]!
    expect(c.op).toBe("insert")
    expect(c.rel.name).toBe("orders")
    expect(c.pk).toBe("42")
    expect(c.head).toBe('{"op":"insert","table":"orders","pk":"42"')
    // int8 stays a string (no precision loss), int4 is a number, NULL is null.
    expect(c.values).toEqual(['"42"', '"new"', "1999", "null"])
  })

  it("turns a default-identity update into every column of the new tuple except unchanged TOAST", () => {
    const tx = txOf([update(ORDERS, ["42", "paid", "1999", undefined])])
    const c = tx.changes[0]!
    expect(c.op).toBe("update")
    expect(c.head).toBe('{"op":"update","table":"orders","pk":"42"')
    expect(c.values).toHaveLength(4)
    expect(c.values).toEqual(['"42"', '"paid"', "1999", undefined])
    expect(c.values![3]).toBeUndefined()
  })

  it("turns a delete into a change without values, its pk taken from the key tuple", () => {
    const tx = txOf([del(ORDERS, { key: ["42", null, null, null] })])
    expect(tx.changes[0]).toMatchObject({ op: "delete", pk: "42", values: null })
    expect(tx.changes[0]!.head).toBe('{"op":"delete","table":"orders","pk":"42"')
  })

  it("takes a delete's pk from the old row under REPLICA IDENTITY FULL", () => {
    const full = relation(
      ORDERS,
      "orders",
      [col("id", OID.int8, true), col("status", OID.text, true), col("total_cents", OID.int4, true)],
      { replicaIdentity: "full", primaryKey: ["id"] },
    )
    const { events } = assemble([full, begin(1), del(ORDERS, { old: ["7", "paid", "10"] }), commit(10n)])
    expect(txEvents(events)[0]!.changes[0]).toMatchObject({ op: "delete", pk: "7", values: null })
  })

  it("escapes the table name and the pk inside the head so it stays valid JSON", () => {
    const rel = relation(9, "notes", [col("slug", OID.text, true), col("body", OID.text)])
    const { events } = assemble([rel, begin(1), insert(9, ['say "hi"\n\\', "x"]), commit(10n)])
    const c = txEvents(events)[0]!.changes[0]!
    expect(c.pk).toBe('say "hi"\n\\')
    expect(JSON.parse(`${c.head}}`)).toEqual({ op: "insert", table: "notes", pk: 'say "hi"\n\\' })
    expect(c.head).not.toMatch(/\n/)
  })

  it("keeps WAL order across tables and operations", () => {
    const tx = txOf([
      update(ORDERS, ["42", "paid", "1999", "n"]),
      insert(LINE_ITEMS, ["7", "42", "3"]),
      del(LINE_ITEMS, { key: ["6", null, null] }),
      insert(AUDIT_LOG, ["1", "paid"]),
      update(ORDERS, ["42", "shipped", "1999", "n"]),
    ])
    expect(tx.changes.map((c) => `${c.op} ${c.rel.name} ${c.pk}`)).toEqual([
      "update orders 42",
      "insert line_items 7",
      "delete line_items 6",
      "insert audit_log 1",
      "update orders 42",
    ])
  })

  it("carries xid (unsigned 32-bit), commit LSN, end LSN and commit time of the transaction", () => {
    const { events } = assemble([
      ...SCHEMA,
      begin(4_000_000_000, 123n),
      insert(ORDERS, ["1", "a", "1", null]),
      commit(0x16_b374_d848n, 123n),
    ])
    const tx = txEvents(events)[0]!
    expect(tx.xid).toBe(4_000_000_000)
    expect(tx.commitLsn).toBe(0x16_b374_d848n)
    expect(tx.endLsn).toBe(0x16_b374_d850n)
    expect(tx.commitTime).toBe(123n)
  })

  it("sends a value that cannot be mapped as its text form and counts it", () => {
    const tx = txOf([insert(ORDERS, ["1", "a", "not-a-number", null])])
    expect(tx.changes[0]!.values![2]).toBe('"not-a-number"')
    expect(tx.fallbacks).toBe(1)
    expect(txOf([insert(ORDERS, ["1", "a", "5", null])]).fallbacks).toBe(0)
  })

  it("emits an empty transaction (no changes) as a Tx so its commit LSN can be confirmed", () => {
    const { events } = assemble([...SCHEMA, begin(5), commit(99n)])
    expect(tags(events)).toEqual(["Tx"])
    expect(txEvents(events)[0]!.changes).toEqual([])
  })
})

describe("TxAssembler: primary keys", () => {
  const orderItems = relation(20, "order_items", [
    col("order_id", OID.int8, true),
    col("label", OID.text, true),
    col("qty", OID.int4),
  ])

  it("joins a composite key with ',' after percent-encoding '%' and ',' in each part", () => {
    const { events } = assemble([
      orderItems,
      begin(1),
      insert(20, ["1", "a,b", "3"]),
      insert(20, ["2", "50%", "1"]),
      insert(20, ["3", "%2C,", "1"]),
      insert(20, ["4", "plain", "1"]),
      commit(10n),
    ])
    expect(txEvents(events)[0]!.changes.map((c) => c.pk)).toEqual(["1,a%2Cb", "2,50%25", "3,%252C%2C", "4,plain"])
  })

  it("does not encode a single-column key: the pk is the value as PostgreSQL prints it", () => {
    const rel = relation(21, "tags", [col("name", OID.text, true)])
    const { events } = assemble([rel, begin(1), insert(21, ["a,b%c"]), commit(10n)])
    expect(txEvents(events)[0]!.changes[0]!.pk).toBe("a,b%c")
  })

  it("orders a composite key by the catalog's primary key, not by column position", () => {
    const rel = relation(22, "pairs", [col("b", OID.text), col("a", OID.int4), col("v", OID.text)], {
      replicaIdentity: "full",
      primaryKey: ["a", "b"],
    })
    const { events } = assemble([rel, begin(1), insert(22, ["x", "1", "v"]), commit(10n)])
    expect(txEvents(events)[0]!.changes[0]!.pk).toBe("1,x")
  })

  it("reports an Anomaly and keeps the transaction when a row arrives without its key value", () => {
    const { events } = assemble([
      ...SCHEMA,
      begin(1),
      insert(ORDERS, [null, "a", "1", null]),
      insert(ORDERS, ["2", "a", "1", null]),
      commit(10n),
    ])
    expect(tags(events)).toEqual(["Anomaly", "Tx"])
    expect(txEvents(events)[0]!.changes.map((c) => c.pk)).toEqual(["2"])
  })
})

describe("TxAssembler: skipped relations", () => {
  const keyless = relation(30, "events", [col("at", OID.text), col("what", OID.text)])

  it("reports a relation without a key exactly once and ignores its changes", () => {
    const { events } = assemble([
      ...SCHEMA,
      keyless,
      begin(1),
      insert(30, ["now", "x"]),
      insert(ORDERS, ["1", "a", "1", null]),
      commit(10n),
      keyless, // PostgreSQL re-sends the Relation message before the next change of the table
      begin(2),
      insert(30, ["later", "y"]),
      commit(20n),
    ])
    const skipped = events.filter((e) => e._tag === "RelationSkipped")
    expect(skipped).toHaveLength(1)
    expect(skipped[0]).toMatchObject({ _tag: "RelationSkipped", schema: "public", name: "events" })
    expect(events.filter((e) => e._tag === "Anomaly")).toEqual([])
    const txs = txEvents(events)
    expect(txs.map((t) => t.changes.map((c) => c.rel.name))).toEqual([["orders"], []])
    expect(txs[0]!.tables.has("events")).toBe(false)
  })

  it("skips REPLICA IDENTITY NOTHING, and FULL without a known primary key", () => {
    const nothing = relation(31, "n", [col("id", OID.int4)], { replicaIdentity: "nothing" })
    const fullNoPk = relation(32, "f", [col("id", OID.int4, true)], { replicaIdentity: "full" })
    const { events } = assemble([nothing, fullNoPk])
    expect(events.map((e) => (e._tag === "RelationSkipped" ? e.name : e._tag))).toEqual(["n", "f"])
  })

  it("skips tables outside the public schema (they have no channel)", () => {
    const other = relation(33, "orders", [col("id", OID.int8, true)], { schema: "audit" })
    const { events } = assemble([
      ...SCHEMA,
      other,
      begin(1),
      insert(33, ["1"]),
      insert(ORDERS, ["1", "a", "1", null]),
      commit(10n),
    ])
    expect(events[0]).toMatchObject({ _tag: "RelationSkipped", schema: "audit", name: "orders" })
    const tx = txEvents(events)[0]!
    expect(tx.changes).toHaveLength(1)
    expect(tx.changes[0]!.rel.schema).toBe("public")
  })

  it("streams a previously skipped relation once a new Relation message gives it a key", () => {
    const withKey = relation(30, "events", [col("at", OID.text, true), col("what", OID.text)])
    const { events } = assemble([keyless, withKey, begin(1), insert(30, ["now", "x"]), commit(10n)])
    expect(tags(events)).toEqual(["RelationSkipped", "Tx"])
    expect(txEvents(events)[0]!.changes[0]!.pk).toBe("now")
  })
})

describe("TxAssembler: updates and REPLICA IDENTITY FULL", () => {
  // Under FULL, pgoutput flags every column as part of the identity; the adapter supplies the real primary key.
  const fullOrders = relation(
    ORDERS,
    "orders",
    [
      col("id", OID.int8, true),
      col("status", OID.text, true),
      col("total_cents", OID.int4, true),
      col("note", OID.text, true),
    ],
    { replicaIdentity: "full", primaryKey: ["id"] },
  )

  const fullUpdate = (old: ReadonlyArray<TupleValue>, now: ReadonlyArray<TupleValue>) => {
    const { events } = assemble([fullOrders, begin(1), update(ORDERS, now, { old }), commit(10n)])
    return txEvents(events)[0]!.changes[0]!
  }

  it("carries only the changed columns plus the primary key", () => {
    const c = fullUpdate(["42", "new", "1999", "x"], ["42", "paid", "1999", "x"])
    expect(c.pk).toBe("42")
    expect(c.values).toEqual(['"42"', '"paid"', undefined, undefined])
  })

  it("treats a value becoming NULL as a change and NULL staying NULL as none", () => {
    const c = fullUpdate(["42", "new", "1999", null], ["42", "new", null, null])
    expect(c.values).toEqual(['"42"', undefined, "null", undefined])
  })

  it("keeps the primary key even when nothing else changed", () => {
    const c = fullUpdate(["42", "new", "1999", "x"], ["42", "new", "1999", "x"])
    expect(c.values).toEqual(['"42"', undefined, undefined, undefined])
  })

  it("does not treat an unchanged TOAST value as changed", () => {
    const c = fullUpdate(["42", "new", "1999", "long"], ["42", "paid", "1999", undefined])
    expect(c.values).toEqual(['"42"', '"paid"', undefined, undefined])
  })

  it("under the default identity sends every new column, even ones that did not change", () => {
    const tx = txOf([update(ORDERS, ["42", "new", "1999", null], { key: ["41", null, null, null] })])
    // The key changed 41 → 42: the change is about the new row.
    expect(tx.changes[0]).toMatchObject({ pk: "42", values: ['"42"', '"new"', "1999", "null"] })
  })
})

describe("TxAssembler: DDL", () => {
  it("replaces the cached columns on a new Relation message, so added columns appear", () => {
    const ordersV2 = relation(ORDERS, "orders", [...orders.columns, col("coupon", OID.text)])
    const { events } = assemble([
      ...SCHEMA,
      begin(1),
      insert(ORDERS, ["1", "a", "1", null]),
      commit(10n),
      ordersV2,
      begin(2),
      insert(ORDERS, ["2", "b", "2", null, "SPRING"]),
      commit(20n),
    ])
    const [before, after] = txEvents(events)
    expect(before!.changes[0]!.rel.columns.map((c) => c.name)).toEqual(["id", "status", "total_cents", "note"])
    expect(before!.changes[0]!.values).toHaveLength(4)
    expect(after!.changes[0]!.rel.columns.map((c) => c.name)).toEqual(["id", "status", "total_cents", "note", "coupon"])
    expect(after!.changes[0]!.values).toEqual(['"2"', '"b"', "2", "null", '"SPRING"'])
  })

  it("uses a changed column type from the new Relation message", () => {
    const ordersV2 = relation(ORDERS, "orders", [
      col("id", OID.int8, true),
      col("status", OID.text),
      col("total_cents", OID.text),
      col("note", OID.text),
    ])
    const { events } = assemble([...SCHEMA, ordersV2, begin(1), insert(ORDERS, ["1", "a", "12", null]), commit(10n)])
    expect(txEvents(events)[0]!.changes[0]!.values![2]).toBe('"12"')
  })
})

describe("TxAssembler: protocol anomalies", () => {
  it("reports a change outside a transaction and keeps going", () => {
    const { events } = assemble([
      ...SCHEMA,
      insert(ORDERS, ["1", "a", "1", null]),
      begin(1),
      insert(ORDERS, ["2", "a", "1", null]),
      commit(10n),
    ])
    expect(tags(events)).toEqual(["Anomaly", "Tx"])
    expect(txEvents(events)[0]!.changes.map((c) => c.pk)).toEqual(["2"])
  })

  it("reports a commit outside a transaction, a change of an unknown relation, and a nested begin", () => {
    expect(tags(assemble([commit(1n)]).events)).toEqual(["Anomaly"])
    expect(tags(assemble([begin(1), insert(77, ["1"]), commit(2n)]).events)).toEqual(["Anomaly", "Tx"])
    const nested = assemble([...SCHEMA, begin(1), insert(ORDERS, ["1", "a", "1", null]), begin(2), commit(3n)])
    expect(tags(nested.events)).toEqual(["Anomaly", "Tx"])
    expect(txEvents(nested.events)[0]).toMatchObject({ xid: 2, changes: [] })
  })

  it("reports a Truncate with the names of the known tables", () => {
    const { events } = assemble([...SCHEMA, { _tag: "truncate", relationIds: [ORDERS, 999, AUDIT_LOG] }])
    expect(events).toEqual([{ _tag: "Truncate", tables: ["orders", "audit_log"] }])
  })

  it("ignores Origin, Type and logical messages", () => {
    const { events } = assemble([
      ...SCHEMA,
      begin(1),
      { _tag: "other", kind: "origin" },
      insert(ORDERS, ["1", "a", "1", null]),
      { _tag: "other", kind: "type" },
      commit(10n),
    ])
    expect(tags(events)).toEqual(["Tx"])
  })
})

describe("TxAssembler: tables summary", () => {
  it("records the first pk per table and whether more than one distinct pk was touched", () => {
    const tx = txOf([
      insert(ORDERS, ["1", "a", "1", null]),
      update(ORDERS, ["1", "b", "1", null]),
      insert(LINE_ITEMS, ["5", "1", "1"]),
      insert(LINE_ITEMS, ["6", "1", "1"]),
      del(LINE_ITEMS, { key: ["5", null, null] }),
    ])
    expect([...tx.tables.keys()].sort()).toEqual(["line_items", "orders"])
    expect(tx.tables.get("orders")).toEqual({ firstPk: "1", multi: false })
    expect(tx.tables.get("line_items")).toEqual({ firstPk: "5", multi: true })
    expect(tx.tables.has("audit_log")).toBe(false)
  })

  it("does not carry the summary over to the next transaction", () => {
    const { events } = assemble([
      ...SCHEMA,
      begin(1),
      insert(ORDERS, ["1", "a", "1", null]),
      commit(10n),
      begin(2),
      insert(ORDERS, ["2", "a", "1", null]),
      commit(20n),
    ])
    const [a, b] = txEvents(events)
    expect(a!.tables.get("orders")).toEqual({ firstPk: "1", multi: false })
    expect(b!.tables.get("orders")).toEqual({ firstPk: "2", multi: false })
  })
})

describe("TxAssembler: oversized transactions", () => {
  const big: ReadonlyArray<PgMessage> = [
    begin(50),
    insert(ORDERS, ["1", "a", "1", null]),
    insert(LINE_ITEMS, ["10", "1", "1"]),
    update(ORDERS, ["1", "b", "1", null]),
    insert(LINE_ITEMS, ["11", "1", "1"]),
    del(AUDIT_LOG, { key: ["3", null] }),
    commit(500n),
  ]
  const small: ReadonlyArray<PgMessage> = [begin(51), insert(ORDERS, ["2", "x", "2", null]), commit(600n)]

  it("spills every change past maxChangesPerTx and ends with Oversized instead of a Tx", () => {
    const { events } = assemble([...SCHEMA, ...big], 3)
    expect(tags(events)).toEqual(["Spill", "Spill", "Oversized"])
    const spilled = events.flatMap((e) => (e._tag === "Spill" ? e.changes.map((c) => `${c.table}/${c.pk}`) : []))
    expect(spilled).toEqual(["orders/1", "line_items/10", "orders/1", "line_items/11", "audit_log/3"])
    for (const e of events) if (e._tag === "Spill") expect(e.xid).toBe(50)
    const last = events[2]!
    expect(last._tag).toBe("Oversized")
    if (last._tag !== "Oversized") return
    expect(last).toMatchObject({ xid: 50, commitLsn: 500n, endLsn: 508n, changeCount: 5 })
    expect(last.tables.get("orders")).toEqual({ firstPk: "1", multi: false })
    expect(last.tables.get("line_items")).toEqual({ firstPk: "10", multi: true })
    expect(last.tables.get("audit_log")).toEqual({ firstPk: "3", multi: false })
  })

  it("holds a transaction of exactly maxChangesPerTx changes as a normal Tx", () => {
    const { events } = assemble([...SCHEMA, ...big.slice(0, 4), big[6]!], 3)
    expect(tags(events)).toEqual(["Tx"])
    expect(txEvents(events)[0]!.changes).toHaveLength(3)
  })

  it("leaves the next transaction unaffected", () => {
    const { events } = assemble([...SCHEMA, ...big, ...small], 3)
    expect(tags(events)).toEqual(["Spill", "Spill", "Oversized", "Tx"])
    const tx = txEvents(events)[0]!
    expect(tx.xid).toBe(51)
    expect(tx.commitLsn).toBe(600n)
    expect(tx.changes.map((c) => `${c.rel.name}/${c.pk}`)).toEqual(["orders/2"])
    expect(tx.changes[0]!.values).toEqual(['"2"', '"x"', "2", "null"])
    expect([...tx.tables.keys()]).toEqual(["orders"])
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Property: assembly does not depend on how the message stream is chunked.

interface RowSpec {
  readonly rel: 0 | 1 | 2
  readonly op: "insert" | "update" | "delete"
  readonly pk: number
  readonly cells: ReadonlyArray<TupleValue>
}

const cell = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.string({ maxLength: 6 }),
)
const rowSpec: fc.Arbitrary<RowSpec> = fc.record({
  rel: fc.constantFrom(0 as const, 1 as const, 2 as const),
  op: fc.constantFrom("insert" as const, "update" as const, "delete" as const),
  pk: fc.integer({ min: 1, max: 4 }),
  cells: fc.array(cell, { minLength: 3, maxLength: 3 }),
})

const relIds = [ORDERS, LINE_ITEMS, AUDIT_LOG] as const
const widths = [orders.columns.length, lineItems.columns.length, auditLog.columns.length] as const

const rowMessage = (r: RowSpec): PgMessage => {
  const width = widths[r.rel]
  const id = relIds[r.rel]
  const tuple: TupleValue[] = [String(r.pk), ...r.cells.slice(0, width - 1)]
  if (r.op === "delete") return del(id, { key: [String(r.pk), ...new Array<null>(width - 1).fill(null)] })
  // Inserts never carry unchanged-TOAST markers.
  return r.op === "insert"
    ? insert(
        id,
        tuple.map((v) => (v === undefined ? null : v)),
      )
    : update(id, tuple)
}

const streamArb = fc
  .record({
    txs: fc.array(fc.array(rowSpec, { maxLength: 6 }), { minLength: 1, maxLength: 5 }),
    ddlAfter: fc.integer({ min: 0, max: 5 }),
    maxChangesPerTx: fc.integer({ min: 1, max: 8 }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  })
  .map(({ txs, ddlAfter, maxChangesPerTx, cuts }) => {
    const msgs: PgMessage[] = [...SCHEMA]
    txs.forEach((rows, i) => {
      // A re-sent Relation message between transactions (what PostgreSQL does after DDL or a cache flush).
      if (i === ddlAfter) msgs.push(orders)
      msgs.push(begin(1000 + i), ...rows.map(rowMessage), commit(BigInt(10_000 + 100 * i)))
    })
    const points = [...new Set(cuts.map((c) => c % (msgs.length + 1)))].sort((a, b) => a - b)
    return { msgs, maxChangesPerTx, points, txCount: txs.length }
  })

const normalize = (events: ReadonlyArray<AssemblyEvent>) =>
  events.map((e) =>
    e._tag === "Tx"
      ? {
          _tag: e._tag,
          xid: e.tx.xid,
          commitLsn: e.tx.commitLsn,
          changes: e.tx.changes.map((c) => ({ op: c.op, table: c.rel.name, pk: c.pk, values: c.values, head: c.head })),
          tables: [...e.tx.tables],
        }
      : e._tag === "Oversized"
        ? { ...e, tables: [...e.tables] }
        : e,
  )

describe("TxAssembler: router.max_tx_bytes", () => {
  it("spills a transaction whose decoded values pass max_tx_bytes and ends it as Oversized(bytes)", () => {
    const big = "x".repeat(300)
    const { events } = assemble(
      [...SCHEMA, begin(9), insert(ORDERS, ["1", big, "1", null]), insert(ORDERS, ["2", big, "2", null]), commit(10n)],
      10_000,
      500,
    )
    expect(tags(events)).toEqual(["Spill", "Oversized"])
    expect(events[0]).toMatchObject({
      _tag: "Spill",
      changes: [
        { table: "orders", pk: "1" },
        { table: "orders", pk: "2" },
      ],
    })
    expect(events[1]).toMatchObject({ _tag: "Oversized", xid: 9, reason: "bytes", changeCount: 2 })
  })

  it("treats a value the parser did not decode as over the limit, without touching its bytes", () => {
    const { events } = assemble(
      [...SCHEMA, begin(9), insert(ORDERS, ["1", { _tag: "large", bytes: 90_000_000 }, "1", null]), commit(10n)],
      10_000,
      64 * 1024 * 1024,
    )
    expect(tags(events)).toEqual(["Spill", "Oversized"])
    expect(events[1]).toMatchObject({ reason: "bytes" })
  })

  it("holds a transaction just under the limit whole", () => {
    const { events } = assemble([...SCHEMA, begin(9), insert(ORDERS, ["1", "ok", "1", null]), commit(10n)], 10_000, 500)
    expect(tags(events)).toEqual(["Tx"])
    expect(txEvents(events)[0]!.bytes).toBeGreaterThan(0)
  })
})

describe("TxAssembler: bounds", () => {
  it("property: every transaction ends exactly once, and a held one stays within both limits", () => {
    fc.assert(
      fc.property(streamArb, fc.integer({ min: 40, max: 400 }), ({ msgs, maxChangesPerTx, txCount }, maxTxBytes) => {
        const events = assembleAll({ maxChangesPerTx, maxTxBytes }, msgs)
        expect(events.filter((e) => e._tag === "Tx" || e._tag === "Oversized")).toHaveLength(txCount)
        expect(events.filter((e) => e._tag === "Anomaly")).toEqual([])
        for (const tx of txEvents(events)) {
          expect(tx.changes.length).toBeLessThanOrEqual(maxChangesPerTx)
          expect(tx.bytes).toBeLessThanOrEqual(maxTxBytes)
        }
      }),
      { numRuns: 300 },
    )
  })

  it("property: a Tx and the spilled changes of an oversized one name the same rows as the messages", () => {
    fc.assert(
      fc.property(streamArb, ({ msgs, maxChangesPerTx }) => {
        const rows = (events: ReadonlyArray<AssemblyEvent>) =>
          events.flatMap((e) =>
            e._tag === "Tx"
              ? e.tx.changes.map((c) => `${c.rel.name}:${c.pk}`)
              : e._tag === "Spill"
                ? e.changes.map((c) => `${c.table}:${c.pk}`)
                : [],
          )
        const unbounded = rows(assembleAll({ maxChangesPerTx: 1_000_000 }, msgs))
        expect(rows(assembleAll({ maxChangesPerTx }, msgs))).toEqual(unbounded)
        expect(normalize(assembleAll({ maxChangesPerTx }, msgs))).toEqual(
          normalize(assembleAll({ maxChangesPerTx }, msgs)),
        )
      }),
      { numRuns: 200 },
    )
  })
})
