// What Walera knows about a published table: its columns in order, which of them form the
// primary key, and the JSON fragments (table name, column keys) encoded once per relation.
import type { RelationMessage, Tuple } from "./PgMessage.ts"
import { jsonString } from "./ValueMapper.ts"

export interface ColumnInfo {
  readonly name: string
  readonly typeOid: number
  /** `"name":` — the column's JSON key, encoded once. */
  readonly jsonKey: string
}

export interface RelationInfo {
  readonly id: number
  readonly schema: string
  readonly name: string
  readonly columns: ReadonlyArray<ColumnInfo>
  /** Column indexes of the primary key, in key order. Never empty. */
  readonly pkIndexes: ReadonlyArray<number>
  /** 1 where the column is part of the primary key. */
  readonly isPk: Uint8Array
  /** REPLICA IDENTITY FULL: updates carry the old row, so "changed" can be computed. */
  readonly full: boolean
}

export type RelationResult =
  | { readonly _tag: "Built"; readonly relation: RelationInfo }
  | { readonly _tag: "Skipped"; readonly reason: string }

export const buildRelation = (msg: RelationMessage): RelationResult => {
  if (msg.schema !== "public") {
    return { _tag: "Skipped", reason: `schema "${msg.schema}" is not streamed (only public tables have channels)` }
  }
  const names = msg.columns.map((c) => c.name)
  let pkIndexes: number[]
  if (msg.primaryKey !== undefined && msg.primaryKey.length > 0) {
    pkIndexes = msg.primaryKey.map((n) => names.indexOf(n))
    if (pkIndexes.some((i) => i < 0)) return { _tag: "Skipped", reason: "primary-key column missing from the relation" }
  } else if (msg.replicaIdentity === "default" || msg.replicaIdentity === "index") {
    pkIndexes = []
    msg.columns.forEach((c, i) => {
      if (c.isKey) pkIndexes.push(i)
    })
  } else {
    pkIndexes = []
  }
  if (pkIndexes.length === 0) {
    return { _tag: "Skipped", reason: "no primary key (or replica identity); its changes are skipped" }
  }
  const isPk = new Uint8Array(msg.columns.length)
  for (const i of pkIndexes) isPk[i] = 1
  return {
    _tag: "Built",
    relation: {
      id: msg.relationId,
      schema: msg.schema,
      name: msg.name,
      columns: msg.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, jsonKey: `${jsonString(c.name)}:` })),
      pkIndexes,
      isPk,
      full: msg.replicaIdentity === "full",
    },
  }
}

const encodePkPart = (text: string): string =>
  text.indexOf("%") < 0 && text.indexOf(",") < 0 ? text : text.replace(/%/g, "%25").replace(/,/g, "%2C")

/**
 * The primary key's text form: one column as PostgreSQL prints it; a composite key joins
 * its parts with "," after percent-encoding "%" and "," inside each part (docs/delivery-semantics.md).
 * Returns undefined when a key column is missing from the tuple.
 */
export const pkText = (rel: RelationInfo, tuple: Tuple): string | undefined => {
  const idx = rel.pkIndexes
  if (idx.length === 1) {
    const v = tuple[idx[0]!]
    return typeof v === "string" ? v : undefined
  }
  let out = ""
  for (let k = 0; k < idx.length; k++) {
    const v = tuple[idx[k]!]
    if (typeof v !== "string") return undefined
    out += (k === 0 ? "" : ",") + encodePkPart(v)
  }
  return out
}
