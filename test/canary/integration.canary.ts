// Fails on purpose, after using the PostgreSQL that the integration project's global setup started (the set-up
// that once turned every failing run into exit code 0). .ci/run fails the build unless this run exits non-zero.
import pg from "pg"
import { expect, inject, it } from "vitest"

it("canary: an integration test that must fail", async () => {
  const client = new pg.Client({ connectionString: inject("adminUrl") })
  await client.connect()
  try {
    const { rows } = await client.query("SELECT 1 AS one")
    expect(rows[0]?.one).toBe(2)
  } finally {
    await client.end()
  }
})
