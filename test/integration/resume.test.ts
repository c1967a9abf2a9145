// The replay window end to end against real PostgreSQL: a change committed while the auth backend is still
// answering arrives right after initial_data (gapless open), and with router.resume_window a reconnect carrying
// Last-Event-ID resumes — on this instance or another one on the same database — or falls back to a normal open.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { metricValue } from "../support/Scrape.ts"
import { openSse } from "../support/SseClient.ts"
import { startWalera, type WaleraProcess } from "../support/Walera.ts"
import { ALICE, type Env, setup } from "./fixtures.ts"

describe("gapless open", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup()
    await env.db.sql("INSERT INTO orders (id) VALUES (1)")
    // Decoded before the handshake begins, so not replayed to it.
    await env.settle()
  })
  afterAll(async () => {
    await env?.close()
  })

  it("a change committed while the backend is answering is delivered right after initial_data", async () => {
    let commit: Promise<unknown> | undefined
    env.auth.answers.set("slow-alice", () => {
      // The backend has read the row for initial_data; the change commits before it answers.
      commit = env.db.sql("UPDATE orders SET status = 'during-auth' WHERE id = 1")
      return { delayMs: 700, answer: { status: 200, body: { ...ALICE, initial_data: { status: "new" } } } }
    })
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("slow-alice"))
    await commit
    expect(s.status).toBe(200)
    await s.waitFor((c) => c.txs().length === 1, 10_000, "the change committed during the auth call")
    const frames = s.frames().filter((f) => !f.comment)
    expect(frames[0]?.retry).toBe("15000")
    expect(frames[1]).toMatchObject({ event: "initial_data", data: '{"status":"new"}' })
    expect(frames[2]?.event).toBe("tx")
    expect(s.txs()[0]!.changes[0]).toMatchObject({ op: "update", pk: "1", data: { status: "during-auth" } })
    // Exactly once: the next change is the next frame, nothing repeated.
    await env.db.sql("UPDATE orders SET status = 'after' WHERE id = 1")
    await s.waitFor((c) => c.txs().length === 2, 10_000, "the next change")
    expect(s.txs().map((t) => t.changes[0]!["data"])).toMatchObject([{ status: "during-auth" }, { status: "after" }])
    s.close()
  })
})

describe("resume (router.resume_window = 60s)", () => {
  let env: Env
  let other: WaleraProcess
  beforeAll(async () => {
    env = await setup({ env: { WALERA_ROUTER_RESUME_WINDOW: "60s" } })
    other = await startWalera({
      WALERA_DATABASE_URL: env.db.url,
      WALERA_AUTH_BACKEND_URL: env.auth.url,
      WALERA_WAL_PUBLICATION_NAME: "walera_pub",
      WALERA_WAL_SLOT_NAME_PREFIX: "second",
      WALERA_ROUTER_RESUME_WINDOW: "60s",
    })
    await env.db.sql("INSERT INTO orders (id) VALUES (1), (2)")
    await env.settle()
    env.auth.answers.set("alice-initial", { status: 200, body: { ...ALICE, initial_data: { rows: 1 } } })
  })
  afterAll(async () => {
    await other?.stop("SIGKILL")
    await env?.close()
  })

  /** Receives one change on instance A, then commits two more while no stream is open. */
  const missTwo = async (pk: number) => {
    const first = await openSse(env.walera.url, `/sse/v1/orders/${pk}`, env.bearer("alice-token"))
    await env.db.sql("UPDATE orders SET status = 'seen' WHERE id = $1", [pk])
    await first.waitFor((c) => c.txs().length === 1, 10_000, "the first change")
    const lastId = first.frames().find((f) => f.event === "tx")!.id!
    first.close()
    await env.db.sql("UPDATE orders SET status = 'missed-1' WHERE id = $1", [pk])
    await env.db.sql("UPDATE orders SET status = 'missed-2', total_cents = 7 WHERE id = $1", [pk])
    await env.settle()
    return lastId
  }

  it("hit: a resumed frame instead of initial_data, then what the stream missed, then live", async () => {
    const lastId = await missTwo(1)
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", {
      ...env.bearer("alice-initial"),
      "last-event-id": lastId,
    })
    await s.waitFor((c) => c.txs().length === 2, 10_000, "the two missed changes")
    const frames = s.frames().filter((f) => !f.comment)
    expect(frames[1]).toMatchObject({ event: "resumed", data: JSON.stringify({ last_event_id: lastId }) })
    expect(frames.some((f) => f.event === "initial_data")).toBe(false)
    expect(s.txs().map((t) => t.changes[0]!["data"])).toMatchObject([{ status: "missed-1" }, { status: "missed-2" }])
    await env.db.sql("UPDATE orders SET status = 'live' WHERE id = 1")
    await s.waitFor((c) => c.txs().length === 3, 10_000, "live after the replay")
    s.close()
    expect(metricValue((await env.walera.get("/metrics")).body, 'walera_resume_total{result="hit"}')).toBe(1)
  })

  it("through ?last_event_id= too, and on another instance of the same database", async () => {
    const lastId = await missTwo(2)
    const s = await openSse(other.url, `/sse/v1/orders/2?last_event_id=${lastId}`, env.bearer("alice-token"))
    await s.waitFor((c) => c.txs().length === 2, 10_000, "the missed changes, from the other instance")
    expect(s.events("resumed")).toHaveLength(1)
    expect(s.txs().map((t) => t.changes[0]!["data"])).toMatchObject([{ status: "missed-1" }, { status: "missed-2" }])
    s.close()
  })

  it("a narrower grant on reconnect applies to the replay", async () => {
    const lastId = await missTwo(1)
    env.auth.answers.set("alice-narrow", {
      status: 200,
      body: { ...ALICE, tables: { orders: ["id", "status"], line_items: ["id"] } },
    })
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", {
      ...env.bearer("alice-narrow"),
      "last-event-id": lastId,
    })
    await s.waitFor((c) => c.txs().length === 2, 10_000, "the replay")
    expect(s.raw()).not.toContain("total_cents")
    expect(s.txs()[1]!.changes[0]!["data"]).toEqual({ id: "1", status: "missed-2" })
    s.close()
  })

  it("miss: an id not in the window is a normal open — initial_data carrying the newest id, no resumed frame", async () => {
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", {
      ...env.bearer("alice-initial"),
      "last-event-id": "7",
    })
    await s.waitFor((c) => c.events("initial_data").length === 1, 10_000, "initial_data")
    expect(s.events("resumed")).toEqual([])
    expect(s.events("initial_data")[0]!.id).toMatch(/^\d+$/)
    s.close()
    const metrics = (await env.walera.get("/metrics")).body
    expect(metricValue(metrics, 'walera_resume_total{result="miss"}')).toBeGreaterThanOrEqual(1)
  })
})

describe("resume over the subscriber's byte budget", () => {
  let env: Env
  beforeAll(async () => {
    env = await setup({
      env: { WALERA_ROUTER_RESUME_WINDOW: "60s", WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER: "4096" },
    })
    await env.db.sql("INSERT INTO orders (id) VALUES (1)")
    await env.settle()
  })
  afterAll(async () => {
    await env?.close()
  })

  it("is a normal open, so the client resyncs instead of receiving more than it may buffer", async () => {
    const first = await openSse(env.walera.url, "/sse/v1/orders/1", env.bearer("alice-token"))
    await env.db.sql("UPDATE orders SET status = 'seen' WHERE id = 1")
    await first.waitFor((c) => c.txs().length === 1, 10_000, "the first change")
    const lastId = first.frames().find((f) => f.event === "tx")!.id!
    first.close()
    for (let i = 0; i < 10; i++) await env.db.sql("UPDATE orders SET status = $1 WHERE id = 1", ["x".repeat(900) + i])
    await env.settle()
    const s = await openSse(env.walera.url, "/sse/v1/orders/1", {
      ...env.bearer("alice-token"),
      "last-event-id": lastId,
    })
    expect(s.status).toBe(200)
    await new Promise((r) => setTimeout(r, 300))
    expect(s.events("resumed")).toEqual([])
    expect(
      s
        .txs()
        .map((t) => [
          t.tx_id,
          String(t.changes[0]!["data"] && (t.changes[0]!["data"] as Record<string, string>)["status"]).slice(-3),
        ]),
    ).toEqual([])
    s.close()
    expect(metricValue((await env.walera.get("/metrics")).body, 'walera_resume_total{result="over_budget"}')).toBe(1)
  })
})
