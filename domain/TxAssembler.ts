// Transaction assembly: decoded pgoutput messages go in one by one, completed transactions come
// out, with every column value mapped to JSON once. A mutable class on purpose: it runs per WAL
// message on the hot path, and the state it keeps (relations, the open transaction) is its own.
// A transaction past `maxChangesPerTx` changes or `maxTxBytes` of decoded values is no longer
// held: its changes are spilled one by one (table + pk only), so memory stays bounded however
// large the transaction is (docs/delivery-semantics.md, "Oversized transactions").
import type { PgMessage, Tuple } from "./PgMessage.ts"
import { buildRelation, pkText, type RelationInfo } from "./Relation.ts"
import { jsonString, toJsonFragment } from "./ValueMapper.ts"

export type Op = "insert" | "update" | "delete"

export interface Change {
  readonly op: Op
  readonly rel: RelationInfo
  readonly pk: string
  /** JSON fragment per column index; undefined = absent (unchanged or unchanged TOAST). null for deletes. */
  readonly values: ReadonlyArray<string | undefined> | null
  /** `{"op":…,"table":…,"pk":…` — the part of the change that every audience shares. */
  readonly head: string
}

/** The distinct primary keys a transaction touched in one table. */
export interface TableTouch {
  readonly firstPk: string
  /** More than one distinct pk (the multi-root guard of docs/delivery-semantics.md). */
  multi: boolean
}

export interface Tx {
  readonly xid: number
  readonly commitLsn: bigint
  readonly endLsn: bigint
  /** Microseconds since the PostgreSQL epoch. */
  readonly commitTime: bigint
  readonly changes: ReadonlyArray<Change>
  readonly tables: ReadonlyMap<string, TableTouch>
  /** Values sent as text because they could not be mapped. */
  readonly fallbacks: number
  /** Length of the decoded values and change heads (JSON text), what holding the transaction costs. */
  readonly bytes: number
}

export interface SpilledChange {
  readonly table: string
  readonly pk: string
}

export type OversizeReason = "changes" | "bytes"

export type AssemblyEvent =
  | { readonly _tag: "Tx"; readonly tx: Tx }
  /** The transaction crossed a size limit; what it held so far is spilled, later changes follow one by one. */
  | { readonly _tag: "Spill"; readonly xid: number; readonly changes: ReadonlyArray<SpilledChange> }
  | {
      readonly _tag: "Oversized"
      readonly xid: number
      readonly reason: OversizeReason
      readonly commitLsn: bigint
      readonly endLsn: bigint
      /** Microseconds since the PostgreSQL epoch. */
      readonly commitTime: bigint
      readonly changeCount: number
      readonly tables: ReadonlyMap<string, TableTouch>
    }
  | { readonly _tag: "RelationSkipped"; readonly schema: string; readonly name: string; readonly reason: string }
  | { readonly _tag: "Truncate"; readonly tables: ReadonlyArray<string> }
  | { readonly _tag: "Anomaly"; readonly reason: string }

export interface AssemblyLimits {
  readonly maxChangesPerTx: number
  /** Decoded bytes a transaction may hold; default unbounded. */
  readonly maxTxBytes?: number
}

interface OpenTx {
  readonly xid: number
  readonly changes: Change[]
  readonly tables: Map<string, TableTouch>
  count: number
  bytes: number
  fallbacks: number
  spilling: OversizeReason | null
}

const NONE: ReadonlyArray<AssemblyEvent> = []

const opHead = {
  insert: '{"op":"insert","table":',
  update: '{"op":"update","table":',
  delete: '{"op":"delete","table":',
}

/** Thrown inside mapping when a value cannot be held (a LargeValue, or one V8 cannot stringify). */
class TooLarge {
  readonly bytes: number
  constructor(bytes: number) {
    this.bytes = bytes
  }
}

const mapValue = (typeOid: number, v: string, tx: OpenTx): string => {
  try {
    const json = toJsonFragment(typeOid, v)
    if (json !== undefined) return json
    tx.fallbacks++
    return jsonString(v)
  } catch {
    // JSON.stringify past V8's string limit (control characters expand ×6): the value cannot be sent.
    throw new TooLarge(v.length * 6)
  }
}

const mapTuple = (rel: RelationInfo, tuple: Tuple, tx: OpenTx, old: Tuple | null): Array<string | undefined> => {
  const cols = rel.columns
  const out: Array<string | undefined> = new Array(cols.length)
  let bytes = 0
  for (let i = 0; i < cols.length; i++) {
    const v = tuple[i]
    if (v === undefined) continue
    if (v !== null && typeof v === "object") throw new TooLarge(v.bytes)
    // REPLICA IDENTITY FULL: an update carries only what changed (the key always).
    if (old !== null && rel.isPk[i] === 0) {
      const before = old[i]
      if (before !== undefined && before === v) continue
    }
    const json = v === null ? "null" : mapValue(cols[i]!.typeOid, v, tx)
    out[i] = json
    bytes += json.length
  }
  tx.bytes += bytes
  return out
}

const touch = (tx: OpenTx, table: string, pk: string) => {
  const seen = tx.tables.get(table)
  if (seen === undefined) tx.tables.set(table, { firstPk: pk, multi: false })
  else if (!seen.multi && seen.firstPk !== pk) seen.multi = true
}

export class TxAssembler {
  private readonly maxChanges: number
  private readonly maxBytes: number
  private readonly relations = new Map<number, RelationInfo | string>()
  private readonly warned = new Set<string>()
  private open: OpenTx | null = null

  constructor(limits: AssemblyLimits) {
    this.maxChanges = limits.maxChangesPerTx
    this.maxBytes = limits.maxTxBytes ?? Number.POSITIVE_INFINITY
  }

  /** Replication restarted: a transaction cut in half is gone; relations are sent again by the new session. */
  reset(): void {
    this.open = null
    this.relations.clear()
  }

  push(msg: PgMessage): ReadonlyArray<AssemblyEvent> {
    switch (msg._tag) {
      case "begin": {
        const previous = this.open
        this.open = {
          xid: msg.xid,
          changes: [],
          tables: new Map(),
          count: 0,
          bytes: 0,
          fallbacks: 0,
          spilling: null,
        }
        return previous === null ? NONE : [{ _tag: "Anomaly", reason: `begin of ${msg.xid} inside ${previous.xid}` }]
      }
      case "commit":
        return this.commit(msg.commitLsn, msg.endLsn, msg.commitTime)
      case "relation":
        return this.relation(msg)
      case "insert":
      case "update":
      case "delete":
        return this.rowChange(msg)
      case "truncate": {
        const tables: string[] = []
        for (const id of msg.relationIds) {
          const rel = this.relations.get(id)
          if (rel !== undefined && typeof rel !== "string") tables.push(rel.name)
        }
        return [{ _tag: "Truncate", tables }]
      }
      case "other":
        return NONE
    }
  }

  private commit(commitLsn: bigint, endLsn: bigint, commitTime: bigint): ReadonlyArray<AssemblyEvent> {
    const tx = this.open
    if (tx === null) return [{ _tag: "Anomaly", reason: "commit outside a transaction" }]
    this.open = null
    if (tx.spilling !== null) {
      return [
        {
          _tag: "Oversized",
          xid: tx.xid,
          reason: tx.spilling,
          commitLsn,
          endLsn,
          commitTime,
          changeCount: tx.count,
          tables: tx.tables,
        },
      ]
    }
    const done: Tx = {
      xid: tx.xid,
      commitLsn,
      endLsn,
      commitTime,
      changes: tx.changes,
      tables: tx.tables,
      fallbacks: tx.fallbacks,
      bytes: tx.bytes,
    }
    return [{ _tag: "Tx", tx: done }]
  }

  private relation(msg: Extract<PgMessage, { _tag: "relation" }>): ReadonlyArray<AssemblyEvent> {
    const built = buildRelation(msg)
    if (built._tag === "Built") {
      this.relations.set(msg.relationId, built.relation)
      return NONE
    }
    this.relations.set(msg.relationId, built.reason)
    const key = `${msg.schema}.${msg.name}`
    if (this.warned.has(key)) return NONE
    this.warned.add(key)
    return [{ _tag: "RelationSkipped", schema: msg.schema, name: msg.name, reason: built.reason }]
  }

  /** Stops holding the open transaction: what it holds so far goes out as table + pk only. */
  private startSpilling(tx: OpenTx, reason: OversizeReason, last: SpilledChange | null): AssemblyEvent {
    tx.spilling = reason
    const spilled: SpilledChange[] = tx.changes.map((c) => ({ table: c.rel.name, pk: c.pk }))
    if (last !== null) spilled.push(last)
    tx.changes.length = 0
    tx.bytes = 0
    return { _tag: "Spill", xid: tx.xid, changes: spilled }
  }

  private rowChange(msg: Extract<PgMessage, { _tag: "insert" | "update" | "delete" }>): ReadonlyArray<AssemblyEvent> {
    const tx = this.open
    if (tx === null) return [{ _tag: "Anomaly", reason: `${msg._tag} outside a transaction` }]
    const rel = this.relations.get(msg.relationId)
    if (rel === undefined) return [{ _tag: "Anomaly", reason: `${msg._tag} for unknown relation ${msg.relationId}` }]
    if (typeof rel === "string") return NONE

    let pk: string | undefined
    if (msg._tag === "delete") pk = pkText(rel, msg.keyTuple ?? msg.oldTuple ?? [])
    else {
      pk = pkText(rel, msg.newTuple)
      if (pk === undefined && msg._tag === "update") pk = pkText(rel, msg.keyTuple ?? msg.oldTuple ?? [])
    }
    if (pk === undefined) {
      return [{ _tag: "Anomaly", reason: `${msg._tag} on ${rel.name} without a primary-key value` }]
    }

    tx.count++
    touch(tx, rel.name, pk)
    const here: SpilledChange = { table: rel.name, pk }
    if (tx.spilling !== null) return [{ _tag: "Spill", xid: tx.xid, changes: [here] }]
    if (tx.count > this.maxChanges) return [this.startSpilling(tx, "changes", here)]

    let values: Array<string | undefined> | null = null
    if (msg._tag !== "delete") {
      try {
        values = mapTuple(rel, msg.newTuple, tx, msg._tag === "update" && rel.full ? (msg.oldTuple ?? null) : null)
      } catch (e) {
        if (e instanceof TooLarge) return [this.startSpilling(tx, "bytes", here)]
        throw e
      }
    }
    const head = `${opHead[msg._tag]}${jsonString(rel.name)},"pk":${jsonString(pk)}`
    tx.bytes += head.length
    if (tx.bytes > this.maxBytes) return [this.startSpilling(tx, "bytes", here)]
    tx.changes.push({ op: msg._tag, rel, pk, values, head })
    return NONE
  }
}

/** Folds a sequence of messages through a fresh assembler; used by tests (e.g. chunking never matters). */
export const assembleAll = (limits: AssemblyLimits, msgs: Iterable<PgMessage>): AssemblyEvent[] => {
  const assembler = new TxAssembler(limits)
  const events: AssemblyEvent[] = []
  for (const m of msgs) for (const e of assembler.push(m)) events.push(e)
  return events
}
