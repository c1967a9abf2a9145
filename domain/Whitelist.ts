// The field whitelist of a grant (docs/auth.md): which tables and columns a subscriber may see.
// Column masks are computed once per (whitelist, relation) and reused for every change.
import type { RelationInfo } from "./Relation.ts"
import type { Change } from "./TxAssembler.ts"

export interface Whitelist {
  /** Canonical form; equal grants share one Whitelist and so one encoding per transaction. */
  readonly key: string
  readonly tables: ReadonlyMap<string, ReadonlySet<string>>
  /** Memo: relation → 1 per column that may be sent (whitelisted or primary key); null = table not granted. */
  readonly masks: WeakMap<RelationInfo, Uint8Array | null>
}

export const whitelistKey = (tables: Readonly<Record<string, ReadonlyArray<string>>>): string =>
  JSON.stringify(
    Object.keys(tables)
      .sort()
      .map((t) => [t, [...new Set(tables[t])].sort()]),
  )

export const makeWhitelist = (tables: Readonly<Record<string, ReadonlyArray<string>>>): Whitelist => {
  const map = new Map<string, ReadonlySet<string>>()
  for (const t of Object.keys(tables)) map.set(t, new Set(tables[t]))
  return { key: whitelistKey(tables), tables: map, masks: new WeakMap() }
}

export const columnMask = (w: Whitelist, rel: RelationInfo): Uint8Array | null => {
  const cached = w.masks.get(rel)
  if (cached !== undefined) return cached
  const allowed = w.tables.get(rel.name)
  let mask: Uint8Array | null = null
  if (allowed !== undefined) {
    mask = new Uint8Array(rel.columns.length)
    for (let i = 0; i < rel.columns.length; i++) {
      mask[i] = rel.isPk[i] === 1 || allowed.has(rel.columns[i]!.name) ? 1 : 0
    }
  }
  w.masks.set(rel, mask)
  return mask
}

/**
 * The change as this whitelist sees it, as one JSON object, or undefined when it must not be
 * sent: table not granted, or an update whose only surviving column is the primary key.
 */
export const encodeChange = (change: Change, w: Whitelist): string | undefined => {
  const mask = columnMask(w, change.rel)
  if (mask === null) return undefined
  const values = change.values
  if (values === null) return `${change.head}}`
  const cols = change.rel.columns
  const isPk = change.rel.isPk
  let data = ""
  let visible = false
  for (let i = 0; i < cols.length; i++) {
    const v = values[i]
    if (v === undefined || mask[i] === 0) continue
    data += (data === "" ? "" : ",") + cols[i]!.jsonKey + v
    if (isPk[i] === 0) visible = true
  }
  if (change.op === "update" && !visible) return undefined
  return `${change.head},"data":{${data}}}`
}
