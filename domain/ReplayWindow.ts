// The replay window (docs/delivery-semantics.md, "The replay window"): the most recently decoded transactions,
// held once for all subscribers in commit order, so a handshake can replay what was decoded while the auth
// backend answered (gapless open) and, with resume on, a reconnect can continue after its Last-Event-ID.
// Bounded by age and by bytes; positions are sequence numbers of this process, ids are the database's xids
// (looked up, never compared: xids are not in commit order).
import type { TableTouch, Tx } from "./TxAssembler.ts"

export interface WindowLimits {
  /** Entries younger than this are evicted only by the byte bound. */
  readonly retentionMs: number
  readonly maxBytes: number
  /**
   * Keep a per-row index, so a lookup costs what it finds rather than the whole range: worth it when replays reach
   * far back (resume); a gapless open replays only what was decoded during its handshake and scans that.
   */
  readonly indexed?: boolean
}

export interface WindowEntry {
  /** Position in decode order, strictly increasing. */
  readonly seq: number
  readonly xid: number
  readonly tables: ReadonlyMap<string, TableTouch>
  /** null: a transaction over the size limits, remembered only by what it touched (its subscribers get tx_too_large). */
  readonly tx: Tx | null
  readonly decodedAt: number
  /** What holding the entry costs (heldBytes). */
  readonly bytes: number
}

/**
 * What holding a transaction costs beyond its JSON text, measured on V8 heap after a full GC
 * (testbench/bench/windowMemory.ts; docs/performance.md, "The replay window"): the entry with its transaction,
 * maps and index slots, each change with its values array, each value's string. Rounded up so the byte bound errs
 * on the safe side: for the bench's transaction the heap held is within a few percent of the charge, for small ones
 * the charge is up to a quarter more.
 */
export const ENTRY_OVERHEAD_BYTES = 1000
export const TABLE_OVERHEAD_BYTES = 200
export const CHANGE_OVERHEAD_BYTES = 280
export const VALUE_OVERHEAD_BYTES = 32

/** The charge of a held transaction (bytes of V8 heap, approximately). */
export const heldBytes = (tx: Tx): number => {
  let values = 0
  for (const c of tx.changes) {
    if (c.values === null) continue
    for (let i = 0; i < c.values.length; i++) if (c.values[i] !== undefined) values++
  }
  return (
    tx.bytes +
    ENTRY_OVERHEAD_BYTES +
    tx.tables.size * TABLE_OVERHEAD_BYTES +
    tx.changes.length * CHANGE_OVERHEAD_BYTES +
    values * VALUE_OVERHEAD_BYTES
  )
}

/** A queue of increasing sequence numbers with O(1) removal at the head. */
class SeqQueue {
  items: number[] = []
  head = 0
  get length(): number {
    return this.items.length - this.head
  }
  push(seq: number): void {
    this.items.push(seq)
  }
  dropHead(seq: number): void {
    if (this.items[this.head] !== seq) return
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
  /** Index of the first element ≥ seq (binary search). */
  firstAtLeast(seq: number): number {
    let lo = this.head
    let hi = this.items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.items[mid]! < seq) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

const rowKey = (table: string, pk: string): string => `${table}\u0000${pk}`

export class ReplayWindow {
  private readonly limits: WindowLimits
  private entries: WindowEntry[] = []
  private head = 0
  private nextSeq = 1
  private totalBytes = 0
  private readonly byXid = new Map<number, number>()
  /** Entries per touched row and per touched table, for transactions that touch one row of that table only. */
  private readonly byRow = new Map<string, SeqQueue>()
  private readonly byTable = new Map<string, SeqQueue>()

  private readonly indexed: boolean

  constructor(limits: WindowLimits) {
    this.limits = limits
    this.indexed = limits.indexed ?? true
  }

  /** The position a handshake records when it begins: everything appended from now on has seq ≥ position. */
  position(): number {
    return this.nextSeq
  }

  get size(): number {
    return this.entries.length - this.head
  }

  get bytes(): number {
    return this.totalBytes
  }

  /** True when every entry with seq ≥ position is still held (nothing a handshake needs was evicted or lost). */
  reaches(position: number): boolean {
    const oldest = this.entries[this.head]
    return oldest === undefined ? position >= this.nextSeq : oldest.seq <= position
  }

  append(tx: Tx, now: number): WindowEntry {
    return this.add(tx.xid, tx.tables, tx, heldBytes(tx), now)
  }

  /** A transaction too large to hold: replaying it is impossible, so a subscriber it touches cannot start before it. */
  appendOversized(xid: number, tables: ReadonlyMap<string, TableTouch>, now: number): WindowEntry {
    return this.add(xid, tables, null, ENTRY_OVERHEAD_BYTES + tables.size * TABLE_OVERHEAD_BYTES, now)
  }

  private add(
    xid: number,
    tables: ReadonlyMap<string, TableTouch>,
    tx: Tx | null,
    bytes: number,
    now: number,
  ): WindowEntry {
    const seq = this.nextSeq++
    if (this.indexed) {
      for (const [table, touch] of tables) {
        if (touch.multi) continue
        this.queue(this.byRow, rowKey(table, touch.firstPk)).push(seq)
        this.queue(this.byTable, table).push(seq)
      }
    }
    const entry: WindowEntry = { seq, xid, tables, tx, decodedAt: now, bytes }
    this.entries.push(entry)
    this.byXid.set(xid, seq)
    this.totalBytes += bytes
    while (this.totalBytes > this.limits.maxBytes && this.size > 0) this.evictOldest()
    this.expire(now)
    return entry
  }

  /** Evicts entries older than the retention. */
  expire(now: number): void {
    const before = now - this.limits.retentionMs
    while (this.size > 0 && this.entries[this.head]!.decodedAt < before) this.evictOldest()
  }

  /** Replication lost: what follows has a gap, so nothing before it may be replayed. Positions keep increasing. */
  clear(): void {
    this.entries = []
    this.head = 0
    this.totalBytes = 0
    this.byXid.clear()
    this.byRow.clear()
    this.byTable.clear()
  }

  /** The position right after the transaction with this id, when it is in the window. */
  after(xid: number): number | undefined {
    const seq = this.byXid.get(xid)
    return seq === undefined || !this.holds(seq) ? undefined : seq + 1
  }

  newestXid(): number | undefined {
    return this.size === 0 ? undefined : this.entries[this.entries.length - 1]!.xid
  }

  /**
   * Entries from `position` on that may touch a subscriber of `table` (one row, or every row for pk null), in commit
   * order. Transactions that change more than one row of the table are left out: the multi-root guard drops them.
   */
  touching(table: string, pk: string | null, position: number): WindowEntry[] {
    const base = this.entries[this.head]?.seq ?? this.nextSeq
    const out: WindowEntry[] = []
    if (!this.indexed) {
      for (let i = this.head + Math.max(0, position - base); i < this.entries.length; i++) {
        const entry = this.entries[i]!
        const touch = entry.tables.get(table)
        if (touch !== undefined && !touch.multi && (pk === null || touch.firstPk === pk)) out.push(entry)
      }
      return out
    }
    const queue = pk === null ? this.byTable.get(table) : this.byRow.get(rowKey(table, pk))
    if (queue === undefined) return out
    for (let i = queue.firstAtLeast(position); i < queue.items.length; i++) {
      const entry = this.entries[this.head + (queue.items[i]! - base)]
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  private holds(seq: number): boolean {
    const oldest = this.entries[this.head]
    return oldest !== undefined && seq >= oldest.seq && seq < this.nextSeq
  }

  private queue(map: Map<string, SeqQueue>, key: string): SeqQueue {
    let q = map.get(key)
    if (q === undefined) map.set(key, (q = new SeqQueue()))
    return q
  }

  private evictOldest(): void {
    const entry = this.entries[this.head]!
    this.entries[this.head] = undefined as never
    this.head++
    this.totalBytes -= entry.bytes
    if (this.byXid.get(entry.xid) === entry.seq) this.byXid.delete(entry.xid)
    if (this.indexed) {
      for (const [table, touch] of entry.tables) {
        if (touch.multi) continue
        this.dropFrom(this.byRow, rowKey(table, touch.firstPk), entry.seq)
        this.dropFrom(this.byTable, table, entry.seq)
      }
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
  }

  private dropFrom(map: Map<string, SeqQueue>, key: string, seq: number): void {
    const q = map.get(key)
    if (q === undefined) return
    q.dropHead(seq)
    if (q.length === 0) map.delete(key)
  }
}
