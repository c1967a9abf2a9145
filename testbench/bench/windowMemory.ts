// What the replay window costs per transaction it holds, for the bench's transaction shape (one order updated, one
// of its line items updated, and the bump trigger's second order update), decoded by the real assembler: heap after
// a full GC with N transactions held, minus the empty window, divided by N. Run with --expose-gc:
//   node --expose-gc testbench/bench/windowMemory.ts [N]
import type { PgMessage } from "../../domain/PgMessage.ts"
import { ReplayWindow } from "../../domain/ReplayWindow.ts"
import { TxAssembler, type Tx } from "../../domain/TxAssembler.ts"

const n = Number(process.argv[2] ?? 100_000)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const col = (name: string, typeOid: number, isKey = false) => ({ name, typeOid, isKey })
const ORDERS: PgMessage = {
  _tag: "relation",
  relationId: 1,
  schema: "public",
  name: "orders",
  replicaIdentity: "default",
  columns: [
    col("id", 20, true),
    col("customer_id", 20),
    col("status", 25),
    col("total_cents", 23),
    col("currency", 25),
    col("note", 25),
    col("created_at", 1184),
    col("updated_at", 1184),
  ],
}
const LINE_ITEMS: PgMessage = {
  _tag: "relation",
  relationId: 2,
  schema: "public",
  name: "line_items",
  replicaIdentity: "default",
  columns: [
    col("id", 20, true),
    col("order_id", 20),
    col("sku", 25),
    col("qty", 23),
    col("price_cents", 23),
    col("updated_at", 1184),
  ],
}

const assembler = new TxAssembler({ maxChangesPerTx: 10_000 })
assembler.push(ORDERS)
assembler.push(LINE_ITEMS)
const ts = "2026-11-30 10:00:00.123456+00"
const txOf = (i: number): Tx => {
  const order = String(1 + (i % 9990))
  const msgs: PgMessage[] = [
    { _tag: "begin", finalLsn: BigInt(i), commitTime: 0n, xid: 1000 + i },
    {
      _tag: "update",
      relationId: 1,
      keyTuple: null,
      oldTuple: null,
      newTuple: [order, "17", `status-${i % 7}`, String(i % 100000), "EUR", undefined, ts, ts],
    },
    {
      _tag: "update",
      relationId: 2,
      keyTuple: null,
      oldTuple: null,
      newTuple: [String(i * 3), order, `SKU-${i % 5000}`, String(1 + (i % 9)), "450", ts],
    },
    {
      _tag: "update",
      relationId: 1,
      keyTuple: null,
      oldTuple: null,
      newTuple: [order, "17", `status-${i % 7}`, String(i % 100000), "EUR", undefined, ts, ts],
    },
    { _tag: "commit", commitLsn: BigInt(i), endLsn: BigInt(i + 1), commitTime: 0n },
  ]
  let tx: Tx | undefined
  for (const m of msgs) for (const e of assembler.push(m)) if (e._tag === "Tx") tx = e.tx
  return tx!
}

const window = new ReplayWindow({ retentionMs: Number.POSITIVE_INFINITY, maxBytes: Number.POSITIVE_INFINITY })
gc()
const before = process.memoryUsage().heapUsed
for (let i = 0; i < n; i++) window.append(txOf(i), 0)
gc()
const after = process.memoryUsage().heapUsed
const perTx = (after - before) / n
console.log(
  JSON.stringify({
    transactions: n,
    heapBytesPerTx: Math.round(perTx),
    chargedBytesPerTx: Math.round(window.bytes / n),
    ratioHeldToCharged: Number((perTx / (window.bytes / n)).toFixed(2)),
  }),
)
