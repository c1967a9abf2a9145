// The soak's tables, how their values look on the wire (docs/delivery-semantics.md, value mapping) and the canonical
// form both sides compare in: big strings are replaced by length + hash so a client can keep
// thousands of 64 KiB frames without holding them.
import { createHash } from "node:crypto"
import type { Json, TableSpec } from "./types.ts"

export const TABLES: ReadonlyArray<TableSpec> = [
  {
    name: "orders",
    pk: "id",
    columns: [
      { name: "id", type: "int8" },
      { name: "owner_id", type: "int4" },
      { name: "status", type: "text" },
      { name: "total_cents", type: "int4" },
      { name: "note", type: "text" },
      { name: "secret", type: "text" },
      { name: "paid", type: "bool" },
      { name: "version", type: "int4" },
      { name: "updated_at", type: "timestamptz" },
    ],
  },
  {
    name: "line_items",
    pk: "id",
    columns: [
      { name: "id", type: "int8" },
      { name: "order_id", type: "int8" },
      { name: "sku", type: "text" },
      { name: "qty", type: "int4" },
      { name: "price_cents", type: "int4" },
      { name: "updated_at", type: "timestamptz" },
    ],
  },
  {
    name: "attachments",
    pk: "id",
    columns: [
      { name: "id", type: "int8" },
      { name: "order_id", type: "int8" },
      { name: "name", type: "text" },
      { name: "body", type: "text" },
    ],
  },
  {
    name: "blobs",
    pk: "id",
    columns: [
      { name: "id", type: "int8" },
      { name: "order_id", type: "int8" },
      { name: "body", type: "text" },
    ],
  },
]

export const SCHEMA: ReadonlyMap<string, TableSpec> = new Map(TABLES.map((t) => [t.name, t]))

/** `soak_tx` is the writer's own bookkeeping, outside the publication: read back after the run, it says what committed. */
export const DDL = `
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  owner_id int NOT NULL,
  status text NOT NULL,
  total_cents int NOT NULL,
  note text,
  secret text NOT NULL,
  paid boolean NOT NULL DEFAULT false,
  version int NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE line_items (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders(id),
  sku text NOT NULL,
  qty int NOT NULL,
  price_cents int NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX line_items_order_id ON line_items(order_id);
CREATE TABLE attachments (id bigint PRIMARY KEY, order_id bigint NOT NULL, name text NOT NULL, body text NOT NULL);
CREATE TABLE blobs (id bigint PRIMARY KEY, order_id bigint NOT NULL, body text NOT NULL);
CREATE TABLE soak_tx (seq bigint PRIMARY KEY, xid bigint NOT NULL, kind text NOT NULL);
CREATE FUNCTION soak_bump_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders SET updated_at = now() WHERE id = COALESCE(NEW.order_id, OLD.order_id);
  RETURN NULL;
END $$;
CREATE TRIGGER line_items_bump AFTER INSERT OR UPDATE OR DELETE ON line_items
  FOR EACH ROW EXECUTE FUNCTION soak_bump_order();
`

export const seedSql = (orders: number) => `
INSERT INTO orders (id, owner_id, status, total_cents, note, secret, paid, version)
  SELECT g, 1 + g % 97, 'new', (g * 37) % 100000, 'order ' || g, 'secret-' || md5(g::text), false, 0
  FROM generate_series(1, ${orders}) g;
ALTER TABLE line_items DISABLE TRIGGER line_items_bump;
INSERT INTO line_items (id, order_id, sku, qty, price_cents)
  SELECT (o - 1) * 2 + k, o, 'SKU-' || ((o * 7 + k) % 5000), 1, 100 + (o + k) % 900
  FROM generate_series(1, ${orders}) o, generate_series(1, 2) k;
ALTER TABLE line_items ENABLE TRIGGER line_items_bump;
CREATE PUBLICATION walera_pub FOR TABLE orders, line_items, attachments, blobs;
ANALYZE;
`

/** RFC 3339 UTC, "Z", fraction trimmed — Walera's timestamptz form — from microseconds since the Unix epoch. */
export const formatMicros = (us: bigint): string => {
  const seconds = us / 1_000_000n
  const frac = us % 1_000_000n
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19)
  const fraction = frac === 0n ? "" : `.${frac.toString().padStart(6, "0").replace(/0+$/, "")}`
  return `${base}${fraction}Z`
}

/** Walera's timestamp text back to epoch ms (for commit_ts checks). */
export const parseTs = (text: string): number => Date.parse(text)

export const BIG_STRING = 512

const digest = (s: string) => createHash("sha1").update(s).digest("hex").slice(0, 16)

/** The comparison form of a decoded value: strings longer than BIG_STRING become `#big:<length>:<hash>`. */
export const canonical = (v: Json): Json => {
  if (typeof v === "string") return v.length > BIG_STRING ? `#big:${v.length}:${digest(v)}` : v
  if (Array.isArray(v)) return v.map(canonical)
  if (v !== null && typeof v === "object") {
    const out: Record<string, Json> = {}
    for (const [k, x] of Object.entries(v)) out[k] = canonical(x)
    return out
  }
  return v
}

/** Byte size of a row's decoded values, roughly what router.max_tx_bytes counts. */
export const rowBytes = (row: Readonly<Record<string, Json>> | null): number => {
  if (row === null) return 0
  let n = 0
  for (const v of Object.values(row)) n += typeof v === "string" ? Buffer.byteLength(v) : 8
  return n
}
