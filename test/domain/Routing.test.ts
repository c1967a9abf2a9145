// Tests for the routing rules (docs/delivery-semantics.md) and the whitelist filter (docs/auth.md): the routing index,
// the anchor rule, ride-along, the multi-root guard, one encoding per whitelist, the exact
// payload shape, and properties that the whitelist never leaks and the guard drops exactly
// the multi-root transactions.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { WhitelistPool } from "../../domain/Grant.ts"
import type { PgMessage, TupleValue } from "../../domain/PgMessage.ts"
import { anchorSurvives, encodeTx, planTx, type Routable, RoutingIndex } from "../../domain/Routing.ts"
import type { Tx } from "../../domain/TxAssembler.ts"
import { columnMask, encodeChange, makeWhitelist, type Whitelist } from "../../domain/Whitelist.ts"
import {
  AUDIT_LOG,
  assemble,
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
  pgMicros,
  relation,
  txEvents,
  txOf,
  update,
} from "./fixtures.ts"

interface Sub extends Routable {
  readonly id: string
}

const sub = (id: string, table: string, pk: string | null, whitelist: Whitelist): Sub => ({
  id,
  table,
  pk,
  whitelist,
})

const everything = makeWhitelist({
  orders: ["id", "status", "total_cents", "note"],
  line_items: ["id", "order_id", "qty"],
  audit_log: ["id", "what"],
})

const indexOf = (...subs: Sub[]): RoutingIndex<Sub> => {
  const index = new RoutingIndex<Sub>()
  for (const s of subs) index.add(s)
  return index
}

/** Subscriber ids per audience, and the multi-root drops. */
const planIds = (tx: Tx, index: RoutingIndex<Sub>) => {
  const plan = planTx(tx, index)
  return {
    audiences: plan.audiences.map((a) => a.subscribers.map((s) => s.id)),
    multiRoot: plan.multiRoot.map((s) => s.id),
  }
}

/** The parsed payload a subscriber receives, or undefined when it receives nothing. */
const payloadFor = (tx: Tx, index: RoutingIndex<Sub>, s: Sub): unknown => {
  const a = planTx(tx, index).audiences.find((x) => x.subscribers.includes(s))
  return a === undefined ? undefined : JSON.parse(a.json)
}

const visited = (index: RoutingIndex<Sub>, table: string, pk: string): string[] => {
  const ids: string[] = []
  index.touched(table, pk, (s) => ids.push(s.id))
  return ids.sort()
}

describe("RoutingIndex", () => {
  it("visits the subscribers of the exact row and of the whole table, nobody else", () => {
    const index = indexOf(
      sub("o42", "orders", "42", everything),
      sub("o42b", "orders", "42", everything),
      sub("o43", "orders", "43", everything),
      sub("oall", "orders", null, everything),
      sub("li42", "line_items", "42", everything),
      sub("liall", "line_items", null, everything),
    )
    expect(index.size).toBe(6)
    expect(visited(index, "orders", "42")).toEqual(["o42", "o42b", "oall"])
    expect(visited(index, "orders", "43")).toEqual(["o43", "oall"])
    expect(visited(index, "orders", "44")).toEqual(["oall"])
    expect(visited(index, "line_items", "42")).toEqual(["li42", "liall"])
    expect(visited(index, "audit_log", "42")).toEqual([])
  })

  it("removes exact and wildcard subscribers, reports whether it did, and drops empty buckets", () => {
    const a = sub("a", "orders", "1", everything)
    const b = sub("b", "orders", "1", everything)
    const all = sub("all", "orders", null, everything)
    const index = indexOf(a, b, all)
    expect(index.remove(a)).toBe(true)
    expect(index.size).toBe(2)
    expect(visited(index, "orders", "1")).toEqual(["all", "b"])
    expect(index.remove(a)).toBe(false)
    expect(index.remove(sub("a", "orders", "1", everything))).toBe(false) // an equal-looking object is not the subscriber
    expect(index.size).toBe(2)
    expect(index.remove(b)).toBe(true)
    expect(index.exact.size).toBe(0)
    expect(index.remove(all)).toBe(true)
    expect(index.wildcard.size).toBe(0)
    expect(index.size).toBe(0)
    expect(visited(index, "orders", "1")).toEqual([])
  })

  it("keeps a row's bucket while another subscriber of another row of the table remains", () => {
    const a = sub("a", "orders", "1", everything)
    const b = sub("b", "orders", "2", everything)
    const index = indexOf(a, b)
    index.remove(a)
    expect(visited(index, "orders", "2")).toEqual(["b"])
    expect(index.exact.get("orders")?.has("1")).toBe(false)
  })
})

describe("Routing: anchor rule", () => {
  it("does not deliver a child change to the root's subscribers when the root row is not in the transaction", () => {
    const tx = txOf([insert(LINE_ITEMS, ["7", "42", "3"])])
    const o42 = sub("o42", "orders", "42", everything)
    const oall = sub("oall", "orders", null, everything)
    expect(planIds(tx, indexOf(o42, oall))).toEqual({ audiences: [], multiRoot: [] })
    expect(anchorSurvives(tx, o42)).toBe(false)
  })

  it("does not deliver when the root change is an update whose only visible column is the PK", () => {
    const pkOnly = makeWhitelist({ orders: [], line_items: ["id", "qty"] })
    const withStatus = makeWhitelist({ orders: ["status"], line_items: ["id", "qty"] })
    const tx = txOf([update(ORDERS, ["42", "paid", "1999", null]), insert(LINE_ITEMS, ["7", "42", "3"])])
    const blind = sub("blind", "orders", "42", pkOnly)
    const sees = sub("sees", "orders", "42", withStatus)
    expect(anchorSurvives(tx, blind)).toBe(false)
    expect(anchorSurvives(tx, sees)).toBe(true)
    expect(planIds(tx, indexOf(blind, sees))).toEqual({ audiences: [["sees"]], multiRoot: [] })
  })

  it("does not deliver a REPLICA IDENTITY FULL update that changed only columns outside the whitelist", () => {
    const full = relation(
      ORDERS,
      "orders",
      [col("id", OID.int8, true), col("status", OID.text, true), col("note", OID.text, true)],
      { replicaIdentity: "full", primaryKey: ["id"] },
    )
    const { events } = assemble([
      full,
      begin(1),
      update(ORDERS, ["42", "paid", "secret v2"], { old: ["42", "paid", "secret v1"] }),
      commit(10n),
    ])
    const tx = txEvents(events)[0]!
    const s = sub("s", "orders", "42", makeWhitelist({ orders: ["status"] }))
    expect(planIds(tx, indexOf(s))).toEqual({ audiences: [], multiRoot: [] })
  })

  it("anchors on an insert or a delete even when only the PK is visible", () => {
    const pkOnly = makeWhitelist({ orders: [] })
    const ins = txOf([insert(ORDERS, ["42", "new", "1", null])])
    const gone = txOf([del(ORDERS, { key: ["42", null, null, null] })])
    const s = sub("s", "orders", "42", pkOnly)
    expect(payloadFor(ins, indexOf(s), s)).toMatchObject({ changes: [{ op: "insert", data: { id: "42" } }] })
    expect(payloadFor(gone, indexOf(s), s)).toMatchObject({ changes: [{ op: "delete", pk: "42" }] })
  })

  it("does not deliver a root table that the subscriber's whitelist does not grant", () => {
    const tx = txOf([update(ORDERS, ["42", "paid", "1", null]), insert(LINE_ITEMS, ["7", "42", "3"])])
    const s = sub("s", "orders", "42", makeWhitelist({ line_items: ["qty"] }))
    expect(planIds(tx, indexOf(s))).toEqual({ audiences: [], multiRoot: [] })
  })
})

describe("Routing: ride-along", () => {
  it("includes the transaction's other changes after the whitelist; ungranted tables never appear", () => {
    const w = makeWhitelist({ orders: ["status"], line_items: ["qty"] })
    const tx = txOf([
      update(ORDERS, ["42", "paid", "1999", "internal"]),
      insert(LINE_ITEMS, ["7", "42", "3"]),
      insert(AUDIT_LOG, ["1", "order 42 paid"]),
      del(LINE_ITEMS, { key: ["6", null, null] }),
    ])
    const s = sub("s", "orders", "42", w)
    const payload = payloadFor(tx, indexOf(s), s) as { changes: unknown[] }
    expect(payload.changes).toEqual([
      { op: "update", table: "orders", pk: "42", data: { id: "42", status: "paid" } },
      { op: "insert", table: "line_items", pk: "7", data: { id: "7", qty: 3 } },
      { op: "delete", table: "line_items", pk: "6" },
    ])
    expect(JSON.stringify(payload)).not.toContain("audit_log")
    expect(JSON.stringify(payload)).not.toContain("internal")
  })

  it("drops a ride-along update whose only visible column is the PK, but keeps the anchor", () => {
    const w = makeWhitelist({ orders: ["status"], line_items: ["qty"] })
    const tx = txOf([update(ORDERS, ["42", "paid", "1", null]), update(LINE_ITEMS, ["7", "42", undefined])])
    const s = sub("s", "orders", "42", w)
    const payload = payloadFor(tx, indexOf(s), s) as { changes: Array<{ table: string }> }
    expect(payload.changes.map((c) => c.table)).toEqual(["orders"])
  })

  it("is not FK-aware: a child of another root in the same transaction rides along", () => {
    const tx = txOf([update(ORDERS, ["42", "paid", "1", null]), insert(LINE_ITEMS, ["9", "99", "1"])])
    const s = sub("s", "orders", "42", everything)
    const payload = payloadFor(tx, indexOf(s), s) as { changes: Array<{ pk: string }> }
    expect(payload.changes.map((c) => c.pk)).toEqual(["42", "9"])
  })
})

describe("Routing: multi-root guard", () => {
  const tx = txOf([
    update(ORDERS, ["1", "paid", "1", null]),
    update(ORDERS, ["2", "paid", "1", null]),
    insert(LINE_ITEMS, ["5", "1", "1"]),
  ])

  it("drops the transaction for subscribers of that table only", () => {
    const o1 = sub("o1", "orders", "1", everything)
    const o2 = sub("o2", "orders", "2", everything)
    const oall = sub("oall", "orders", null, everything)
    const o3 = sub("o3", "orders", "3", everything)
    const li = sub("li", "line_items", "5", everything)
    const liall = sub("liall", "line_items", null, everything)
    // rule 2 is per table: two orders make it multi-root for orders, not for line_items
    expect(tx.tables.get("orders")?.multi).toBe(true)
    expect(tx.tables.get("line_items")?.multi).toBe(false)
    expect(tx.tables.has("audit_log")).toBe(false)
    const plan = planIds(tx, indexOf(o1, o2, oall, o3, li, liall))
    expect(plan.multiRoot.sort()).toEqual(["o1", "o2", "oall"])
    expect(plan.audiences).toEqual([["li", "liall"]])
  })

  it("sends the line-item subscriber the whole transaction, both orders included", () => {
    const li = sub("li", "line_items", "5", everything)
    const payload = payloadFor(tx, indexOf(li), li) as { changes: Array<{ table: string; pk: string }> }
    expect(payload.changes.map((c) => `${c.table}/${c.pk}`)).toEqual(["orders/1", "orders/2", "line_items/5"])
  })

  it("accepts several changes to the same pk", () => {
    const same = txOf([
      insert(ORDERS, ["1", "new", "1", null]),
      update(ORDERS, ["1", "paid", "1", null]),
      update(ORDERS, ["1", "shipped", "1", null]),
    ])
    const o1 = sub("o1", "orders", "1", everything)
    const oall = sub("oall", "orders", null, everything)
    const plan = planTx(same, indexOf(o1, oall))
    expect(plan.multiRoot).toEqual([])
    expect(plan.audiences).toHaveLength(1)
    expect(plan.audiences[0]!.subscribers).toEqual([o1, oall])
    expect((JSON.parse(plan.audiences[0]!.json) as { changes: unknown[] }).changes).toHaveLength(3)
  })

  it("counts a delete of a second root as a second pk", () => {
    const t = txOf([update(ORDERS, ["1", "paid", "1", null]), del(ORDERS, { key: ["2", null, null, null] })])
    expect(planIds(t, indexOf(sub("o1", "orders", "1", everything)))).toEqual({ audiences: [], multiRoot: ["o1"] })
  })
})

describe("Routing: one encoding per whitelist", () => {
  it("gives subscribers with equal whitelists one shared audience and another whitelist its own", () => {
    const pool = new WhitelistPool()
    const w1 = pool.acquire({ orders: ["status", "id"], line_items: ["qty"] })
    const w1again = pool.acquire({ line_items: ["qty"], orders: ["id", "status"] })
    const w2 = pool.acquire({ orders: ["status", "total_cents"] })
    expect(w1again).toBe(w1)
    expect(w2).not.toBe(w1)

    const a = sub("a", "orders", "1", w1)
    const b = sub("b", "orders", null, w1again)
    const c = sub("c", "orders", "1", w2)
    const tx = txOf([update(ORDERS, ["1", "paid", "1999", null]), insert(LINE_ITEMS, ["5", "1", "2"])])
    const plan = planTx(tx, indexOf(a, b, c))
    expect(plan.audiences).toHaveLength(2)
    const ofA = plan.audiences.find((x) => x.subscribers.includes(a))!
    const ofB = plan.audiences.find((x) => x.subscribers.includes(b))!
    const ofC = plan.audiences.find((x) => x.subscribers.includes(c))!
    expect(ofB).toBe(ofA)
    expect(ofB.json).toBe(ofA.json)
    expect(ofA.subscribers).toHaveLength(2)
    expect(ofC).not.toBe(ofA)
    expect(ofC.subscribers).toEqual([c])
    expect(JSON.parse(ofA.json).changes).toEqual([
      { op: "update", table: "orders", pk: "1", data: { id: "1", status: "paid" } },
      { op: "insert", table: "line_items", pk: "5", data: { id: "5", qty: 2 } },
    ])
    expect(JSON.parse(ofC.json).changes).toEqual([
      { op: "update", table: "orders", pk: "1", data: { id: "1", status: "paid", total_cents: 1999 } },
    ])
  })

  it("lists a subscriber once even when several changes touch its channel", () => {
    const oall = sub("oall", "orders", null, everything)
    const tx = txOf([insert(ORDERS, ["1", "a", "1", null]), update(ORDERS, ["1", "b", "1", null])])
    expect(planIds(tx, indexOf(oall))).toEqual({ audiences: [["oall"]], multiRoot: [] })
  })

  it("shares one audience between subscribers of different tables with the same whitelist", () => {
    const o = sub("o", "orders", "1", everything)
    const li = sub("li", "line_items", "5", everything)
    const tx = txOf([update(ORDERS, ["1", "paid", "1", null]), insert(LINE_ITEMS, ["5", "1", "2"])])
    expect(planIds(tx, indexOf(o, li))).toEqual({ audiences: [["o", "li"]], multiRoot: [] })
  })

  it("delivers every row of the table to /all subscribers, and nothing of other tables", () => {
    const oall = sub("oall", "orders", null, everything)
    const aall = sub("aall", "audit_log", null, everything)
    const tx = txOf([update(ORDERS, ["9", "paid", "1", null])])
    expect(planIds(tx, indexOf(oall, aall))).toEqual({ audiences: [["oall"]], multiRoot: [] })
  })

  it("plans nothing for an empty transaction or an empty index", () => {
    const s = sub("s", "orders", "1", everything)
    expect(planIds(txOf([]), indexOf(s))).toEqual({ audiences: [], multiRoot: [] })
    expect(planIds(txOf([insert(ORDERS, ["1", "a", "1", null])]), indexOf())).toEqual({ audiences: [], multiRoot: [] })
  })
})

describe("Routing: encodeTx payload", () => {
  const commitTime = pgMicros("2026-05-18T08:30:12Z")

  it("is the documented tx shape on one line: tx_id, commit_ts, changes; data keys in table-column order", () => {
    // The grant lists columns in another order than the table does; the payload follows the table.
    const w = makeWhitelist({ orders: ["total_cents", "status"] })
    const tx = txOf([update(ORDERS, ["42", "paid", "1999", null])], 735, commitTime)
    const encoded = encodeTx(tx, "2026-05-18T08:30:12Z", w)!
    expect(encoded.json).toBe(
      '{"tx_id":735,"commit_ts":"2026-05-18T08:30:12Z","changes":[{"op":"update","table":"orders","pk":"42","data":{"id":"42","status":"paid","total_cents":1999}}]}',
    )
    expect(encoded.anchors).toEqual(["orders"])
    const s = sub("s", "orders", "42", w)
    expect(planTx(tx, indexOf(s)).audiences[0]!.json).toBe(encoded.json)
  })

  it("puts keys in order and keeps the payload on one line whatever the values hold", () => {
    const tx = txOf(
      [
        insert(ORDERS, ["42", "line1\nline2\r\u2028", "1", '{"a":1}']),
        insert(LINE_ITEMS, ["7", "42", "3"]),
        del(AUDIT_LOG, { key: ["1", null] }),
      ],
      4_000_000_000,
      commitTime + 123_400n,
    )
    const s = sub("s", "orders", "42", everything)
    const json = planTx(tx, indexOf(s)).audiences[0]!.json
    expect(json).not.toMatch(/[\r\n]/)
    const parsed = JSON.parse(json) as Record<string, unknown>
    expect(Object.keys(parsed)).toEqual(["tx_id", "commit_ts", "changes"])
    expect(parsed["tx_id"]).toBe(4_000_000_000)
    expect(parsed["commit_ts"]).toBe("2026-05-18T08:30:12.1234Z")
    const changes = parsed["changes"] as Array<Record<string, unknown>>
    expect(changes.map((c) => Object.keys(c))).toEqual([
      ["op", "table", "pk", "data"],
      ["op", "table", "pk", "data"],
      ["op", "table", "pk"],
    ])
    expect(Object.keys(changes[0]!["data"] as object)).toEqual(["id", "status", "total_cents", "note"])
    expect(Object.keys(changes[1]!["data"] as object)).toEqual(["id", "order_id", "qty"])
    expect(changes[0]!["data"]).toEqual({ id: "42", status: "line1\nline2\r\u2028", total_cents: 1, note: '{"a":1}' })
  })

  it("is undefined when nothing survives the whitelist", () => {
    const tx = txOf([insert(AUDIT_LOG, ["1", "x"])])
    expect(encodeTx(tx, "2026-05-18T08:30:12Z", makeWhitelist({ orders: ["status"] }))).toBeUndefined()
  })

  it("gives the PK even when the grant does not list it, and never a column named in no table", () => {
    const w = makeWhitelist({ orders: ["*", "status"] })
    const c = txOf([insert(ORDERS, ["42", "new", "1", "n"])]).changes[0]!
    expect(JSON.parse(encodeChange(c, w)!)).toEqual({
      op: "insert",
      table: "orders",
      pk: "42",
      data: { id: "42", status: "new" },
    })
    expect([...columnMask(w, c.rel)!]).toEqual([1, 1, 0, 0])
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Properties

const cell: fc.Arbitrary<TupleValue> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.integer({ min: -50, max: 50 }).map(String),
  fc.string({ maxLength: 5 }),
)

interface RowSpec {
  readonly table: "orders" | "line_items"
  readonly op: "insert" | "update" | "delete"
  readonly pk: number
  readonly cells: ReadonlyArray<TupleValue>
}

const rowSpec: fc.Arbitrary<RowSpec> = fc.record({
  table: fc.constantFrom("orders" as const, "line_items" as const),
  op: fc.constantFrom("insert" as const, "update" as const, "delete" as const),
  pk: fc.integer({ min: 1, max: 3 }),
  cells: fc.array(cell, { minLength: 3, maxLength: 3 }),
})

const rowMessage = (r: RowSpec): PgMessage => {
  const rel = r.table === "orders" ? orders : lineItems
  const width = rel.columns.length
  const pk = String(r.pk)
  if (r.op === "delete") return del(rel.relationId, { key: [pk, ...new Array<null>(width - 1).fill(null)] })
  const tuple: TupleValue[] = [pk, ...r.cells.slice(0, width - 1)]
  // Column 2 of both tables is int4: keep it an integer literal or NULL so the mapping is exercised, not the fallback.
  if (typeof tuple[2] === "string" && !/^-?\d+$/.test(tuple[2])) tuple[2] = "7"
  return r.op === "insert"
    ? insert(
        rel.relationId,
        tuple.map((v) => (v === undefined ? null : v)),
      )
    : update(rel.relationId, tuple)
}

const columnsOf = { orders: orders.columns.map((c) => c.name), line_items: lineItems.columns.map((c) => c.name) }
const pkColumn = "id"

/** A grant: per table, either not granted or a subset of its columns plus names that exist nowhere. */
const grantArb = fc.record({
  orders: fc.option(fc.subarray([...columnsOf.orders, "*", "nope"]), { nil: undefined }),
  line_items: fc.option(fc.subarray([...columnsOf.line_items, "qty ", "ID"]), { nil: undefined }),
})

const toTables = (g: { orders?: string[] | undefined; line_items?: string[] | undefined }) => {
  const tables: Record<string, string[]> = {}
  if (g.orders !== undefined) tables["orders"] = g.orders
  if (g.line_items !== undefined) tables["line_items"] = g.line_items
  return tables
}

describe("Routing: properties", () => {
  it("property: a change never carries a column outside grant ∪ PK; an ungranted table gives nothing", () => {
    fc.assert(
      fc.property(fc.array(rowSpec, { minLength: 1, maxLength: 8 }), grantArb, (rows, g) => {
        const tables = toTables(g)
        const w = makeWhitelist(tables)
        const tx = txOf(rows.map(rowMessage))
        tx.changes.forEach((c, i) => {
          const json = encodeChange(c, w)
          const granted = tables[c.rel.name]
          if (granted === undefined) {
            expect(json).toBeUndefined()
            return
          }
          if (json === undefined) {
            // Only an update whose visible columns are all PK may vanish.
            expect(c.op).toBe("update")
            c.rel.columns.forEach((column, k) => {
              if (column.name !== pkColumn && granted.includes(column.name)) expect(c.values![k]).toBeUndefined()
            })
            return
          }
          expect(json).not.toMatch(/[\r\n]/)
          const parsed = JSON.parse(json) as { op: string; table: string; pk: string; data?: Record<string, unknown> }
          expect(parsed.op).toBe(rows[i]!.op)
          expect(parsed.table).toBe(c.rel.name)
          expect(parsed.pk).toBe(String(rows[i]!.pk))
          if (c.op === "delete") {
            expect(parsed.data).toBeUndefined()
            return
          }
          const keys = Object.keys(parsed.data!)
          const allowed = new Set([...granted, pkColumn])
          for (const k of keys) expect(allowed.has(k), `${k} leaked from ${c.rel.name}`).toBe(true)
          expect(keys[0]).toBe(pkColumn)
          if (c.op === "insert") {
            // An insert carries exactly the allowed columns, in table-column order.
            expect(keys).toEqual(columnsOf[c.rel.name as "orders" | "line_items"].filter((n) => allowed.has(n)))
          } else {
            expect(keys.length).toBeGreaterThan(1)
          }
        })
      }),
      { numRuns: 300 },
    )
  })

  const subArb = fc.record({
    table: fc.constantFrom("orders", "line_items"),
    pk: fc.option(fc.integer({ min: 1, max: 3 }).map(String), { nil: null }),
    grant: grantArb,
  })

  it("property: a subscriber is delivered to exactly when the tx has ≤ 1 distinct pk of its table and its anchor survives", () => {
    fc.assert(
      fc.property(
        fc.array(rowSpec, { minLength: 1, maxLength: 8 }),
        fc.array(subArb, { minLength: 1, maxLength: 6 }),
        (rows, specs) => {
          const tx = txOf(rows.map(rowMessage))
          const pool = new WhitelistPool()
          const subs = specs.map((s, i) => sub(`s${i}`, s.table, s.pk, pool.acquire(toTables(s.grant))))
          const plan = planTx(tx, indexOf(...subs))
          const delivered = plan.audiences.flatMap((a) => a.subscribers)
          expect(new Set(delivered).size).toBe(delivered.length)

          for (const s of subs) {
            const distinct = new Set(rows.filter((r) => r.table === s.table).map((r) => String(r.pk))).size
            const anchored = tx.changes.some(
              (c) =>
                c.rel.name === s.table &&
                (s.pk === null || c.pk === s.pk) &&
                encodeChange(c, s.whitelist) !== undefined,
            )
            const inAudience = delivered.includes(s)
            const dropped = plan.multiRoot.includes(s)
            expect(inAudience, `${s.id} delivered`).toBe(distinct <= 1 && anchored)
            expect(dropped, `${s.id} dropped as multi-root`).toBe(distinct > 1 && anchored)
            if (inAudience) {
              const a = plan.audiences.find((x) => x.subscribers.includes(s))!
              expect(a.whitelist).toBe(s.whitelist)
              expect(a.json).toBe(encodeTx(tx, JSON.parse(a.json).commit_ts, s.whitelist)!.json)
            }
          }
          // One audience per distinct whitelist.
          expect(new Set(plan.audiences.map((a) => a.whitelist)).size).toBe(plan.audiences.length)
        },
      ),
      { numRuns: 300 },
    )
  })
})
