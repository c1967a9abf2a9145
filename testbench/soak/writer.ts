// The soak's writer: one connection, one transaction at a time, so the order it commits in is the
// commit order. It keeps a model of every row so it knows each change's whole new tuple (what
// Walera must send), records the xid, and writes a bookkeeping row in the same transaction: when a
// restart cuts a COMMIT off, the bookkeeping row read back later says whether it happened.
import { randomBytes } from "node:crypto"
import pg from "pg"
import { formatMicros, rowBytes } from "./schema.ts"
import type { HChange, HTx, Json, Oversize } from "./types.ts"

type Row = Record<string, Json>

export interface WriterOptions {
  readonly url: string
  readonly rate: number
  /** Orders 1..hot are the ones clients subscribe to; most writes go there. */
  readonly hot: number
  readonly maxChangesPerTx: number
  readonly maxTxBytes: number
  readonly random: () => number
  readonly now: () => number
  readonly log: (line: string) => void
}

interface Statement {
  readonly sql: string
  readonly params: unknown[]
}

/** Rows as they are in the database; changed only when a transaction is known to have committed. */
class Model {
  readonly orders = new Map<string, Row>()
  readonly items = new Map<string, Row>()
  readonly itemsByOrder = new Map<string, Set<string>>()
  readonly deletedHot = new Set<string>()
  nextOrder = 0
  nextItem = 0
  nextAttachment = 1
  nextBlob = 1

  setItem(pk: string, row: Row | null, orderPk: string): void {
    let set = this.itemsByOrder.get(orderPk)
    if (set === undefined) this.itemsByOrder.set(orderPk, (set = new Set()))
    if (row === null) {
      this.items.delete(pk)
      set.delete(pk)
    } else {
      this.items.set(pk, row)
      set.add(pk)
    }
  }
}

/** One transaction being planned: reads through to the model, collects statements and the changes they make. */
class Draft {
  readonly statements: Statement[] = []
  readonly changes: HChange[] = []
  private readonly orders = new Map<string, Row | null>()
  private readonly items = new Map<string, { row: Row | null; order: string }>()
  private readonly model: Model
  readonly now: string
  counters: { nextOrder: number; nextItem: number; nextAttachment: number; nextBlob: number }

  constructor(model: Model, now: string) {
    this.model = model
    this.now = now
    this.counters = {
      nextOrder: model.nextOrder,
      nextItem: model.nextItem,
      nextAttachment: model.nextAttachment,
      nextBlob: model.nextBlob,
    }
  }

  order(pk: string): Row | undefined {
    const o = this.orders.get(pk)
    if (o !== undefined) return o ?? undefined
    return this.model.orders.get(pk)
  }

  itemsOf(orderPk: string): string[] {
    const out = new Set(this.model.itemsByOrder.get(orderPk) ?? [])
    for (const [pk, v] of this.items) {
      if (v.order !== orderPk) continue
      if (v.row === null) out.delete(pk)
      else out.add(pk)
    }
    return [...out]
  }

  item(pk: string): Row | undefined {
    const i = this.items.get(pk)
    if (i !== undefined) return i.row ?? undefined
    return this.model.items.get(pk)
  }

  private bump(orderPk: string): void {
    const o = this.order(orderPk)
    if (o === undefined) return
    const row = { ...o, updated_at: this.now }
    this.orders.set(orderPk, row)
    this.changes.push({ op: "update", table: "orders", pk: orderPk, row })
  }

  updateOrder(pk: string, values: Partial<Row>): void {
    const o = this.order(pk)
    if (o === undefined) return
    const row: Row = { ...o, ...values, version: (o["version"] as number) + 1, updated_at: this.now }
    this.statements.push({
      sql: "UPDATE orders SET status = $2, total_cents = $3, note = $4, paid = $5, version = $6, updated_at = now() WHERE id = $1",
      params: [pk, row["status"], row["total_cents"], row["note"], row["paid"], row["version"]],
    })
    this.orders.set(pk, row)
    this.changes.push({ op: "update", table: "orders", pk, row })
  }

  insertOrder(pk: string, values: Row): void {
    const row: Row = { id: pk, ...values, version: 0, updated_at: this.now }
    this.statements.push({
      sql: "INSERT INTO orders (id, owner_id, status, total_cents, note, secret, paid, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
      params: [pk, row["owner_id"], row["status"], row["total_cents"], row["note"], row["secret"], row["paid"]],
    })
    this.orders.set(pk, row)
    this.changes.push({ op: "insert", table: "orders", pk, row })
  }

  deleteOrder(pk: string): void {
    for (const item of this.itemsOf(pk)) this.deleteItem(item)
    this.statements.push({ sql: "DELETE FROM orders WHERE id = $1", params: [pk] })
    this.orders.set(pk, null)
    this.changes.push({ op: "delete", table: "orders", pk, row: null })
  }

  insertItem(orderPk: string, values: { sku: string; qty: number; price_cents: number }): string {
    const pk = String(++this.counters.nextItem)
    const row: Row = { id: pk, order_id: orderPk, ...values, updated_at: this.now }
    this.statements.push({
      sql: "INSERT INTO line_items (id, order_id, sku, qty, price_cents) VALUES ($1, $2, $3, $4, $5)",
      params: [pk, orderPk, values.sku, values.qty, values.price_cents],
    })
    this.items.set(pk, { row, order: orderPk })
    this.changes.push({ op: "insert", table: "line_items", pk, row })
    this.bump(orderPk)
    return pk
  }

  /** One statement inserting n items: PostgreSQL runs the row triggers after the statement, so the bumps come last. */
  bulkItems(orderPk: string, n: number): void {
    const first = this.counters.nextItem + 1
    this.counters.nextItem += n
    this.statements.push({
      sql: "INSERT INTO line_items (id, order_id, sku, qty, price_cents) SELECT g, $1, 'BULK-' || g, 1, 100 FROM generate_series($2::bigint, $3::bigint) g",
      params: [orderPk, first, first + n - 1],
    })
    for (let i = 0; i < n; i++) {
      const pk = String(first + i)
      const row: Row = { id: pk, order_id: orderPk, sku: `BULK-${pk}`, qty: 1, price_cents: 100, updated_at: this.now }
      this.items.set(pk, { row, order: orderPk })
      this.changes.push({ op: "insert", table: "line_items", pk, row })
    }
    for (let i = 0; i < n; i++) this.bump(orderPk)
  }

  updateItem(pk: string, qty: number, price: number): void {
    const it = this.item(pk)
    if (it === undefined) return
    const orderPk = it["order_id"] as string
    const row: Row = { ...it, qty, price_cents: price, updated_at: this.now }
    this.statements.push({
      sql: "UPDATE line_items SET qty = $2, price_cents = $3, updated_at = now() WHERE id = $1",
      params: [pk, qty, price],
    })
    this.items.set(pk, { row, order: orderPk })
    this.changes.push({ op: "update", table: "line_items", pk, row })
    this.bump(orderPk)
  }

  deleteItem(pk: string): void {
    const it = this.item(pk)
    if (it === undefined) return
    const orderPk = it["order_id"] as string
    this.statements.push({ sql: "DELETE FROM line_items WHERE id = $1", params: [pk] })
    this.items.set(pk, { row: null, order: orderPk })
    this.changes.push({ op: "delete", table: "line_items", pk, row: null })
    this.bump(orderPk)
  }

  insertAttachment(orderPk: string, name: string, body: string): void {
    const pk = String(this.counters.nextAttachment++)
    const row: Row = { id: pk, order_id: orderPk, name, body }
    this.statements.push({
      sql: "INSERT INTO attachments (id, order_id, name, body) VALUES ($1, $2, $3, $4)",
      params: [pk, orderPk, name, body],
    })
    this.changes.push({ op: "insert", table: "attachments", pk, row })
  }

  insertBlobs(orderPk: string, bodies: string[]): void {
    const ids = bodies.map(() => this.counters.nextBlob++)
    this.statements.push({
      sql: "INSERT INTO blobs (id, order_id, body) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])",
      params: [ids, ids.map(() => orderPk), bodies],
    })
    ids.forEach((id, i) => {
      const pk = String(id)
      this.changes.push({ op: "insert", table: "blobs", pk, row: { id: pk, order_id: orderPk, body: bodies[i]! } })
    })
  }

  apply(model: Model, hot: number): void {
    for (const [pk, row] of this.orders) {
      if (row === null) {
        model.orders.delete(pk)
        if (Number(pk) <= hot) model.deletedHot.add(pk)
      } else {
        model.orders.set(pk, row)
        model.deletedHot.delete(pk)
      }
    }
    for (const [pk, v] of this.items) model.setItem(pk, v.row, v.order)
    model.nextOrder = this.counters.nextOrder
    model.nextItem = this.counters.nextItem
    model.nextAttachment = this.counters.nextAttachment
    model.nextBlob = this.counters.nextBlob
  }
}

const STATUSES = ["new", "paid", "shipped", "cancelled", "ünïcødé", 'quote"d', "back\\slash", "emoji 🚀", "tab\there"]

export type Special = "oversize_changes" | "big_bytes"

export interface Writer {
  readonly committed: HTx[]
  /** Attempts whose outcome is unknown until the bookkeeping is read (should be none after resolution). */
  readonly stats: () => WriterStats
  readonly special: (kind: Special) => void
  readonly stop: () => Promise<void>
  /** Reads soak_tx and returns what the bookkeeping says that the writer's own record does not. */
  readonly reconcile: () => Promise<{ missingInDb: number[]; unknownInDb: number[] }>
}

export interface WriterStats {
  attempts: number
  committed: number
  failed: number
  ambiguous: number
  ambiguousCommitted: number
  byKind: Record<string, number>
  unexpectedErrors: string[]
}

export const startWriter = async (options: WriterOptions): Promise<Writer> => {
  const { random, now, log } = options
  const model = new Model()
  const committed: HTx[] = []
  const stats: WriterStats = {
    attempts: 0,
    committed: 0,
    failed: 0,
    ambiguous: 0,
    ambiguousCommitted: 0,
    byKind: {},
    unexpectedErrors: [],
  }
  let client: pg.Client | null = null
  let stopping = false
  const specials: Special[] = []

  const connect = async (): Promise<pg.Client> => {
    for (;;) {
      const c = new pg.Client({ connectionString: options.url, application_name: "soak-writer" })
      c.on("error", () => {})
      try {
        await c.connect()
        // Acknowledged means in the WAL: an immediate stop must not lose a commit the writer counted.
        await c.query("SET synchronous_commit = on")
        return c
      } catch {
        await c.end().catch(() => {})
        if (stopping) throw new Error("writer stopped")
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  }

  // The model starts from what the seed wrote.
  {
    const c = await connect()
    const orders = await c.query(
      "SELECT id::text, owner_id, status, total_cents, note, secret, paid, version, (extract(epoch from updated_at) * 1000000)::bigint::text AS us FROM orders",
    )
    for (const r of orders.rows) {
      model.orders.set(r.id, {
        id: r.id,
        owner_id: r.owner_id,
        status: r.status,
        total_cents: r.total_cents,
        note: r.note,
        secret: r.secret,
        paid: r.paid,
        version: r.version,
        updated_at: formatMicros(BigInt(r.us)),
      })
      model.nextOrder = Math.max(model.nextOrder, Number(r.id))
    }
    const items = await c.query(
      "SELECT id::text, order_id::text, sku, qty, price_cents, (extract(epoch from updated_at) * 1000000)::bigint::text AS us FROM line_items",
    )
    for (const r of items.rows) {
      model.setItem(
        r.id,
        {
          id: r.id,
          order_id: r.order_id,
          sku: r.sku,
          qty: r.qty,
          price_cents: r.price_cents,
          updated_at: formatMicros(BigInt(r.us)),
        },
        r.order_id,
      )
      model.nextItem = Math.max(model.nextItem, Number(r.id))
    }
    client = c
  }

  const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(random() * xs.length)]!
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1))
  const text = (n: number) =>
    randomBytes(Math.ceil((n * 3) / 4))
      .toString("base64")
      .slice(0, n)
  const hotPk = (d: Draft): string => {
    for (let i = 0; i < 20; i++) {
      const pk = String(int(1, options.hot))
      if (d.order(pk) !== undefined) return pk
    }
    return anyPk(d)
  }
  const anyPk = (d: Draft): string => {
    for (let i = 0; i < 50; i++) {
      const pk = String(int(1, Math.max(1, model.nextOrder)))
      if (d.order(pk) !== undefined) return pk
    }
    return String(model.orders.keys().next().value)
  }
  const somePk = (d: Draft) => (random() < 0.85 ? hotPk(d) : anyPk(d))
  const orderValues = (): Partial<Row> => ({
    status: pick(STATUSES),
    total_cents: int(0, 1_000_000),
    note: random() < 0.1 ? null : random() < 0.1 ? `line one\nline two ${text(8)}` : `note ${text(int(4, 40))}`,
    paid: random() < 0.5,
  })
  const newOrder = (): Row => ({
    owner_id: int(1, 97),
    status: "new",
    total_cents: int(0, 100_000),
    note: `new ${text(12)}`,
    secret: `secret-${text(16)}`,
    paid: false,
  })

  const KINDS: Array<[string, number, (d: Draft) => void]> = [
    ["order_update", 30, (d) => d.updateOrder(somePk(d), orderValues())],
    [
      "child_insert",
      8,
      (d) => void d.insertItem(somePk(d), { sku: `SKU-${text(6)}`, qty: int(1, 9), price_cents: int(1, 99_999) }),
    ],
    [
      "child_update",
      12,
      (d) => {
        const o = somePk(d)
        const items = d.itemsOf(o)
        if (items.length === 0) d.insertItem(o, { sku: "SKU-new", qty: 1, price_cents: 100 })
        else d.updateItem(pick(items), int(1, 50), int(1, 99_999))
      },
    ],
    [
      "child_delete",
      4,
      (d) => {
        const o = somePk(d)
        const items = d.itemsOf(o)
        if (items.length > 0) d.deleteItem(pick(items))
        else d.updateOrder(o, orderValues())
      },
    ],
    [
      "order_insert",
      5,
      (d) => {
        const back = [...model.deletedHot]
        const pk = back.length > 0 && random() < 0.7 ? pick(back) : String(++d.counters.nextOrder)
        d.insertOrder(pk, newOrder())
        for (let i = int(0, 2); i > 0; i--) d.insertItem(pk, { sku: `SKU-${text(4)}`, qty: 1, price_cents: 500 })
      },
    ],
    [
      "order_delete",
      3,
      (d) => {
        const pk = random() < 0.4 ? hotPk(d) : anyPk(d)
        if (d.itemsOf(pk).length > 20) d.updateOrder(pk, orderValues())
        else d.deleteOrder(pk)
      },
    ],
    [
      "multi_root",
      8,
      (d) => {
        const a = somePk(d)
        let b = somePk(d)
        for (let i = 0; i < 5 && b === a; i++) b = somePk(d)
        d.updateOrder(a, orderValues())
        d.updateOrder(b, orderValues())
        if (random() < 0.3) d.insertItem(a, { sku: "SKU-multi", qty: 2, price_cents: 200 })
      },
    ],
    [
      "ride_along",
      5,
      (d) => {
        const a = somePk(d)
        d.updateOrder(a, orderValues())
        d.insertAttachment(anyPk(d), `other-${text(6)}.txt`, text(int(10, 200)))
      },
    ],
    [
      "same_root_multi",
      5,
      (d) => {
        const a = somePk(d)
        d.updateOrder(a, orderValues())
        d.updateOrder(a, orderValues())
        const items = d.itemsOf(a)
        if (items.length > 0) d.updateItem(pick(items), int(1, 9), int(1, 999))
      },
    ],
    [
      "fat",
      3,
      (d) => {
        const a = somePk(d)
        d.updateOrder(a, orderValues())
        d.insertAttachment(a, `scan-${text(6)}.pdf`, text(int(64_000, 160_000)))
      },
    ],
  ]
  const totalWeight = KINDS.reduce((a, k) => a + k[1], 0)
  const SPECIAL_PLANS: Record<Special, (d: Draft) => void> = {
    // Past router.max_changes_per_tx: n inserts plus n bumps of one hot order.
    oversize_changes: (d) => d.bulkItems(hotPk(d), Math.ceil(options.maxChangesPerTx / 2) + 10),
    // Past router.max_tx_bytes with few changes: one order update and big blobs of the same order.
    big_bytes: (d) => {
      const a = hotPk(d)
      d.updateOrder(a, orderValues())
      const each = 14_000
      const n = Math.ceil((options.maxTxBytes * 1.4) / each)
      d.insertBlobs(
        a,
        Array.from({ length: n }, () => text(each)),
      )
    },
  }

  const oversizeOf = (changes: ReadonlyArray<HChange>): Oversize => {
    if (changes.length > options.maxChangesPerTx) return "changes"
    let bytes = 0
    for (const c of changes) bytes += rowBytes(c.row)
    if (bytes > options.maxTxBytes * 1.25) return "bytes"
    if (bytes > options.maxTxBytes * 0.75) return "maybe"
    return null
  }

  let seq = 0
  const runOne = async (kind: string, plan: (d: Draft) => void): Promise<void> => {
    stats.attempts++
    const mySeq = ++seq
    let phase: "body" | "commit" = "body"
    let draft: Draft | null = null
    let commitStart = 0
    try {
      if (client === null) client = await connect()
      const c = client
      await c.query("BEGIN")
      const r = await c.query(
        "SELECT (txid_current() % 4294967296)::text AS xid, (extract(epoch from now()) * 1000000)::bigint::text AS us",
      )
      const xid = Number(r.rows[0].xid)
      draft = new Draft(model, formatMicros(BigInt(r.rows[0].us)))
      plan(draft)
      if (draft.changes.length === 0) {
        await c.query("ROLLBACK")
        return
      }
      for (const st of draft.statements) await c.query(st.sql, st.params)
      await c.query("INSERT INTO soak_tx (seq, xid, kind) VALUES ($1, $2, $3)", [mySeq, xid, kind])
      phase = "commit"
      commitStart = now()
      await c.query("COMMIT")
      record(mySeq, xid, kind, commitStart, now(), draft)
    } catch (e) {
      const failedAt = now()
      // No SQLSTATE (a socket error), or class 08 (connection) / 57 (operator intervention, e.g. a shutdown): the session is gone.
      const code = (e as { code?: string }).code
      const sqlstate = code !== undefined && /^[0-9A-Z]{5}$/.test(code)
      const broken = client === null || !sqlstate || code.startsWith("08") || code.startsWith("57")
      if (phase === "commit" && draft !== null) {
        // The COMMIT may or may not have happened: ask the bookkeeping once the database is back.
        stats.ambiguous++
        await client?.end().catch(() => {})
        client = null
        const xid = await resolve(mySeq)
        if (xid !== null) {
          stats.ambiguousCommitted++
          record(mySeq, xid, kind, commitStart, failedAt, draft)
        } else stats.failed++
        return
      }
      stats.failed++
      if (broken) {
        await client?.end().catch(() => {})
        client = null
      } else {
        if (stats.unexpectedErrors.length < 20) stats.unexpectedErrors.push(`${kind}: ${(e as Error).message}`)
        await client?.query("ROLLBACK").catch(() => {})
      }
    }
  }

  const resolve = async (s: number): Promise<number | null> => {
    for (;;) {
      try {
        client ??= await connect()
        const r = await client.query("SELECT xid::text FROM soak_tx WHERE seq = $1", [s])
        return r.rows.length > 0 ? Number(r.rows[0].xid) : null
      } catch {
        await client?.end().catch(() => {})
        client = null
        if (stopping) return null
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  }

  const record = (s: number, xid: number, kind: string, a: number, b: number, d: Draft) => {
    d.apply(model, options.hot)
    stats.committed++
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1
    committed.push({
      seq: s,
      xid,
      commitStart: a,
      commitEnd: b,
      kind,
      changes: d.changes,
      oversize: oversizeOf(d.changes),
    })
  }

  const loop = (async () => {
    const started = now()
    let n = 0
    while (!stopping) {
      const due = started + (n * 1000) / options.rate
      const wait = due - now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      else if (wait < -2000) n = Math.floor(((now() - started) * options.rate) / 1000)
      n++
      if (stopping) break
      const special = specials.shift()
      if (special !== undefined) {
        await runOne(special, SPECIAL_PLANS[special])
        continue
      }
      let w = random() * totalWeight
      const k = KINDS.find((x) => (w -= x[1]) < 0) ?? KINDS[0]!
      await runOne(k[0], k[2])
    }
  })()

  return {
    committed,
    stats: () => stats,
    special: (kind) => void specials.push(kind),
    stop: async () => {
      stopping = true
      await loop
      await client?.end().catch(() => {})
      client = null
      log(`writer stopped after ${stats.committed} commits`)
    },
    reconcile: async () => {
      const c = await connect()
      try {
        const rows = (await c.query("SELECT seq::int AS seq, xid::text AS xid FROM soak_tx")).rows as Array<{
          seq: number
          xid: string
        }>
        const inDb = new Map(rows.map((r) => [r.seq, Number(r.xid)]))
        const mine = new Set(committed.map((t) => t.seq))
        return {
          missingInDb: committed.filter((t) => inDb.get(t.seq) !== t.xid).map((t) => t.seq),
          unknownInDb: [...inDb.keys()].filter((s) => !mine.has(s)),
        }
      } finally {
        await c.end().catch(() => {})
      }
    },
  }
}
