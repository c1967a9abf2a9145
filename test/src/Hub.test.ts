// The fan-out's per-subscriber policies with in-memory sinks: heartbeats spread over the sweep's slices, the
// unsent-bytes budget, a connection that accepts nothing for write_timeout, oversized transactions and frames,
// replication loss, shutdown with a reconnect delay per subscriber, and replays from the window.
import { describe, expect, it } from "vitest"
import type { SubscriberSink } from "../../domain/ports/Gateway.ts"
import type { PgMessage } from "../../domain/PgMessage.ts"
import { type AssemblyEvent, assembleAll, type Tx } from "../../domain/TxAssembler.ts"
import { makeLog } from "../../adapters/telemetry/Log.ts"
import { AdmissionState } from "../../src/Admission.ts"
import { Hub, type HubConfig, SWEEP_SLICES } from "../../src/Hub.ts"
import { makeMemoryObservability } from "../support/MemoryObservability.ts"

const config: HubConfig = {
  heartbeatIntervalMs: 1000,
  writeTimeoutMs: 5000,
  maxBufferedBytes: 1000,
  maxPayloadBytes: 4000,
  replay: { retentionMs: 3000, maxBytes: 1 << 20, keep: true },
}

const sinkWith = (connection?: object) => {
  let text = ""
  let pending = 0
  let stalled = false
  let closed: string | undefined
  const sink: SubscriberSink = {
    cork: () => {},
    uncork: () => {},
    write: (b) => {
      text += Buffer.from(b).toString()
      // A connection that accepts nothing keeps every new byte unsent too.
      if (stalled) pending += b.length
    },
    pending: () => pending,
    connection,
    close: (last) => {
      closed = last === undefined ? "" : Buffer.from(last).toString()
    },
  }
  return {
    sink,
    text: () => text,
    closed: () => closed,
    setPending: (n: number) => {
      pending = n
    },
    stall: (n: number) => {
      stalled = true
      pending = n
    },
  }
}

const make = (overrides: Partial<HubConfig> = {}) => {
  let now = 1_000_000
  const obs = makeMemoryObservability()
  const admission = new AdmissionState({ globalConcurrent: 100, perUserConcurrent: 100 })
  const leave = (userId: string) => {
    admission.releaseUser(userId)
    admission.releaseGlobal()
  }
  const hub = new Hub({ ...config, ...overrides }, obs, makeLog({ level: "error", pretty: false }), leave, () => now)
  /** One full sweep cycle, tick by tick. */
  const cycle = () => {
    for (let i = 0; i < SWEEP_SLICES; i++) hub.sweepTick(now)
  }
  return {
    hub,
    obs,
    admission,
    now: () => now,
    advance: (ms: number) => {
      now += ms
      cycle()
    },
    open: (pk: string | null, tables: Record<string, string[]> = { orders: ["status"] }, connection?: object) => {
      const s = sinkWith(connection)
      admission.tryGlobal()
      admission.tryUser("u")
      const subscriber = hub.attach({
        table: "orders",
        pk,
        channel: `orders:${pk ?? "all"}`,
        userId: "u",
        requestId: "r",
        tables,
        sink: s.sink,
        prefaceBytes: 0,
      })
      return { ...s, subscriber }
    },
  }
}

const ORDERS_REL: PgMessage = {
  _tag: "relation",
  relationId: 1,
  schema: "public",
  name: "orders",
  replicaIdentity: "default",
  columns: [
    { name: "id", typeOid: 25, isKey: true },
    { name: "status", typeOid: 25, isKey: false },
  ],
}

let nextXid = 100
const events = (status: string, rows: Array<[string, number]> = [["1", 1]], max = 100): AssemblyEvent[] => {
  const msgs: PgMessage[] = [
    ORDERS_REL,
    { _tag: "begin", finalLsn: 1n, commitTime: 0n, xid: nextXid++ },
    ...rows.flatMap(([pk, n]) =>
      Array.from(
        { length: n },
        (): PgMessage => ({ _tag: "update", relationId: 1, keyTuple: null, oldTuple: null, newTuple: [pk, status] }),
      ),
    ),
    { _tag: "commit", commitLsn: 1n, endLsn: 2n, commitTime: 0n },
  ]
  return assembleAll({ maxChangesPerTx: max }, msgs)
}
const txOf = (status: string, pk = "1"): Tx => {
  const e = events(status, [[pk, 1]]).find((x) => x._tag === "Tx")
  if (e?._tag !== "Tx") throw new Error("no tx")
  return e.tx
}
const route = (hub: Hub, list: ReadonlyArray<AssemblyEvent>) => {
  for (const e of list) {
    if (e._tag === "Tx") hub.dispatch(e.tx)
    if (e._tag === "Spill") hub.spill(e.xid, e.changes)
    if (e._tag === "Oversized")
      hub.oversizedCommit(e.xid, e.tables, e.changeCount, e.commitTime, "router.max_changes_per_tx")
  }
}

describe("heartbeat", () => {
  it("writes ':' only to subscribers idle for the interval", () => {
    const h = make()
    const idle = h.open("1")
    const busy = h.open("2")
    h.advance(600)
    h.hub.dispatch(txOf("x", "2"))
    h.advance(500)
    expect(idle.text()).toBe(":\n\n")
    expect(busy.text()).not.toContain(":\n\n")
  })

  it("spreads the heartbeats of subscribers opened together over the sweep's ticks, as finely as the load needs", () => {
    const h = make({ subscribersPerPass: 5 })
    const subs = Array.from({ length: SWEEP_SLICES * 5 }, (_, i) => h.open(String(i)))
    const beatsPerTick: number[] = []
    let seen = 0
    for (let i = 0; i < SWEEP_SLICES; i++) {
      h.hub.sweepTick(h.now() + 2000)
      const total = subs.filter((s) => s.text() !== "").length
      beatsPerTick.push(total - seen)
      seen = total
    }
    expect(seen).toBe(subs.length)
    // No tick writes more than its share: a burst of every heartbeat at once would delay transactions behind it.
    expect(Math.max(...beatsPerTick)).toBe(5)
    // A small instance (here under 100 per pass) visits everyone in one pass per cycle.
    const small = make({ subscribersPerPass: 100 })
    const few = Array.from({ length: 40 }, (_, i) => small.open(String(i)))
    small.hub.sweepTick(small.now() + 2000)
    expect(few.filter((s) => s.text() !== "")).toHaveLength(40)
  })

  it("sends the heartbeats of subscribers sharing a connection (HTTP/2) in the same tick, one connection per slice", () => {
    const h = make({ subscribersPerPass: 5 })
    const sessions = Array.from({ length: 4 }, () => ({}))
    // Opened interleaved, as a client with several sessions opens its streams; 100 subscribers: one slice per tick.
    const subs = Array.from({ length: 100 }, (_, i) => ({
      session: i % 4,
      ...h.open(String(i), undefined, sessions[i % 4]),
    }))
    const beatAt = new Map<(typeof subs)[number], number>()
    for (let tick = 0; tick < SWEEP_SLICES; tick++) {
      h.hub.sweepTick(h.now() + 2000)
      for (const s of subs) if (s.text() !== "" && !beatAt.has(s)) beatAt.set(s, tick)
    }
    expect(subs.every((s) => s.text() === ":\n\n")).toBe(true)
    // Each session's 25 subscribers got their heartbeat in one tick, and the four sessions in four different ticks.
    const ticksOf = sessions.map((_, i) => new Set(subs.filter((s) => s.session === i).map((s) => beatAt.get(s))))
    expect(ticksOf.map((t) => t.size)).toEqual([1, 1, 1, 1])
    expect(new Set(ticksOf.map((t) => [...t][0])).size).toBe(4)
  })
})

describe("batching", () => {
  it("events dispatched in one tick leave in one uncorked write per connection", async () => {
    const h = make()
    const calls: string[] = []
    const s = h.open(null)
    const sink = s.subscriber.sink as { cork: () => void; uncork: () => void }
    sink.cork = () => void calls.push("cork")
    sink.uncork = () => void calls.push("uncork")
    for (const status of ["a", "b", "c"]) h.hub.dispatch(txOf(status))
    expect(calls).toEqual(["cork"])
    await new Promise((r) => process.nextTick(r))
    expect(calls).toEqual(["cork", "uncork"])
    expect(s.text().match(/event: tx/g)?.length).toBe(3)
  })
})

describe("slow consumers", () => {
  it("the sweep asks a connection for its unsent bytes only when something was written since it last had none", () => {
    const h = make()
    const quiet = h.open("1")
    const written = h.open("2")
    const asked = { quiet: 0, written: 0 }
    const count = (sink: SubscriberSink, key: keyof typeof asked) => {
      const pending = sink.pending
      ;(sink as { pending: () => number }).pending = () => {
        asked[key]++
        return pending()
      }
    }
    count(quiet.subscriber.sink, "quiet")
    count(written.subscriber.sink, "written")
    h.advance(100)
    h.advance(100)
    expect(asked, "two sweep cycles over connections nothing was written to").toEqual({ quiet: 0, written: 0 })
    h.hub.dispatch(txOf("a", "2"))
    h.advance(100)
    expect(asked.written, "written to since: looked at").toBe(1)
    h.advance(100)
    expect(asked.written, "it had nothing pending then, and nothing was written since").toBe(1)
    expect(asked.quiet, "never written to: never looked at").toBe(0)
  })

  it("unsent bytes over the budget once the tick's writes are out end the subscriber with slow_consumer", async () => {
    const h = make()
    const s = h.open("1")
    s.setPending(1001)
    h.hub.dispatch(txOf("a"))
    expect(s.closed()).toBe(undefined)
    await new Promise((r) => process.nextTick(r))
    expect(s.closed()).toBe('event: error\ndata: {"reason":"slow_consumer"}\n\n')
    expect(s.subscriber.open).toBe(false)
    expect(h.obs.count("txDropped:slow_consumer")).toBe(1)
  })

  it("a connection that accepts nothing for write_timeout is dropped; one that drains slowly is not", () => {
    const h = make()
    const stalled = h.open("1")
    const slowButMoving = h.open("1")
    h.hub.dispatch(txOf("a"))
    stalled.stall(500)
    slowButMoving.setPending(500)
    h.advance(1000)
    for (let t = 0; t < 5; t++) {
      slowButMoving.setPending(400 - t * 50)
      h.advance(1000)
    }
    expect(stalled.closed()).toBe('event: error\ndata: {"reason":"slow_consumer"}\n\n')
    expect(slowButMoving.closed()).toBe(undefined)
  })
})

describe("size limits", () => {
  it("a frame over http.max_payload_bytes ends that audience's subscribers with tx_too_large", () => {
    const h = make()
    const s = h.open("1")
    h.hub.dispatch(txOf("y".repeat(5000)))
    expect(s.closed()).toBe('event: error\ndata: {"reason":"tx_too_large"}\n\n')
  })

  it("an oversized transaction touching one root ends its subscribers; a multi-root one is dropped instead", () => {
    const h = make()
    const one = h.open("1")
    const other = h.open("9")
    route(h.hub, events("z", [["1", 5]], 3))
    expect(one.closed()).toBe('event: error\ndata: {"reason":"tx_too_large"}\n\n')
    expect(other.closed()).toBe(undefined)
    const all = h.open(null)
    route(
      h.hub,
      events(
        "z",
        [
          ["2", 3],
          ["3", 3],
        ],
        3,
      ),
    )
    expect(all.closed()).toBe(undefined)
    expect(all.text()).toBe("")
    expect(h.obs.count("txDropped:multi_root")).toBe(1)
  })
})

describe("oversized transactions and late subscribers", () => {
  it("a subscriber that attached after its row was spilled still gets tx_too_large at the commit", () => {
    const h = make()
    const list = events("z", [["1", 5]], 3)
    const commit = list.filter((e) => e._tag === "Oversized")
    route(
      h.hub,
      list.filter((e) => e._tag !== "Oversized"),
    )
    const late = h.open("1")
    route(h.hub, commit)
    expect(late.closed()).toBe('event: error\ndata: {"reason":"tx_too_large"}\n\n')
  })
})

describe("lifecycle", () => {
  it("replication loss sends wal_disconnected to every subscriber, empties the window and frees every slot", () => {
    const h = make()
    const a = h.open("1")
    const b = h.open(null)
    h.hub.dispatch(txOf("a"))
    expect(h.hub.window.size).toBe(1)
    h.hub.replicationLost()
    expect(a.closed()).toBe('event: error\ndata: {"reason":"wal_disconnected"}\n\n')
    expect(b.closed()).toBe('event: error\ndata: {"reason":"wal_disconnected"}\n\n')
    expect(h.hub.window.size).toBe(0)
    expect(h.hub.size).toBe(0)
    expect(h.admission.inUse).toBe(0)
  })

  it("shutdown sends each subscriber its own retry: delay in [1 s, spread] right before the shutdown frame", () => {
    const h = make()
    const subs = Array.from({ length: 50 }, (_, i) => h.open(String(i)))
    let r = 0
    h.hub.shutdown(30_000, () => (r = (r + 0.37) % 1))
    const delays = subs.map((s) => {
      const m = /^retry: (\d+)\n\nevent: shutdown\ndata: \{"reason":"service_restart"\}\n\n$/.exec(s.closed() ?? "")
      expect(m, s.closed()).not.toBeNull()
      return Number(m![1])
    })
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(1000)
      expect(d).toBeLessThanOrEqual(30_000)
    }
    expect(new Set(delays).size).toBeGreaterThan(10)
    expect(h.hub.size).toBe(0)
    expect(h.admission.inUse).toBe(0)
  })
})

describe("replay", () => {
  it("without resume, holds transactions only while a handshake needs them", () => {
    const h = make({ replay: { retentionMs: 3000, maxBytes: 1 << 20, keep: false } })
    h.hub.dispatch(txOf("before", "1"))
    expect(h.hub.window.size).toBe(0)
    const held = h.hub.holdWindow()
    h.hub.dispatch(txOf("during", "1"))
    h.hub.dispatch(txOf("other", "2"))
    const r = h.hub.replay("orders", "1", { orders: ["status"] }, held.position)
    expect(r._tag === "Frames" && r.count).toBe(1)
    expect(r._tag === "Frames" && r.frames).toContain('"status":"during"')
    held.release()
    held.release()
    expect(h.hub.window.size).toBe(0)
    h.hub.dispatch(txOf("after", "1"))
    expect(h.hub.window.size).toBe(0)
  })

  it("replays, through the subscriber's grant and in commit order, what touched it since a position", () => {
    const h = make()
    const position = h.hub.window.position()
    h.hub.dispatch(txOf("a", "1"))
    h.hub.dispatch(txOf("b", "2"))
    h.hub.dispatch(txOf("c", "1"))
    const r = h.hub.replay("orders", "1", { orders: ["status"] }, position)
    expect(r._tag).toBe("Frames")
    if (r._tag !== "Frames") return
    expect(r.count).toBe(2)
    expect([...r.frames.matchAll(/"status":"(\w)"/g)].map((m) => m[1])).toEqual(["a", "c"])
    const narrow = h.hub.replay("orders", "1", { orders: [] }, position)
    expect(narrow._tag === "Frames" && narrow.count).toBe(0)
    const all = h.hub.replay("orders", null, { orders: ["status"] }, position)
    expect(all._tag === "Frames" && all.count).toBe(3)
  })

  it("is unavailable when the window no longer reaches back, or passes a transaction too large to hold", () => {
    const h = make({ replay: { retentionMs: 3000, maxBytes: 600, keep: true } })
    const position = h.hub.window.position()
    for (const s of ["a", "b", "c", "d", "e"]) h.hub.dispatch(txOf(s))
    expect(h.hub.replay("orders", "1", { orders: ["status"] }, position)._tag).toBe("Unavailable")
    const h2 = make()
    const p2 = h2.hub.window.position()
    route(h2.hub, events("z", [["1", 5]], 3))
    expect(h2.hub.replay("orders", "1", { orders: ["status"] }, p2)._tag).toBe("Unavailable")
    expect(h2.hub.replay("orders", "2", { orders: ["status"] }, p2)._tag).toBe("Frames")
  })
})
