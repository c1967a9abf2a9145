// Decoded pgoutput messages and assembled transactions for the domain tests: a few tables
// shaped like the benchmark schema, and builders short enough to read a transaction at a glance.
import type {
  PgMessage,
  RelationColumn,
  RelationMessage,
  ReplicaIdentity,
  Tuple,
  TupleValue,
} from "../../domain/PgMessage.ts"
import { type AssemblyEvent, assembleAll, type Tx } from "../../domain/TxAssembler.ts"

export const OID = { bool: 16, int8: 20, int4: 23, text: 25, jsonb: 3802 } as const

export const col = (name: string, typeOid: number, isKey = false): RelationColumn => ({ name, typeOid, isKey })

export const relation = (
  relationId: number,
  name: string,
  columns: ReadonlyArray<RelationColumn>,
  opts: { schema?: string; replicaIdentity?: ReplicaIdentity; primaryKey?: ReadonlyArray<string> } = {},
): RelationMessage => ({
  _tag: "relation",
  relationId,
  schema: opts.schema ?? "public",
  name,
  replicaIdentity: opts.replicaIdentity ?? "default",
  columns,
  primaryKey: opts.primaryKey,
})

export const ORDERS = 1
export const LINE_ITEMS = 2
export const AUDIT_LOG = 3

/** orders(id int8 pk, status text, total_cents int4, note text) */
export const orders = relation(ORDERS, "orders", [
  col("id", OID.int8, true),
  col("status", OID.text),
  col("total_cents", OID.int4),
  col("note", OID.text),
])
/** line_items(id int8 pk, order_id int8, qty int4) */
export const lineItems = relation(LINE_ITEMS, "line_items", [
  col("id", OID.int8, true),
  col("order_id", OID.int8),
  col("qty", OID.int4),
])
/** audit_log(id int4 pk, what text) */
export const auditLog = relation(AUDIT_LOG, "audit_log", [col("id", OID.int4, true), col("what", OID.text)])

export const SCHEMA: ReadonlyArray<PgMessage> = [orders, lineItems, auditLog]

export const begin = (xid: number, commitTime = 0n): PgMessage => ({ _tag: "begin", finalLsn: 0n, commitTime, xid })
export const commit = (commitLsn: bigint, commitTime = 0n): PgMessage => ({
  _tag: "commit",
  commitLsn,
  endLsn: commitLsn + 8n,
  commitTime,
})
export const insert = (relationId: number, newTuple: ReadonlyArray<TupleValue>): PgMessage => ({
  _tag: "insert",
  relationId,
  newTuple,
})
export const update = (
  relationId: number,
  newTuple: ReadonlyArray<TupleValue>,
  old: { key?: Tuple; old?: Tuple } = {},
): PgMessage => ({ _tag: "update", relationId, keyTuple: old.key ?? null, oldTuple: old.old ?? null, newTuple })
export const del = (relationId: number, old: { key?: Tuple; old?: Tuple }): PgMessage => ({
  _tag: "delete",
  relationId,
  keyTuple: old.key ?? null,
  oldTuple: old.old ?? null,
})

export const assemble = (msgs: ReadonlyArray<PgMessage>, maxChangesPerTx = 10_000, maxTxBytes?: number) => ({
  events: assembleAll({ maxChangesPerTx, maxTxBytes }, msgs),
})

export const txEvents = (events: ReadonlyArray<AssemblyEvent>): Tx[] =>
  events.flatMap((e) => (e._tag === "Tx" ? [e.tx] : []))

/** Assembles SCHEMA + one transaction with the given row messages and returns that transaction. */
export const txOf = (rows: ReadonlyArray<PgMessage>, xid = 735, commitTime = 0n): Tx => {
  const { events } = assemble([...SCHEMA, begin(xid, commitTime), ...rows, commit(0x1_0000_0000n, commitTime)])
  const txs = txEvents(events)
  if (txs.length !== 1) throw new Error(`expected one Tx, got events ${JSON.stringify(events.map((e) => e._tag))}`)
  return txs[0]!
}

/** PostgreSQL-epoch microseconds of an ISO instant, as pgoutput sends commit times. */
export const pgMicros = (iso: string): bigint => (BigInt(Date.parse(iso)) - 946_684_800_000n) * 1000n
