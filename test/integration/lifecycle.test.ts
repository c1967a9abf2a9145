// Lifecycle of the process (docs/operations.md, "Graceful shutdown"): heartbeats on idle streams, two instances on one
// database, and SIGTERM — shutdown frame to every stream, slot gone, exit 0 in time.
import { spawn } from "node:child_process"
import { resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../support/EmbeddedPg.ts"
import { openSse, waitUntil } from "../support/SseClient.ts"
import { startWalera } from "../support/Walera.ts"
import { type Env, setup } from "./fixtures.ts"

let env: Env
beforeAll(async () => {
  env = await setup({
    env: {
      WALERA_ROUTER_HEARTBEAT_INTERVAL: "300ms",
      WALERA_LIMITS_PER_USER_CONCURRENT: "5000",
      // This file is about shutdown: a loaded CI box must not turn 1000 parallel opens into auth timeouts,
      // nor refuse the ones beyond the default 256 auth calls in flight.
      WALERA_AUTH_REQUEST_TIMEOUT: "20s",
      WALERA_AUTH_MAX_CONCURRENT_CALLS: "1000",
    },
  })
  await env.db.sql("INSERT INTO orders (id) VALUES (1), (2)")
})
afterAll(async () => {
  await env?.close()
})

const slots = async () =>
  (
    await env.db.sql(
      "SELECT slot_name, temporary, active FROM pg_replication_slots WHERE database = current_database()",
    )
  ).rows as Array<{ slot_name: string; temporary: boolean; active: boolean }>

describe("heartbeat", () => {
  it("an idle stream receives the comment frame ':' after router.heartbeat_interval", async () => {
    const sse = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    await sse.waitFor((c) => c.raw().includes(":\n\n"), 3000, "heartbeat")
    const started = performance.now()
    const before = sse.frames().filter((f) => f.comment).length
    await sse.waitFor((c) => c.frames().filter((f) => f.comment).length >= before + 2, 3000, "two more heartbeats")
    expect(performance.now() - started).toBeGreaterThanOrEqual(300)
    expect(sse.raw()).toMatch(/^retry: 15000\n\n(:\n\n)+/)
    sse.close()
  })
})

describe("replication slot", () => {
  it("is TEMPORARY, named <prefix>_<host>_<pid>, and a second instance on the same database works", async () => {
    const first = await slots()
    expect(first.length).toBe(1)
    expect(first[0]!.temporary).toBe(true)
    expect(first[0]!.active).toBe(true)
    expect(first[0]!.slot_name).toMatch(new RegExp(`^walera_[a-z0-9_]+_${env.walera.child.pid}$`))

    const second = await startWalera({
      WALERA_DATABASE_URL: env.db.url,
      WALERA_AUTH_BACKEND_URL: env.auth.url,
      WALERA_WAL_BOOTSTRAP: "verify",
    })
    try {
      expect((await slots()).length).toBe(2)
      const a = await openSse(env.walera.url, "/sse/v1/orders/2", env.bearer("alice-token"))
      const b = await openSse(second.url, "/sse/v1/orders/2", env.bearer("alice-token"))
      await env.db.sql("UPDATE orders SET status = 'both' WHERE id = 2")
      await a.waitFor((c) => c.raw().includes('"both"'), 10_000, "first instance")
      await b.waitFor((c) => c.raw().includes('"both"'), 10_000, "second instance")
      a.close()
      b.close()
    } finally {
      expect(await second.stop()).toBe(0)
    }
    // PostgreSQL drops a temporary slot when its walsender exits, a moment after the client closed.
    await waitUntil(async () => (await slots()).length === 1, 5000, "the second slot to disappear")
  })
})

describe("SIGTERM", () => {
  it("sends shutdown to every stream, drops the slot and exits 0 within the deadline, with 1000 streams open", async () => {
    const streams = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        openSse(env.walera.url, i % 2 === 0 ? "/sse/v1/orders/1" : "/sse/v1/orders/all", env.bearer("alice-token")),
      ),
    )
    expect(streams.filter((s) => s.status !== 200).map((s) => `${s.status} ${s.body()}`)).toEqual([])
    const started = performance.now()
    const code = await env.walera.stop("SIGTERM")
    const took = performance.now() - started
    expect(code).toBe(0)
    expect(took).toBeLessThan(10_000)
    await Promise.all(streams.map((s) => s.ended))
    for (const s of streams) {
      expect(s.raw().endsWith('event: shutdown\ndata: {"reason":"service_restart"}\n\n')).toBe(true)
    }
    await waitUntil(async () => (await slots()).length === 0, 5000, "the slot to disappear")
    expect(env.walera.logs()).toContain('"msg":"stopped"')
  })
})

describe("npm start", () => {
  const npmStart = async (extraEnv: Record<string, string> = {}) => {
    const port = await freePort()
    const child = spawn("npm", ["start", "--silent"], {
      cwd: resolve(import.meta.dirname, "../.."),
      env: {
        PATH: process.env["PATH"] ?? "",
        HOME: process.env["HOME"] ?? "/root",
        WALERA_DATABASE_URL: env.db.url,
        WALERA_AUTH_BACKEND_URL: env.auth.url,
        WALERA_AUTH_ALLOW_PLAINTEXT: "true",
        WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
        WALERA_WAL_SLOT_NAME_PREFIX: "npmstart",
        ...extraEnv,
      },
      stdio: ["ignore", "pipe", "ignore"],
    })
    let out = ""
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString()
    })
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    const line = (msg: string) =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l["msg"] === msg)
    return { child, exited, url: `http://127.0.0.1:${port}`, line }
  }

  it("starts the service, and SIGTERM to npm reaches it: shutdown frame, exit 0", async () => {
    const { child, exited, url, line } = await npmStart()
    await waitUntil(
      async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200,
      30_000,
      "npm start",
    )
    const s = await openSse(url, "/sse/v1/orders/1", env.bearer("alice-token"))
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    await s.ended
    expect(s.raw().endsWith('event: shutdown\ndata: {"reason":"service_restart"}\n\n')).toBe(true)
    // V8's heap as npm start sizes it: 1 GiB of old generation + 3 × 32 MiB of young (docs/operations.md, "The V8 heap")
    expect(line("starting")?.["heap_limit_mib"]).toBe(1024 + 96)
  }, 60_000)

  it("an operator's own NODE_OPTIONS comes after npm start's and wins", async () => {
    const { child, exited, line } = await npmStart({ NODE_OPTIONS: "--max-old-space-size=1500" })
    await waitUntil(async () => line("starting") !== undefined, 30_000, "the starting line")
    expect(line("starting")?.["heap_limit_mib"]).toBe(1500 + 96)
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
  }, 60_000)
})
