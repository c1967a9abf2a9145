// A fresh database per test file inside the shared test server, so files run in parallel
// without seeing each other's publications, slots or rows.
import { randomBytes } from "node:crypto"
import pg from "pg"

export interface TestDb {
  readonly url: string
  readonly name: string
  readonly sql: (text: string, params?: ReadonlyArray<unknown>) => Promise<pg.QueryResult>
  readonly drop: () => Promise<void>
}

const withDb = (url: string, name: string): string => {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

export const createTestDb = async (adminUrl: string, schema = ""): Promise<TestDb> => {
  const name = `walera_t_${randomBytes(5).toString("hex")}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = withDb(adminUrl, name)
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  // pool.end() resolves before its connections have closed, so the DROP ... WITH (FORCE) below (or a test that
  // terminates backends) can kill an idle one; the pool reports that as an 'error' event, which without a listener
  // is an uncaught exception that fails the whole run.
  pool.on("error", () => {})
  if (schema !== "") await pool.query(schema)
  return {
    url,
    name,
    sql: (text, params) => pool.query(text, params as unknown[]),
    drop: async () => {
      await pool.end()
      const c = new pg.Client({ connectionString: adminUrl })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
      await c.end()
    },
  }
}
