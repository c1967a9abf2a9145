// Shared set-up for integration files: a fresh database with the orders schema, a real
// auth backend, and a running Walera pointed at both.
import { inject } from "vitest"
import { type AuthServer, startAuthServer } from "../support/AuthServer.ts"
import { createTestDb, type TestDb } from "../support/Db.ts"
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
  /** Commits a transaction and waits until Walera dispatched it: every earlier commit is dispatched too. */
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
      // A WAL position inside a transaction committed now: once every slot on this database has confirmed it, that
      // transaction — and every one committed before it — was decoded and dispatched (acks never run ahead).
      await db.sql("CREATE TABLE IF NOT EXISTS walera_settle (id int PRIMARY KEY, n int)")
      const results = (await db.sql(
        `BEGIN;
         INSERT INTO walera_settle VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = walera_settle.n + 1;
         SELECT pg_logical_emit_message(true, 'walera-settle', '')::text AS lsn;
         COMMIT;`,
      )) as unknown as Array<{ rows: Array<{ lsn?: string }> }>
      const lsn = results.flatMap((x) => x.rows).find((row) => row.lsn !== undefined)!.lsn!
      await waitUntil(
        async () => {
          const slots = await db.sql(
            `SELECT count(*)::int AS n, count(*) FILTER (WHERE confirmed_flush_lsn >= $1::pg_lsn)::int AS done
             FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical'`,
            [lsn],
          )
          const row = slots.rows[0] as { n: number; done: number }
          return row.n > 0 && row.done === row.n
        },
        10_000,
        "walera to dispatch everything committed so far",
      )
    },
    close: async () => {
      await walera.stop("SIGKILL").catch(() => {})
      await auth.close()
      await db.drop()
    },
  }
}
