// The routing rules (docs/delivery-semantics.md, "Routing"), each a small function, and the per-transaction plan
// that combines them: which subscribers get which bytes. Subscribers are generic so the hub
// can keep its own per-stream object; the domain needs only their channel and whitelist.
import { encodeChange, type Whitelist } from "./Whitelist.ts"
import type { Tx } from "./TxAssembler.ts"
import { formatPgEpochMicros } from "./ValueMapper.ts"

export interface Routable {
  readonly table: string
  /** null for a `/all` (table) stream. */
  readonly pk: string | null
  readonly whitelist: Whitelist
}

/** Subscribers per table and per (table, pk). */
export class RoutingIndex<S extends Routable> {
  readonly exact = new Map<string, Map<string, Set<S>>>()
  readonly wildcard = new Map<string, Set<S>>()
  size = 0

  add(s: S): void {
    if (s.pk === null) {
      let set = this.wildcard.get(s.table)
      if (set === undefined) this.wildcard.set(s.table, (set = new Set()))
      set.add(s)
    } else {
      let byPk = this.exact.get(s.table)
      if (byPk === undefined) this.exact.set(s.table, (byPk = new Map()))
      let set = byPk.get(s.pk)
      if (set === undefined) byPk.set(s.pk, (set = new Set()))
      set.add(s)
    }
    this.size++
  }

  remove(s: S): boolean {
    let removed = false
    if (s.pk === null) {
      const set = this.wildcard.get(s.table)
      if (set?.delete(s)) {
        removed = true
        if (set.size === 0) this.wildcard.delete(s.table)
      }
    } else {
      const byPk = this.exact.get(s.table)
      const set = byPk?.get(s.pk)
      if (set?.delete(s)) {
        removed = true
        if (set.size === 0) byPk!.delete(s.pk)
        if (byPk!.size === 0) this.exact.delete(s.table)
      }
    }
    if (removed) this.size--
    return removed
  }

  /** Rule 1, first half: subscribers whose channel row (or table) a change touched. */
  touched(table: string, pk: string, visit: (s: S) => void): void {
    this.forRow(table, pk, visit)
    this.forTable(table, visit)
  }

  /** The subscribers of one row. */
  forRow(table: string, pk: string, visit: (s: S) => void): void {
    const set = this.exact.get(table)?.get(pk)
    if (set !== undefined) for (const s of set) visit(s)
  }

  /** The `/all` subscribers of a table. */
  forTable(table: string, visit: (s: S) => void): void {
    const all = this.wildcard.get(table)
    if (all !== undefined) for (const s of all) visit(s)
  }
}

/** Rule 1, second half: some change of the subscriber's table (with its pk) survives its whitelist. */
export const anchorSurvives = (tx: Tx, s: Routable): boolean => {
  for (const c of tx.changes) {
    if (c.rel.name === s.table && (s.pk === null || c.pk === s.pk) && encodeChange(c, s.whitelist) !== undefined) {
      return true
    }
  }
  return false
}

/** The `tx` payload for one whitelist: every surviving change in WAL order (rule 3, ride-along). */
export interface Encoded {
  readonly json: string
  /** Tables with at least one surviving change — the anchors this encoding can serve. */
  readonly anchors: ReadonlyArray<string>
}

export const encodeTx = (tx: Tx, commitTs: string, w: Whitelist): Encoded | undefined => {
  let body = ""
  const anchors: string[] = []
  for (const c of tx.changes) {
    const json = encodeChange(c, w)
    if (json === undefined) continue
    body += (body === "" ? "" : ",") + json
    if (!anchors.includes(c.rel.name)) anchors.push(c.rel.name)
  }
  if (body === "") return undefined
  return { json: `{"tx_id":${tx.xid},"commit_ts":"${commitTs}","changes":[${body}]}`, anchors }
}

export interface Audience<S> {
  readonly whitelist: Whitelist
  readonly json: string
  readonly anchors: ReadonlyArray<string>
  readonly subscribers: S[]
}

export interface RoutePlan<S> {
  /** One entry per distinct whitelist: encoded once, written to each of its subscribers (rule 4). */
  readonly audiences: ReadonlyArray<Audience<S>>
  readonly multiRoot: ReadonlyArray<S>
}

const EMPTY_PLAN: RoutePlan<never> = { audiences: [], multiRoot: [] }

export const planTx = <S extends Routable>(tx: Tx, index: RoutingIndex<S>): RoutePlan<S> => {
  if (tx.changes.length === 0 || index.size === 0) return EMPTY_PLAN
  const multiRoot: S[] = []
  const byWhitelist = new Map<Whitelist, Audience<S> | null>()
  let commitTs: string | undefined
  const deliver = (s: S) => {
    let audience = byWhitelist.get(s.whitelist)
    if (audience === undefined) {
      commitTs ??= formatPgEpochMicros(tx.commitTime)
      const encoded = encodeTx(tx, commitTs, s.whitelist)
      audience =
        encoded === undefined
          ? null
          : { whitelist: s.whitelist, json: encoded.json, anchors: encoded.anchors, subscribers: [] }
      byWhitelist.set(s.whitelist, audience)
    }
    // Not multi-root, so every change of s.table carries s's pk: a surviving change of the table is the anchor.
    if (audience?.anchors.includes(s.table)) audience.subscribers.push(s)
  }
  const refuse = (s: S) => {
    if (anchorSurvives(tx, s)) multiRoot.push(s)
  }
  // Each subscriber is reached once: a row's exact subscribers through that row, a table's `/all` subscribers once
  // per table, however many of its rows the transaction changed — so no per-transaction set of visited subscribers.
  for (const [table, touch] of tx.tables) {
    if (!touch.multi) {
      index.forRow(table, touch.firstPk, deliver)
      index.forTable(table, deliver)
      continue
    }
    const pks = new Set<string>()
    for (const c of tx.changes) {
      if (c.rel.name !== table || pks.has(c.pk)) continue
      pks.add(c.pk)
      index.forRow(table, c.pk, refuse)
    }
    index.forTable(table, refuse)
  }
  const audiences: Audience<S>[] = []
  for (const a of byWhitelist.values()) if (a !== null && a.subscribers.length > 0) audiences.push(a)
  return { audiences, multiRoot }
}

export type SinglePlan =
  | { readonly _tag: "Skip" }
  | { readonly _tag: "MultiRoot" }
  | { readonly _tag: "Send"; readonly json: string }

const SKIP: SinglePlan = { _tag: "Skip" }
const MULTI_ROOT: SinglePlan = { _tag: "MultiRoot" }

/** The same rules for one subscriber, as a replay needs them: what this transaction means for it. */
export const planFor = (tx: Tx, s: Routable): SinglePlan => {
  const touch = tx.tables.get(s.table)
  if (touch === undefined) return SKIP
  if (touch.multi) return anchorSurvives(tx, s) ? MULTI_ROOT : SKIP
  if (s.pk !== null && touch.firstPk !== s.pk) return SKIP
  const encoded = encodeTx(tx, formatPgEpochMicros(tx.commitTime), s.whitelist)
  return encoded?.anchors.includes(s.table) ? { _tag: "Send", json: encoded.json } : SKIP
}
