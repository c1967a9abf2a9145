// Pins the mirror helpers: insert replaces, update merges, delete removes, in order; and the property that makes
// resume and resync safe without deduplication: re-applying transactions (a replay overlapping a resync) changes nothing.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  applyTx,
  applyTxAsync,
  type MirrorStore,
  mapStore,
  type Row,
  type WaleraChange,
  type WaleraMirror,
} from "../../client/src/index.ts"
import { tx } from "./sseServer.ts"

/** The mirror as a plain, comparable object; empty tables are left out. */
const snapshot = (mirror: WaleraMirror): Record<string, Record<string, Record<string, unknown>>> =>
  Object.fromEntries(
    [...mirror].filter(([, rows]) => rows.size > 0).map(([table, rows]) => [table, Object.fromEntries(rows)]),
  )

const genChange: fc.Arbitrary<WaleraChange> = fc
  .record({
    op: fc.constantFrom("insert" as const, "update" as const, "delete" as const),
    table: fc.constantFrom("orders", "line_items"),
    pk: fc.constantFrom("1", "2", "3"),
    data: fc.dictionary(
      fc.constantFrom("id", "status", "qty", "note"),
      fc.oneof(fc.integer(), fc.constant(null), fc.string()),
    ),
  })
  .map((c) => (c.op === "delete" ? { op: c.op, table: c.table, pk: c.pk } : c))
const genTx = fc.array(genChange, { maxLength: 6 }).map((changes) => tx(...changes))
describe("applyTx", () => {
  it("insert sets the row, update merges (absent keys stay, null is a value), delete removes", () => {
    const mirror: WaleraMirror = new Map()
    const touched = applyTx(
      mirror,
      tx(
        { op: "insert", table: "orders", pk: "42", data: { id: 42, status: "new", note: "x" } },
        { op: "insert", table: "line_items", pk: "7", data: { id: 7, qty: 1 } },
      ),
    )
    expect(touched).toEqual(new Set(["orders", "line_items"]))
    const before = mirror.get("orders")!.get("42")
    applyTx(mirror, tx({ op: "update", table: "orders", pk: "42", data: { id: 42, status: "paid", note: null } }))
    expect(snapshot(mirror)).toEqual({
      orders: { "42": { id: 42, status: "paid", note: null } },
      line_items: { "7": { id: 7, qty: 1 } },
    })
    expect(mirror.get("orders")!.get("42")).not.toBe(before) // rows are replaced, never mutated
    expect(before).toEqual({ id: 42, status: "new", note: "x" })

    expect(applyTx(mirror, tx({ op: "delete", table: "line_items", pk: "7" }))).toEqual(new Set(["line_items"]))
    expect(snapshot(mirror)).toEqual({ orders: { "42": { id: 42, status: "paid", note: null } } })
  })

  it("an update of a row the mirror does not have creates it from data; a delete of a missing row is a no-op", () => {
    const mirror: WaleraMirror = new Map()
    applyTx(mirror, tx({ op: "update", table: "orders", pk: "1", data: { id: 1, status: "paid" } }))
    applyTx(mirror, tx({ op: "delete", table: "tasks", pk: "9" }))
    expect(snapshot(mirror)).toEqual({ orders: { "1": { id: 1, status: "paid" } } })
    expect(mirror.has("tasks")).toBe(false)
  })

  it("applies changes of one transaction in order (insert then update of the same row)", () => {
    const mirror: WaleraMirror = new Map()
    applyTx(
      mirror,
      tx(
        { op: "insert", table: "orders", pk: "1", data: { id: 1, status: "new", qty: 1 } },
        { op: "update", table: "orders", pk: "1", data: { id: 1, status: "paid" } },
        { op: "insert", table: "orders", pk: "2", data: { id: 2 } },
        { op: "delete", table: "orders", pk: "2" },
      ),
    )
    expect(snapshot(mirror)).toEqual({ orders: { "1": { id: 1, status: "paid", qty: 1 } } })
  })

  it("does not keep references to the event's data objects", () => {
    const mirror: WaleraMirror = new Map()
    const data = { id: 1, status: "new" }
    applyTx(mirror, tx({ op: "insert", table: "orders", pk: "1", data }))
    data.status = "mutated"
    expect(mirror.get("orders")!.get("1")).toEqual({ id: 1, status: "new" })
  })

  it("property: a sequence of transactions equals applying their changes one at a time, and a flat model", () => {
    fc.assert(
      fc.property(fc.array(genTx, { maxLength: 8 }), (txs) => {
        const byTx: WaleraMirror = new Map()
        const byChange: WaleraMirror = new Map()
        const model = new Map<string, Record<string, unknown>>()
        for (const t of txs) {
          expect(applyTx(byTx, t)).toEqual(new Set(t.changes.map((c) => c.table)))
          for (const c of t.changes) {
            applyTx(byChange, tx(c))
            const key = `${c.table}:${c.pk}`
            if (c.op === "delete") model.delete(key)
            else if (c.op === "insert") model.set(key, { ...c.data })
            else model.set(key, { ...model.get(key), ...c.data })
          }
        }
        expect(snapshot(byTx)).toEqual(snapshot(byChange))
        const flat = Object.fromEntries(
          [...byTx].flatMap(([table, rows]) => [...rows].map(([pk, row]) => [`${table}:${pk}`, row])),
        )
        expect(flat).toEqual(Object.fromEntries(model))
      }),
      { numRuns: 300 },
    )
  })

  it("property: applying a transaction twice equals applying it once", () => {
    fc.assert(
      fc.property(fc.array(genTx, { maxLength: 6 }), genTx, (before, t) => {
        const once: WaleraMirror = new Map()
        const twice: WaleraMirror = new Map()
        for (const b of before) {
          applyTx(once, b)
          applyTx(twice, b)
        }
        applyTx(once, t)
        applyTx(twice, t)
        applyTx(twice, t)
        expect(snapshot(twice)).toEqual(snapshot(once))
      }),
      { numRuns: 300 },
    )
  })

  it("property: a replay that overlaps what was applied (any suffix, again) leaves the mirror as it was", () => {
    fc.assert(
      fc.property(fc.array(genTx, { minLength: 1, maxLength: 8 }), fc.nat(), (txs, k) => {
        const mirror: WaleraMirror = new Map()
        for (const t of txs) applyTx(mirror, t)
        const after = snapshot(mirror)
        for (const t of txs.slice(k % txs.length)) applyTx(mirror, t)
        expect(snapshot(mirror)).toEqual(after)
      }),
      { numRuns: 300 },
    )
  })
})

describe("custom stores", () => {
  /** A flat store keyed "table:pk", recording every call. */
  const flatStore = () => {
    const rows = new Map<string, Row>()
    const calls: string[] = []
    const store: MirrorStore = {
      get: (table, pk) => rows.get(`${table}:${pk}`),
      set: (table, pk, row) => {
        calls.push(`set ${table}:${pk}`)
        rows.set(`${table}:${pk}`, row)
      },
      delete: (table, pk) => {
        calls.push(`delete ${table}:${pk}`)
        rows.delete(`${table}:${pk}`)
      },
    }
    return { rows, calls, store }
  }

  it("applyTx works on any MirrorStore the same way as on a Map mirror", () => {
    fc.assert(
      fc.property(fc.array(genTx, { maxLength: 8 }), (txs) => {
        const mirror: WaleraMirror = new Map()
        const { rows, store } = flatStore()
        for (const t of txs) expect(applyTx(store, t)).toEqual(applyTx(mirror, t))
        const flat = Object.fromEntries(
          [...mirror].flatMap(([table, r]) => [...r].map(([pk, row]) => [`${table}:${pk}`, row])),
        )
        expect(Object.fromEntries(rows)).toEqual(flat)
      }),
      { numRuns: 200 },
    )
  })

  it("mapStore adapts a Map mirror", () => {
    const mirror: WaleraMirror = new Map()
    const store = mapStore(mirror)
    applyTx(store, tx({ op: "insert", table: "orders", pk: "1", data: { id: 1 } }))
    applyTx(store, tx({ op: "delete", table: "tasks", pk: "1" }))
    expect(snapshot(mirror)).toEqual({ orders: { "1": { id: 1 } } })
    expect(store.get("orders", "1")).toEqual({ id: 1 })
  })

  it("applyTxAsync awaits a promise-returning store in order and gives the same rows as applyTx", async () => {
    const rows = new Map<string, Row>()
    const log: string[] = []
    const later = <T>(value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), 1))
    const store = {
      get: (table: string, pk: string) => later(rows.get(`${table}:${pk}`)),
      set: (table: string, pk: string, row: Row) =>
        later(undefined).then(() => {
          log.push(`set ${table}:${pk}`)
          rows.set(`${table}:${pk}`, row)
        }),
      delete: (table: string, pk: string) =>
        later(undefined).then(() => {
          log.push(`delete ${table}:${pk}`)
          rows.delete(`${table}:${pk}`)
        }),
    }
    const t = tx(
      { op: "insert", table: "orders", pk: "1", data: { id: 1, status: "new", qty: 2 } },
      { op: "update", table: "orders", pk: "1", data: { id: 1, status: "paid" } },
      { op: "insert", table: "orders", pk: "2", data: { id: 2 } },
      { op: "delete", table: "orders", pk: "2" },
    )
    expect(await applyTxAsync(store, t)).toEqual(new Set(["orders"]))
    expect(log).toEqual(["set orders:1", "set orders:1", "set orders:2", "delete orders:2"])
    expect(Object.fromEntries(rows)).toEqual({ "orders:1": { id: 1, status: "paid", qty: 2 } })
  })

  it("applyTxAsync does not await a store that answers synchronously (it may run inside an IndexedDB transaction)", async () => {
    const { rows, store } = flatStore()
    let settled = false
    const done = applyTxAsync(
      store,
      tx(
        { op: "insert", table: "orders", pk: "1", data: { id: 1, status: "new" } },
        { op: "update", table: "orders", pk: "1", data: { status: "paid" } },
      ),
    ).then(() => {
      settled = true
    })
    // Every write happened before the promise settles and before any microtask ran.
    expect(rows.get("orders:1")).toEqual({ id: 1, status: "paid" })
    expect(settled).toBe(false)
    await done
  })
})
