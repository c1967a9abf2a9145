// What every bench run stands on: the performance scenario's schema (docs/performance.md) and seed, the two-user auth backend, and the settings Walera
// runs with. Shared by the bench and the idle-memory probe so both measure the same Walera.
import http from "node:http"

export const SCHEMA = `
DROP PUBLICATION IF EXISTS walera_pub;
DROP TABLE IF EXISTS line_items;
DROP TABLE IF EXISTS orders;
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status text NOT NULL,
  total_cents int NOT NULL,
  currency text NOT NULL,
  note text,
  created_at timestamptz NOT NULL DEFAULT now(),
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
CREATE OR REPLACE FUNCTION bench_bump_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders SET updated_at = now() WHERE id = NEW.order_id;
  RETURN NULL;
END $$;
CREATE TRIGGER line_items_bump_order AFTER INSERT OR UPDATE ON line_items
  FOR EACH ROW EXECUTE FUNCTION bench_bump_order();
`

export const seed = (orders: number) => `
INSERT INTO orders (id, customer_id, status, total_cents, currency, note)
  SELECT g, 1 + g % 997, 'new', (g * 37) % 100000, 'EUR', 'order ' || g FROM generate_series(1, ${orders}) g;
ALTER TABLE line_items DISABLE TRIGGER line_items_bump_order;
INSERT INTO line_items (id, order_id, sku, qty, price_cents)
  SELECT (o - 1) * 3 + k, o, 'SKU-' || ((o * 7 + k) % 5000), 1, 100 + (o + k) % 900
  FROM generate_series(1, ${orders}) o, generate_series(1, 3) k;
ALTER TABLE line_items ENABLE TRIGGER line_items_bump_order;
CREATE PUBLICATION walera_pub FOR TABLE orders, line_items;
ANALYZE orders; ANALYZE line_items;
`

// ---------------------------------------------------------------------------------------------------------------
// Auth backend with two users

export const ALICE = {
  user_id: "alice",
  tables: {
    orders: ["id", "customer_id", "status", "total_cents", "currency", "note", "created_at", "updated_at"],
    line_items: ["id", "order_id", "sku", "qty", "price_cents", "updated_at"],
  },
  ttl_seconds: 0,
}
export const BOB = {
  user_id: "bob",
  tables: { orders: ["id", "status", "total_cents", "updated_at"], line_items: ["id", "qty"] },
  ttl_seconds: 0,
}
export const TOKENS = ["bench-alice", "bench-bob"]

export const startAuth = async () => {
  let calls = 0
  const bodies: Record<string, string> = {
    "bench-alice": JSON.stringify(ALICE),
    "bench-bob": JSON.stringify(BOB),
  }
  const server = http.createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      calls++
      const token = (req.headers.authorization ?? "").replace(/^Bearer\s+/i, "")
      const body = bodies[token]
      if (body !== undefined) {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(body)
      } else if (token === "") {
        // readiness probe (no credential): answer like a healthy backend
        res.writeHead(200, { "content-type": "application/json" })
        res.end('{"user_id":"probe","tables":{}}')
      } else {
        res.writeHead(401, { "content-type": "application/json" })
        res.end('{"error":"unknown token"}')
      }
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const a = server.address()
  const port = typeof a === "object" && a !== null ? a.port : 0
  return {
    port,
    calls: () => calls,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

/** Walera's settings in the bench (environment of the child process), before scenario-specific ones. */
export const waleraBenchEnv = (databaseUrl: string, authPort: number, port: number): Record<string, string> => ({
  PATH: process.env["PATH"] ?? "",
  WALERA_DATABASE_URL: databaseUrl,
  WALERA_AUTH_BACKEND_URL: `http://127.0.0.1:${authPort}`,
  WALERA_AUTH_ALLOW_PLAINTEXT: "true",
  WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
  WALERA_LOG_LEVEL: "warn",
  WALERA_LIMITS_PER_USER_CONCURRENT: "100000",
  WALERA_AUTH_DEFAULT_TTL_SECONDS: "0",
  WALERA_WAL_BOOTSTRAP: "verify",
})
