// Applies `tx` events to a keyed store of rows (table → pk → row). Every operation overwrites (insert replaces the
// row, update merges its columns, delete removes), so applying a transaction twice, or a replay that overlaps what a
// resync already loaded, leaves the same rows: that is what lets a client apply replays and resyncs without dedup.
import type { WaleraTx } from "./events.js"

export type Row = Record<string, unknown>

/** An in-memory mirror: table → pk (text form, as in `WaleraChange.pk`) → row. */
export type WaleraMirror = Map<string, Map<string, Row>>

/** Any synchronous keyed store of rows, e.g. a wrapper around your state library. */
export interface MirrorStore {
  get(table: string, pk: string): Row | undefined
  set(table: string, pk: string, row: Row): void
  delete(table: string, pk: string): void
}

/** A store whose operations may return promises (IndexedDB, a worker). Plain values are not awaited. */
export interface AsyncMirrorStore {
  get(table: string, pk: string): Row | undefined | PromiseLike<Row | undefined>
  set(table: string, pk: string, row: Row): unknown
  delete(table: string, pk: string): unknown
}

/** A `MirrorStore` over a `WaleraMirror`; a delete never creates an empty table. */
export const mapStore = (mirror: WaleraMirror): MirrorStore => ({
  get: (table, pk) => mirror.get(table)?.get(pk),
  set: (table, pk, row) => {
    let rows = mirror.get(table)
    if (rows === undefined) {
      rows = new Map()
      mirror.set(table, rows)
    }
    rows.set(pk, row)
  },
  delete: (table, pk) => {
    mirror.get(table)?.delete(pk)
  },
})

/**
 * Applies one transaction's changes, in order, and returns the tables it names. insert → the row becomes a copy of
 * `data`; update → `data` is merged into the row (absent keys keep their value, a missing row is created from
 * `data`); delete → the row is removed (a missing row is fine). Rows are replaced, never mutated, so a renderer can
 * compare row objects by identity.
 */
export const applyTx = (mirror: WaleraMirror | MirrorStore, tx: Pick<WaleraTx, "changes">): Set<string> => {
  const store = mirror instanceof Map ? mapStore(mirror) : mirror
  const touched = new Set<string>()
  for (const change of tx.changes) {
    touched.add(change.table)
    if (change.op === "delete") store.delete(change.table, change.pk)
    else if (change.op === "insert") store.set(change.table, change.pk, { ...change.data })
    else store.set(change.table, change.pk, { ...store.get(change.table, change.pk), ...change.data })
  }
  return touched
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  value !== null &&
  (typeof value === "object" || typeof value === "function") &&
  typeof (value as { then?: unknown }).then === "function"

/**
 * `applyTx` for an asynchronous store: the same operations, one after another. Only promises are awaited, so it
 * can run inside an IndexedDB transaction (e.g. Dexie's `db.transaction`) without letting it commit early.
 */
export const applyTxAsync = async (store: AsyncMirrorStore, tx: Pick<WaleraTx, "changes">): Promise<Set<string>> => {
  const touched = new Set<string>()
  for (const change of tx.changes) {
    touched.add(change.table)
    let done: unknown
    if (change.op === "delete") done = store.delete(change.table, change.pk)
    else if (change.op === "insert") done = store.set(change.table, change.pk, { ...change.data })
    else {
      const got = store.get(change.table, change.pk)
      const existing = isThenable(got) ? await got : got
      done = store.set(change.table, change.pk, { ...existing, ...change.data })
    }
    if (isThenable(done)) await done
  }
  return touched
}
