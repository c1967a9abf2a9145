// Transaction assembly as a fold over decoded pgoutput messages: Begin opens a transaction,
// row messages become Changes with values mapped to JSON once, Commit closes it. Past
// `maxChangesPerTx` a transaction is no longer held: its changes are spilled one by one
// (table + pk only) so memory stays bounded however large the transaction is.
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
  /** More than one distinct pk (the multi-root guard of SPEC §4). */
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
}

export interface SpilledChange {
  readonly table: string
  readonly pk: string
}

export type AssemblyEvent =
  | { readonly _tag: "Tx"; readonly tx: Tx }
  /** The transaction crossed the size limit; what it held so far is spilled, later changes follow one by one. */
  | { readonly _tag: "Spill"; readonly xid: number; readonly changes: ReadonlyArray<SpilledChange> }
  | {
      readonly _tag: "Oversized"
      readonly xid: number
      readonly commitLsn: bigint
      readonly endLsn: bigint
      readonly changeCount: number
      readonly tables: ReadonlyMap<string, TableTouch>
    }
  | { readonly _tag: "RelationSkipped"; readonly schema: string; readonly name: string; readonly reason: string }
  | { readonly _tag: "Truncate"; readonly tables: ReadonlyArray<string> }
  | { readonly _tag: "Anomaly"; readonly reason: string }

interface OpenTx {
  readonly xid: number
  readonly changes: Change[]
  readonly tables: Map<string, TableTouch>
  count: number
  fallbacks: number
  spilling: boolean
}

export interface AssemblyState {
  readonly maxChangesPerTx: number
  readonly relations: ReadonlyMap<number, RelationInfo | string>
  readonly warned: ReadonlySet<string>
  readonly open: OpenTx | null
}

export const initialAssembly = (maxChangesPerTx: number): AssemblyState => ({
  maxChangesPerTx,
  relations: new Map(),
  warned: new Set(),
  open: null,
})

export interface StepResult {
  readonly state: AssemblyState
  readonly events: ReadonlyArray<AssemblyEvent>
}

const NONE: ReadonlyArray<AssemblyEvent> = []

const opHead = {
  insert: '{"op":"insert","table":',
  update: '{"op":"update","table":',
  delete: '{"op":"delete","table":',
}

const mapTuple = (rel: RelationInfo, tuple: Tuple, tx: OpenTx, old: Tuple | null): Array<string | undefined> => {
  const cols = rel.columns
  const out: Array<string | undefined> = new Array(cols.length)
  for (let i = 0; i < cols.length; i++) {
    const v = tuple[i]
    if (v === undefined) continue
    // REPLICA IDENTITY FULL: an update carries only what changed (the key always).
    if (old !== null && rel.isPk[i] === 0) {
      const before = old[i]
      if (before !== undefined && before === v) continue
    }
    if (v === null) {
      out[i] = "null"
      continue
    }
    const json = toJsonFragment(cols[i]!.typeOid, v)
    if (json === undefined) {
      tx.fallbacks++
      out[i] = jsonString(v)
    } else out[i] = json
  }
  return out
}

const touch = (tx: OpenTx, table: string, pk: string) => {
  const seen = tx.tables.get(table)
  if (seen === undefined) tx.tables.set(table, { firstPk: pk, multi: false })
  else if (!seen.multi && seen.firstPk !== pk) seen.multi = true
}

const rowChange = (
  state: AssemblyState,
  msg: Extract<PgMessage, { tag: "insert" | "update" | "delete" }>,
): StepResult => {
  const tx = state.open
  if (tx === null) return { state, events: [{ _tag: "Anomaly", reason: `${msg.tag} outside a transaction` }] }
  const rel = state.relations.get(msg.relationId)
  if (rel === undefined) {
    return { state, events: [{ _tag: "Anomaly", reason: `${msg.tag} for unknown relation ${msg.relationId}` }] }
  }
  if (typeof rel === "string") return { state, events: NONE }

  let pk: string | undefined
  if (msg.tag === "delete") pk = pkText(rel, msg.keyTuple ?? msg.oldTuple ?? [])
  else {
    pk = pkText(rel, msg.newTuple)
    if (pk === undefined && msg.tag === "update") pk = pkText(rel, msg.keyTuple ?? msg.oldTuple ?? [])
  }
  if (pk === undefined) {
    return { state, events: [{ _tag: "Anomaly", reason: `${msg.tag} on ${rel.name} without a primary-key value` }] }
  }

  tx.count++
  touch(tx, rel.name, pk)
  if (tx.spilling) return { state, events: [{ _tag: "Spill", xid: tx.xid, changes: [{ table: rel.name, pk }] }] }
  if (tx.count > state.maxChangesPerTx) {
    tx.spilling = true
    const spilled: SpilledChange[] = tx.changes.map((c) => ({ table: c.rel.name, pk: c.pk }))
    spilled.push({ table: rel.name, pk })
    tx.changes.length = 0
    return { state, events: [{ _tag: "Spill", xid: tx.xid, changes: spilled }] }
  }

  const values =
    msg.tag === "delete"
      ? null
      : mapTuple(rel, msg.newTuple, tx, msg.tag === "update" && rel.full ? (msg.oldTuple ?? null) : null)
  tx.changes.push({
    op: msg.tag,
    rel,
    pk,
    values,
    head: `${opHead[msg.tag]}${jsonString(rel.name)},"pk":${jsonString(pk)}`,
  })
  return { state, events: NONE }
}

export const step = (state: AssemblyState, msg: PgMessage): StepResult => {
  switch (msg.tag) {
    case "begin": {
      const open: OpenTx = { xid: msg.xid, changes: [], tables: new Map(), count: 0, fallbacks: 0, spilling: false }
      const events: AssemblyEvent[] =
        state.open === null ? [] : [{ _tag: "Anomaly", reason: `begin of ${msg.xid} inside ${state.open.xid}` }]
      return { state: { ...state, open }, events }
    }
    case "commit": {
      const tx = state.open
      if (tx === null) return { state, events: [{ _tag: "Anomaly", reason: "commit outside a transaction" }] }
      const next = { ...state, open: null }
      if (tx.spilling) {
        return {
          state: next,
          events: [
            {
              _tag: "Oversized",
              xid: tx.xid,
              commitLsn: msg.commitLsn,
              endLsn: msg.endLsn,
              changeCount: tx.count,
              tables: tx.tables,
            },
          ],
        }
      }
      const done: Tx = {
        xid: tx.xid,
        commitLsn: msg.commitLsn,
        endLsn: msg.endLsn,
        commitTime: msg.commitTime,
        changes: tx.changes,
        tables: tx.tables,
        fallbacks: tx.fallbacks,
      }
      return { state: next, events: [{ _tag: "Tx", tx: done }] }
    }
    case "relation": {
      const built = buildRelation(msg)
      const relations = new Map(state.relations)
      const key = `${msg.schema}.${msg.name}`
      if (built.ok) {
        relations.set(msg.relationId, built.relation)
        return { state: { ...state, relations }, events: NONE }
      }
      relations.set(msg.relationId, built.reason)
      if (state.warned.has(key)) return { state: { ...state, relations }, events: NONE }
      const warned = new Set(state.warned).add(key)
      return {
        state: { ...state, relations, warned },
        events: [{ _tag: "RelationSkipped", schema: msg.schema, name: msg.name, reason: built.reason }],
      }
    }
    case "insert":
    case "update":
    case "delete":
      return rowChange(state, msg)
    case "truncate": {
      const tables: string[] = []
      for (const id of msg.relationIds) {
        const rel = state.relations.get(id)
        if (rel !== undefined && typeof rel !== "string") tables.push(rel.name)
      }
      return { state, events: [{ _tag: "Truncate", tables }] }
    }
    case "other":
      return { state, events: NONE }
  }
}

/** Folds a sequence of messages; used by tests to show chunking does not matter. */
export const feed = (
  state: AssemblyState,
  msgs: Iterable<PgMessage>,
): { state: AssemblyState; events: AssemblyEvent[] } => {
  let s = state
  const events: AssemblyEvent[] = []
  for (const m of msgs) {
    const r = step(s, m)
    s = r.state
    for (const e of r.events) events.push(e)
  }
  return { state: s, events }
}
