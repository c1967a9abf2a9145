// The fan-out's per-stream policies with in-memory sinks: heartbeats, the unsent-bytes
// budget, a socket that accepts nothing for write_timeout, oversized transactions and frames.
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Metrics } from "../../adapters/metrics/Metrics.ts"
import { makeLog } from "../../adapters/telemetry/Log.ts"
import type { StreamSink } from "../../domain/ports/StreamGateway.ts"
import { type AssemblyEvent, feed, initialAssembly, type Tx } from "../../domain/TxAssembler.ts"
import { Hub, type HubConfig } from "../../src/Hub.ts"

const metrics = Effect.runSync(
  Effect.gen(function* () {
    return yield* Metrics
  }).pipe(Effect.provide(Metrics.layer)),
)

const config: HubConfig = {
  heartbeatIntervalMs: 1000,
  writeTimeoutMs: 5000,
  maxBufferedBytes: 1000,
  maxPayloadBytes: 4000,
}

const sinkWith = () => {
  let text = ""
  let pending = 0
  let stalled = false
  let closed: string | undefined
  const sink: StreamSink = {
    cork: () => {},
    uncork: () => {},
    write: (b) => {
      text += Buffer.from(b).toString()
      // A socket that accepts nothing keeps every new byte unsent too.
      if (stalled) pending += b.length
    },
    pending: () => pending,
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

const make = () => {
  let now = 1_000_000
  const hub = new Hub(config, metrics, makeLog({ level: "error", pretty: false }), () => now)
  hub.walStarted()
  return {
    hub,
    advance: (ms: number) => {
      now += ms
      hub.sweep(now)
    },
    open: (pk: string | null, tables: Record<string, string[]> = { orders: ["status"] }) => {
      const s = sinkWith()
      hub.reserveUser("u", 100)
      const stream = hub.attach({
        table: "orders",
        pk,
        channel: `orders:${pk ?? "all"}`,
        userId: "u",
        requestId: "r",
        credentials: { authorization: "Bearer t", cookie: undefined, headers: [] },
        tables,
        sink: s.sink,
        refreshAt: Number.POSITIVE_INFINITY,
        expiresAt: Number.POSITIVE_INFINITY,
      })
      return { ...s, stream }
    },
  }
}

const events = (status: string, rows: Array<[string, number]> = [["1", 1]], max = 100): AssemblyEvent[] => {
  const msgs = [
    {
      tag: "relation" as const,
      relationId: 1,
      schema: "public",
      name: "orders",
      replicaIdentity: "default" as const,
      columns: [
        { name: "id", typeOid: 25, isKey: true },
        { name: "status", typeOid: 25, isKey: false },
      ],
    },
    { tag: "begin" as const, finalLsn: 1n, commitTime: 0n, xid: 7 },
    ...rows.flatMap(([pk, n]) =>
      Array.from({ length: n }, () => ({
        tag: "update" as const,
        relationId: 1,
        keyTuple: null,
        oldTuple: null,
        newTuple: [pk, status],
      })),
    ),
    { tag: "commit" as const, commitLsn: 1n, endLsn: 2n, commitTime: 0n },
  ]
  return feed(initialAssembly(max), msgs).events
}
const txOf = (status: string): Tx => {
  const e = events(status).find((x) => x._tag === "Tx")
  if (e?._tag !== "Tx") throw new Error("no tx")
  return e.tx
}

describe("heartbeat", () => {
  it("writes ':' only to streams idle for the interval", () => {
    const h = make()
    const idle = h.open("1")
    const busy = h.open("2")
    h.advance(600)
    h.hub.dispatch({
      ...txOf("x"),
      changes: txOf("x").changes.map((c) => ({ ...c, pk: "2" })),
      tables: new Map([["orders", { firstPk: "2", multi: false }]]),
    })
    h.advance(500)
    expect(idle.text()).toBe(":\n\n")
    expect(busy.text()).not.toContain(":\n\n")
  })
})

describe("batching", () => {
  it("events dispatched in one tick leave in one uncorked write per socket", async () => {
    const h = make()
    const calls: string[] = []
    const s = h.open(null)
    const sink = s.stream.sink as { cork: () => void; uncork: () => void }
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
  it("unsent bytes over the budget once the tick's writes are out end the stream with slow_consumer", async () => {
    const h = make()
    const s = h.open("1")
    s.setPending(1001)
    h.hub.dispatch(txOf("a"))
    expect(s.closed()).toBe(undefined)
    await new Promise((r) => process.nextTick(r))
    expect(s.closed()).toBe('event: error\ndata: {"reason":"slow_consumer"}\n\n')
    expect(s.stream.open).toBe(false)
  })

  it("a socket that accepts nothing for write_timeout is disconnected; one that drains slowly is not", () => {
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
  it("a frame over http.max_payload_bytes ends that audience's streams with tx_too_large", () => {
    const h = make()
    const s = h.open("1")
    h.hub.dispatch(txOf("y".repeat(5000)))
    expect(s.closed()).toBe('event: error\ndata: {"reason":"tx_too_large"}\n\n')
  })

  it("an oversized transaction touching one root ends its streams; a multi-root one is dropped instead", () => {
    const h = make()
    const one = h.open("1")
    const other = h.open("9")
    for (const e of events("z", [["1", 5]], 3)) {
      if (e._tag === "Spill") h.hub.spill(e.xid, e.changes)
      if (e._tag === "Oversized") h.hub.oversizedCommit(e.xid, e.tables, e.changeCount)
    }
    expect(one.closed()).toBe('event: error\ndata: {"reason":"tx_too_large"}\n\n')
    expect(other.closed()).toBe(undefined)
    const all = h.open(null)
    for (const e of events(
      "z",
      [
        ["2", 3],
        ["3", 3],
      ],
      3,
    )) {
      if (e._tag === "Spill") h.hub.spill(e.xid, e.changes)
      if (e._tag === "Oversized") h.hub.oversizedCommit(e.xid, e.tables, e.changeCount)
    }
    expect(all.closed()).toBe(undefined)
    expect(all.text()).toBe("")
  })
})

describe("lifecycle", () => {
  it("walLost sends wal_disconnected to every stream; shutdown sends the shutdown frame", () => {
    const h = make()
    const a = h.open("1")
    const b = h.open(null)
    h.hub.walLost()
    expect(a.closed()).toBe('event: error\ndata: {"reason":"wal_disconnected"}\n\n')
    expect(b.closed()).toBe('event: error\ndata: {"reason":"wal_disconnected"}\n\n')
    expect(h.hub.walStreaming).toBe(false)
    h.hub.walStarted()
    const c = h.open("1")
    h.hub.shutdown()
    expect(c.closed()).toBe('event: shutdown\ndata: {"reason":"service_restart"}\n\n')
    expect(h.hub.size).toBe(0)
    expect(h.hub.reserveUser("u", 1)).toBe(true)
  })
})
