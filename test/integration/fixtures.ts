// Shared set-up for integration files: a fresh database with the orders schema, a real
// auth backend, and a running Walera pointed at both.
import { inject } from "vitest"
import { type AuthServer, startAuthServer } from "../support/AuthServer.ts"
import { createTestDb, type TestDb } from "../support/Db.ts"
import { metricValue } from "../support/Scrape.ts"
import { waitUntil } from "../support/SseClient.ts"
import { startWalera, type WaleraProcess } from "../support/Walera.ts"

export const ORDERS_SCHEMA = `
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  status text NOT NULL DEFAULT 'new',
  total_cents integer NOT NULL DEFAULT 0,
  secret_note text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE line_items (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders(id),
  qty integer NOT NULL DEFAULT 1,
  hidden_cost integer
);
CREATE TABLE audit (id bigint PRIMARY KEY, what text);
CREATE FUNCTION bump_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders SET updated_at = clock_timestamp() WHERE id = COALESCE(NEW.order_id, OLD.order_id);
  RETURN NULL;
END $$;
CREATE TRIGGER line_items_bump AFTER INSERT OR UPDATE OR DELETE ON line_items FOR EACH ROW EXECUTE FUNCTION bump_order();
`

export const ALICE = {
  user_id: "alice",
  tables: { orders: ["id", "status", "total_cents", "updated_at"], line_items: ["id", "order_id", "qty"] },
  roots: ["orders"],
  ttl_seconds: 60,
}

export interface Env {
  readonly db: TestDb
  readonly auth: AuthServer
  readonly walera: WaleraProcess
  readonly bearer: (token: string) => Record<string, string>
  /** Commits a transaction and waits until Walera decoded it: every earlier commit is decoded too. */
  readonly settle: () => Promise<void>
  readonly close: () => Promise<void>
}

export const setup = async (
  options: { readonly schema?: string; readonly env?: Record<string, string>; readonly waitReady?: boolean } = {},
): Promise<Env> => {
  const db = await createTestDb(inject("adminUrl"), options.schema ?? ORDERS_SCHEMA)
  const auth = await startAuthServer()
  auth.answers.set("alice-token", { status: 200, body: ALICE })
  let walera: WaleraProcess
  try {
    walera = await startWalera(
      {
        WALERA_DATABASE_URL: db.url,
        WALERA_AUTH_BACKEND_URL: auth.url,
        WALERA_WAL_PUBLICATION_NAME: "walera_pub",
        WALERA_ROUTER_HEARTBEAT_INTERVAL: "15s",
        ...options.env,
      },
      { waitReady: options.waitReady ?? true },
    )
  } catch (e) {
    await auth.close()
    await db.drop()
    throw e
  }
  return {
    db,
    auth,
    walera,
    bearer: (token) => ({ authorization: `Bearer ${token}` }),
    settle: async () => {
      const decoded = async () => metricValue((await walera.get("/metrics")).body, "walera_wal_transactions_total")
      const before = await decoded()
      await db.sql("CREATE TABLE IF NOT EXISTS walera_settle (id int PRIMARY KEY)")
      await db.sql("INSERT INTO walera_settle VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 1")
      await waitUntil(async () => (await decoded()) > before, 10_000, "walera to decode the settle transaction")
    },
    close: async () => {
      await walera.stop("SIGKILL").catch(() => {})
      await auth.close()
      await db.drop()
    },
  }
}
