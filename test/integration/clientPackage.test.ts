// The client as a front-end team gets it: `npm pack` in client/, `npm install` of the tarball into an empty project,
// then that project's code follows a running Walera (on the oldest Node the package supports when the machine has
// it) and its TypeScript compiles against the shipped .d.ts.
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { waitUntil } from "../support/SseClient.ts"
import { type Env, setup } from "./fixtures.ts"

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, "../..")
// Debian's system Node is 20, the lowest version the package promises; else the test's own Node.
const CONSUMER_NODE = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath

let env: Env
let project: string
let child: ChildProcess | undefined

beforeAll(async () => {
  env = await setup()
  project = await mkdtemp(join(tmpdir(), "walera-client-consumer-"))
  // prepack builds dist/ with the repository's tsc; the tarball lands in the consumer project.
  await run("npm", ["pack", "--silent", "--pack-destination", project], { cwd: join(ROOT, "client") })
  const tarball = (await readdir(project)).find((name) => name.endsWith(".tgz"))
  if (tarball === undefined) throw new Error("npm pack wrote no tarball")
  await writeFile(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }))
  // No dependencies to fetch: this works offline.
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", `./${tarball}`], { cwd: project })
}, 120_000)

afterAll(async () => {
  child?.kill("SIGKILL")
  await env?.close()
  if (project !== undefined) await rm(project, { recursive: true, force: true })
})

const FOLLOW = `
import { applyTx, connect } from "@walera/client"
const [url, token] = process.argv.slice(2)
const print = (line) => console.log(JSON.stringify(line))
print({ node: process.version })
const mirror = new Map()
let txs = 0
const conn = connect({
  url,
  headers: async () => ({ Authorization: "Bearer " + token }),
  onOpen: () => print({ open: true }),
  onResync: () => print({ resync: true }),
  onResumed: (info) => print({ resumed: info.last_event_id }),
  onTx: (tx) => {
    applyTx(mirror, tx)
    print({ tx, row: mirror.get("orders")?.get("42"), lastEventId: conn.lastEventId })
    if (++txs === 1) conn.reconnect() // the next open sends this tx's id
  },
  onClose: (info) => print({ close: info.reason, willRetry: info.willRetry }),
})
`

const CHECK = `
import { applyTx, connect, type WaleraConnection, type WaleraMirror, type WaleraTx } from "@walera/client"
const mirror: WaleraMirror = new Map()
const conn: WaleraConnection = connect<{ id: number }>({
  url: "http://127.0.0.1:1/sse/v1/orders/42",
  onInitialData: (data) => { const id: number = data.id; void id },
  onTx: (tx: WaleraTx) => { const tables: Set<string> = applyTx(mirror, tx); void tables },
  onError: (reason) => { if (reason === "wal_disconnected") conn.close() },
})
conn.close()
`

describe("the packed client", () => {
  it("installs from its tarball and follows a running Walera from a separate project", async () => {
    await writeFile(join(project, "follow.mjs"), FOLLOW)
    const lines: Array<Record<string, unknown>> = []
    child = spawn(CONSUMER_NODE, ["follow.mjs", `${env.walera.url}/sse/v1/orders/42`, "alice-token"], {
      cwd: project,
      stdio: ["ignore", "pipe", "inherit"],
    })
    createInterface({ input: child.stdout! }).on("line", (line) => lines.push(JSON.parse(line)))
    const seen = (what: string, test: (line: Record<string, unknown>) => boolean, count = 1) =>
      waitUntil(async () => lines.filter(test).length >= count, 15_000, what)

    await seen("the stream to open", (l) => l["resync"] === true)
    await env.db.sql("INSERT INTO orders (id, status, secret_note) VALUES (42, 'paid', 'not for alice')")
    await seen("the committed insert", (l) => l["tx"] !== undefined)
    // The script reconnects after its first tx; Walera without resume answers with a normal open.
    await seen("the reconnect's open", (l) => l["resync"] === true, 2)
    await env.db.sql("UPDATE orders SET status = 'shipped' WHERE id = 42")
    await seen("the update", (l) => l["tx"] !== undefined, 2)
    child.kill()

    if (CONSUMER_NODE === "/usr/bin/node") expect(lines[0]!["node"]).toMatch(/^v20\./)
    const txLines = lines.filter((l) => l["tx"] !== undefined)
    const first = txLines[0]!["tx"] as { tx_id: number; changes: unknown[] }
    expect(first.changes).toEqual([
      {
        op: "insert",
        table: "orders",
        pk: "42",
        data: expect.objectContaining({ id: "42", status: "paid", total_cents: 0 }),
      },
    ])
    // Alice's whitelist has no secret_note: it never reached the package's mirror.
    expect(Object.keys(txLines[0]!["row"] as object).sort()).toEqual(["id", "status", "total_cents", "updated_at"])
    expect(txLines[0]!["lastEventId"]).toBe(String(first.tx_id))
    expect(txLines[1]!["row"]).toMatchObject({ id: "42", status: "shipped", total_cents: 0 })
    expect(lines.filter((l) => "close" in l)).toEqual([{ close: "reconnect", willRetry: true }])
    expect(lines.some((l) => "resumed" in l)).toBe(false)
  })

  it("ships types a TypeScript project compiles against", async () => {
    await writeFile(join(project, "check.ts"), CHECK)
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc")
    const args = ["--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", "--lib", "es2022,dom"]
    const compile = (file: string) =>
      run(process.execPath, [tsc, ...args, file], { cwd: project }).then(
        () => "",
        (error: { stdout?: string }) => String(error.stdout),
      )
    expect(await compile("check.ts")).toBe("")
    // And the compiler does look at them: a wrong callback type is an error.
    await writeFile(
      join(project, "wrong.ts"),
      CHECK.replace("const id: number = data.id", "const id: string = data.id"),
    )
    expect(await compile("wrong.ts")).toMatch(/wrong\.ts.*TS2322/)
  })
})
