// The replay window: transactions held once, in decode order, bounded by age and bytes; positions for handshakes,
// ids looked up (never compared), and a per-row index that finds what touched a subscriber.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ENTRY_OVERHEAD_BYTES, ReplayWindow } from "../../domain/ReplayWindow.ts"
import type { TableTouch, Tx } from "../../domain/TxAssembler.ts"

const tx = (xid: number, rows: ReadonlyArray<readonly [string, string]>, bytes = 100): Tx => {
  const tables = new Map<string, TableTouch>()
  for (const [table, pk] of rows) {
    const seen = tables.get(table)
    if (seen === undefined) tables.set(table, { firstPk: pk, multi: false })
    else if (seen.firstPk !== pk) seen.multi = true
  }
  return { xid, commitLsn: 0n, endLsn: 0n, commitTime: 0n, changes: [], tables, fallbacks: 0, bytes }
}

describe("ReplayWindow", () => {
  it("finds what touched a row, a table, in decode order, from a position on", () => {
    const w = new ReplayWindow({ retentionMs: 10_000, maxBytes: 1 << 20 })
    const p0 = w.position()
    w.append(tx(900, [["orders", "1"]]), 0)
    const p1 = w.position()
    w.append(tx(5, [["orders", "2"]]), 0)
    w.append(
      tx(700, [
        ["orders", "1"],
        ["line_items", "9"],
      ]),
      0,
    )
    expect(w.touching("orders", "1", p0).map((e) => e.xid)).toEqual([900, 700])
    expect(w.touching("orders", "1", p1).map((e) => e.xid)).toEqual([700])
    expect(w.touching("orders", null, p0).map((e) => e.xid)).toEqual([900, 5, 700])
    expect(w.touching("line_items", "9", p0).map((e) => e.xid)).toEqual([700])
    expect(w.touching("orders", "3", p0)).toEqual([])
  })

  it("looks ids up without comparing them: xid 5 decoded after xid 900 resumes after 5", () => {
    const w = new ReplayWindow({ retentionMs: 10_000, maxBytes: 1 << 20 })
    w.append(tx(900, [["orders", "1"]]), 0)
    w.append(tx(5, [["orders", "1"]]), 0)
    w.append(tx(901, [["orders", "1"]]), 0)
    expect(w.touching("orders", "1", w.after(5)!).map((e) => e.xid)).toEqual([901])
    expect(w.touching("orders", "1", w.after(900)!).map((e) => e.xid)).toEqual([5, 901])
    expect(w.after(4)).toBeUndefined()
    expect(w.newestXid()).toBe(901)
  })

  it("leaves multi-row transactions out of that table's index (the multi-root guard drops them)", () => {
    const w = new ReplayWindow({ retentionMs: 10_000, maxBytes: 1 << 20 })
    const p = w.position()
    w.append(
      tx(1, [
        ["orders", "1"],
        ["orders", "2"],
        ["line_items", "7"],
      ]),
      0,
    )
    expect(w.touching("orders", "1", p)).toEqual([])
    expect(w.touching("orders", null, p)).toEqual([])
    expect(w.touching("line_items", "7", p).map((e) => e.xid)).toEqual([1])
  })

  it("empties on replication loss; positions keep increasing, so a position from before does not reach", () => {
    const w = new ReplayWindow({ retentionMs: 10_000, maxBytes: 1 << 20 })
    w.append(tx(1, [["orders", "1"]]), 0)
    const before = w.position()
    w.clear()
    expect(w.size).toBe(0)
    expect(w.reaches(before)).toBe(true)
    w.append(tx(2, [["orders", "1"]]), 0)
    expect(w.reaches(before)).toBe(true)
    const old = before - 1
    expect(w.reaches(old)).toBe(false)
    expect(w.after(1)).toBeUndefined()
  })

  it("property: held in order, within bytes and age, reaching back exactly as far as it holds, indexed or not", () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("append" as const),
        pk: fc.integer({ min: 1, max: 5 }),
        bytes: fc.integer({ min: 0, max: 400 }),
      }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2000 }) }),
      fc.record({ kind: fc.constant("clear" as const) }),
    )
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 80 }),
        fc.integer({ min: 500, max: 3000 }),
        fc.integer({ min: 100, max: 5000 }),
        fc.boolean(),
        (ops, maxBytes, retentionMs, indexed) => {
          // With the per-row index (resume) or without it (a scan): the same answers.
          const w = new ReplayWindow({ retentionMs, maxBytes, indexed })
          let now = 0
          let xid = 1
          // A model: everything appended since the last clear, with its time and charge.
          let model: Array<{ xid: number; pk: string; at: number; position: number }> = []
          for (const o of ops) {
            if (o.kind === "advance") {
              now += o.ms
              w.expire(now)
            } else if (o.kind === "clear") {
              w.clear()
              model = []
            } else {
              const position = w.position()
              w.append(tx(xid, [["orders", String(o.pk)]], o.bytes), now)
              model.push({ xid, pk: String(o.pk), at: now, position })
              xid++
            }
            expect(w.bytes).toBeLessThanOrEqual(maxBytes + 0)
            const held = w.touching("orders", null, 0).map((e) => e.xid)
            // What is held is a suffix of what was appended, in order, none older than the retention.
            const suffix = model.slice(model.length - held.length).map((m) => m.xid)
            expect(held).toEqual(suffix)
            for (const m of model.slice(model.length - held.length))
              expect(m.at).toBeGreaterThanOrEqual(now - retentionMs)
            // A position reaches when nothing from it on was evicted; then touching() returns exactly the model's rows.
            for (const m of model) {
              const reaches = w.reaches(m.position)
              expect(reaches).toBe(held.length > 0 && held[0]! <= m.xid)
              if (reaches) {
                const expected = model.filter((x) => x.position >= m.position && x.pk === "1").map((x) => x.xid)
                expect(w.touching("orders", "1", m.position).map((e) => e.xid)).toEqual(expected)
              }
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it("charges each entry its decoded bytes plus a fixed overhead", () => {
    const w = new ReplayWindow({ retentionMs: 10_000, maxBytes: 1 << 20 })
    w.append(tx(1, [["orders", "1"]], 1000), 0)
    expect(w.bytes).toBeGreaterThanOrEqual(1000 + ENTRY_OVERHEAD_BYTES)
  })
})
