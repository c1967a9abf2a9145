// The soak's history checker must be able to fail: hand-made histories with a missing, duplicated,
// reordered or over-granted transaction are caught, and the gaps the contract allows are not.
import { describe, expect, it } from "vitest"
import { checkHistory, DEFAULT_ORACLE_CONFIG, type OracleConfig } from "../../testbench/soak/oracle.ts"
import { SCHEMA } from "../../testbench/soak/schema.ts"
import type {
  AuthCall,
  FrameRec,
  Grant,
  HChange,
  HTx,
  Incarnation,
  Json,
  StreamRec,
} from "../../testbench/soak/types.ts"

const NARROW: Grant = { userId: "bob", tables: { orders: ["status"], line_items: ["qty"] }, roots: ["orders"] }
const WIDE: Grant = {
  userId: "bob",
  tables: { orders: ["status", "note"], line_items: ["qty"] },
  roots: ["orders"],
}

const order = (pk: number, status: string, note = "n"): Record<string, Json> => ({
  id: String(pk),
  owner_id: 1,
  status,
  total_cents: 10,
  note,
  secret: "s",
  paid: false,
  version: 1,
  updated_at: "2026-01-01T00:00:00Z",
})

/** Transaction n commits during [n*1000, n*1000+10] ms. */
const tx = (seq: number, changes: HChange[], extra: Partial<HTx> = {}): HTx => ({
  seq,
  xid: 1000 + seq,
  commitStart: seq * 1000,
  commitEnd: seq * 1000 + 10,
  kind: "test",
  changes,
  oversize: null,
  ...extra,
})
const upd = (pk: number, status: string): HChange => ({
  op: "update",
  table: "orders",
  pk: String(pk),
  row: order(pk, status),
})

/** The frame Walera would send for t under grant g (columns in table order, PK always). */
const frame = (t: HTx, g: Grant, at: number, cols?: string[]): FrameRec => {
  const changes = t.changes
    .filter((c) => g.tables[c.table] !== undefined)
    .map((c) => {
      const spec = SCHEMA.get(c.table)!
      if (c.row === null) return { op: c.op, table: c.table, pk: c.pk }
      const allowed = cols ?? g.tables[c.table]!
      const data: Record<string, Json> = {}
      for (const col of spec.columns)
        if (col.name === spec.pk || allowed.includes(col.name)) data[col.name] = c.row[col.name]!
      return { op: c.op, table: c.table, pk: c.pk, data }
    })
  const commitTs = new Date(t.commitStart + 5).toISOString()
  return { t: at, event: "tx", id: String(t.xid), data: JSON.stringify({ tx_id: t.xid, commit_ts: commitTs, changes }) }
}
const retry = (at: number): FrameRec => ({ t: at, event: "retry", retry: 15000 })
const terminal = (at: number, event: string, reason?: string): FrameRec => ({
  t: at,
  event,
  data: JSON.stringify(reason === undefined ? { reason: "service_restart" } : { reason }),
})

const stream = (id: string, frames: FrameRec[], extra: Partial<StreamRec> = {}): StreamRec => ({
  id,
  client: 1,
  behaviour: "steady",
  path: "/sse/v1/orders/1",
  table: "orders",
  pk: "1",
  user: "bob",
  token: `tok-${id}`,
  instance: "A1",
  lastEventIdSent: null,
  tReq: 100,
  tSent: 101,
  tHdr: 150,
  status: 200,
  contentType: "text/event-stream",
  retryAfter: null,
  body: null,
  abortedByClient: false,
  frames: [retry(150), ...frames],
  heartbeats: 0,
  maxPauseMs: 0,
  stallFrom: null,
  end: { t: 100_000, by: "client", final: true },
  ...extra,
})

const openCall = (s: StreamRec, g: Grant): AuthCall => ({
  tRecv: 120,
  tSent: 125,
  token: s.token,
  requestId: s.id,
  channel: "orders:1",
  status: 200,
  outcome: "grant",
  grant: g,
})

const incarnation = (scrapes: Array<{ t: number; value: number }> = []): Incarnation => ({
  id: "A1",
  slotPrefix: "soak_a",
  startedAt: 0,
  readyAt: 0,
  stopSignalAt: null,
  exitedAt: null,
  exitCode: null,
  env: {},
  multiRootScrapes: scrapes,
})

const run = (
  txs: HTx[],
  streams: StreamRec[],
  calls: AuthCall[] = streams.map((s) => openCall(s, NARROW)),
  config: Partial<OracleConfig> = {},
  incarnations: Incarnation[] = [incarnation()],
) => checkHistory({ txs, streams, authCalls: calls, incarnations }, { ...DEFAULT_ORACLE_CONFIG, ...config })

const rules = (r: ReturnType<typeof run>) => r.violations.map((v) => v.rule)

const t1 = tx(1, [upd(1, "a")])
const t2 = tx(2, [upd(1, "b")])
const t3 = tx(3, [upd(1, "c")])
const other = tx(4, [upd(2, "x")])

describe("the soak oracle", () => {
  it("accepts a history where every touching transaction arrived once, in order, with the granted columns", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(t2, NARROW, 2100), frame(t3, NARROW, 3100)])
    const r = run([t1, t2, t3, other], [s])
    expect(r.violations).toEqual([])
    expect(r.stats.framesChecked).toBe(3)
    expect(r.stats.requiredChecked).toBe(3)
  })

  it("finds a missing transaction between two delivered ones", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(t3, NARROW, 3100)])
    const r = run([t1, t2, t3], [s])
    expect(rules(r)).toEqual(["missing"])
    expect(r.violations[0]!.xid).toBe(t2.xid)
    expect(r.violations[0]!.bytes).toContain('"status":"b"')
  })

  it("finds a duplicate and prints its bytes", () => {
    const s = stream("s1", [
      frame(t1, NARROW, 1100),
      frame(t2, NARROW, 2100),
      frame(t2, NARROW, 2200),
      frame(t3, NARROW, 3100),
    ])
    const r = run([t1, t2, t3], [s])
    expect(rules(r)).toEqual(["duplicate"])
    expect(r.violations[0]!.bytes).toContain(`"tx_id":${t2.xid}`)
  })

  it("finds transactions out of commit order", () => {
    const s = stream("s1", [frame(t2, NARROW, 2100), frame(t1, NARROW, 2150), frame(t3, NARROW, 3100)])
    expect(rules(run([t1, t2, t3], [s]))).toContain("out_of_order")
  })

  it("finds a column outside the grant (zero tolerance)", () => {
    const s = stream("s1", [
      frame(t1, NARROW, 1100),
      frame(t2, NARROW, 2100, ["status", "secret"]),
      frame(t3, NARROW, 3100),
    ])
    const r = run([t1, t2, t3], [s])
    expect(rules(r)).toEqual(["column_leak"])
    expect(r.violations[0]!.detail).toContain("orders.secret")
  })

  it("finds a change with a value that differs from what was committed", () => {
    const bad = frame(t2, NARROW, 2100)
    const s = stream("s1", [
      frame(t1, NARROW, 1100),
      { ...bad, data: bad.data!.replace('"b"', '"zz"') },
      frame(t3, NARROW, 3100),
    ])
    expect(rules(run([t1, t2, t3], [s]))).toEqual(["content_mismatch"])
  })

  it("allows a gap right before a terminal error frame", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), terminal(3500, "error", "wal_disconnected")], {
      end: { t: 3501, by: "server", final: false },
    })
    const r = run([t1, t2, t3], [s])
    expect(r.violations).toEqual([])
    expect(r.stats.tailGapsAllowed).toBe(2)
  })

  it("refuses a gap before a terminal frame that started long before it (a silent gap, signalled late)", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), terminal(60_000, "error", "wal_disconnected")], {
      end: { t: 60_001, by: "server", final: false },
    })
    expect(rules(run([t1, t2, t3], [s]))).toEqual(["stale_gap", "stale_gap"])
  })

  it("refuses a tail gap behind a terminal frame when another stream of the process had the transaction well before", () => {
    const witness = stream("w", [frame(t1, NARROW, 1100), frame(t2, NARROW, 2100), frame(t3, NARROW, 3100)])
    const late = stream("s1", [frame(t1, NARROW, 1100), terminal(5500, "error", "wal_disconnected")], {
      end: { t: 5501, by: "server", final: false },
    })
    const r = run([t1, t2, t3], [witness, late])
    expect(rules(r)).toEqual(["stale_gap", "stale_gap"])
    expect(r.violations[0]!.detail).toContain("read by another client of A1")
  })

  it("refuses a gap at the end of a client-closed stream when another stream had the transaction well before", () => {
    const witness = stream("w", [frame(t1, NARROW, 1100), frame(t2, NARROW, 2100), frame(t3, NARROW, 3100)])
    const closed = stream("s1", [frame(t1, NARROW, 1100)], { end: { t: 3500, by: "client", final: false } })
    expect(rules(run([t1, t2, t3], [witness, closed]))).toEqual(["missing"])
  })

  it("refuses a gap at the end of a stream the client closed after the grace period", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100)], { end: { t: 30_000, by: "client", final: false } })
    expect(rules(run([t1, t2, t3], [s]))).toEqual(["missing", "missing"])
  })

  it("refuses a close without a terminal frame while the instance was running, allows it while stopping", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(t2, NARROW, 2100)], {
      end: { t: 2500, by: "server", final: false },
    })
    expect(rules(run([t1, t2, t3], [s]))).toEqual(["unsignalled_close"])
    const stoppingA = { ...incarnation(), stopSignalAt: 2400, exitedAt: 2600 }
    expect(run([t1, t2, t3], [s], undefined, {}, [stoppingA]).violations).toEqual([])
  })

  it("refuses a multi-root transaction delivered to a stream of that table", () => {
    const multi = tx(2, [upd(1, "m"), upd(2, "m")])
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(multi, NARROW, 2100), frame(t3, NARROW, 3100)])
    const r = run([t1, multi, t3], [s])
    expect(rules(r)).toEqual(["unexpected_delivery"])
    expect(r.violations[0]!.detail).toContain("multi-root")
  })

  it("compares multi-root drops with walera_tx_dropped_total{reason=multi_root}", () => {
    const multi = tx(2, [upd(1, "m"), upd(2, "m")])
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(t3, NARROW, 3100)])
    const ok = run([t1, multi, t3], [s], undefined, {}, [incarnation([{ t: 50_000, value: 1 }])])
    expect(ok.violations).toEqual([])
    expect(ok.multiRoot).toEqual([{ instance: "A1", observed: 1, lower: 1, upper: 1 }])
    const bad = run([t1, multi, t3], [s], undefined, {}, [incarnation([{ t: 50_000, value: 0 }])])
    expect(rules(bad)).toEqual(["multi_root_metric"])
  })

  it("applies a narrowed grant to transactions committed after the refresh, and accepts either during it", () => {
    const s = stream("s1", [frame(t1, WIDE, 1100), frame(t2, WIDE, 2100), frame(t3, WIDE, 3100)])
    const refresh: AuthCall = { ...openCall(s, NARROW), requestId: "refresh-1", tRecv: 1900, tSent: 1950 }
    // t2 commits at 2000 ms, within the slack after the narrowing: either grant is fine. t3 at 3000 ms is not.
    const r = run([t1, t2, t3], [s], [openCall(s, WIDE), refresh])
    expect(rules(r)).toEqual(["column_leak"])
    expect(r.violations[0]!.xid).toBe(t3.xid)
  })

  it("refuses a transaction delivered after the grant was revoked", () => {
    const s = stream("s1", [frame(t1, NARROW, 1100), frame(t3, NARROW, 3100)])
    const revoke: AuthCall = {
      ...openCall(s, NARROW),
      requestId: "refresh-1",
      tRecv: 1500,
      tSent: 1510,
      status: 403,
      outcome: "deny",
    }
    const r = run([t1, t2, t3], [s], [openCall(s, NARROW), revoke])
    expect(rules(r)).toContain("delivered_after_revocation")
  })

  it("counts the open gap without failing by default; --strict-open requires what was committed after the auth call", () => {
    const early = tx(0, [upd(1, "early")], { commitStart: 130, commitEnd: 131 })
    const s = stream("s1", [frame(t1, NARROW, 1100)], { tReq: 100, tHdr: 150 })
    const lax = run([early, t1], [s])
    expect(lax.violations).toEqual([])
    expect(lax.stats.openWindowMisses).toBe(1)
    expect(rules(run([early, t1], [s], undefined, { strictOpen: true }))).toEqual(["missing"])
  })

  it("refuses a transaction that was read from the same instance before the request was sent", () => {
    const old = tx(0, [upd(1, "old")], { commitStart: 0, commitEnd: 5 })
    const witness = stream("w", [frame(old, NARROW, 50), frame(t1, NARROW, 1100)], { tReq: 0, tHdr: 1 })
    const late = stream("s1", [frame(old, NARROW, 160), frame(t1, NARROW, 1100)], { tReq: 100, tHdr: 150 })
    expect(rules(run([old, t1], [witness, late]))).toEqual(["replayed_old"])
  })

  it("refuses an oversized transaction delivered, and a stream that carries on past one", () => {
    const big = tx(2, [upd(1, "big")], { oversize: "changes" })
    const delivered = stream("s1", [frame(t1, NARROW, 1100), frame(big, NARROW, 2100), frame(t3, NARROW, 3100)])
    expect(rules(run([t1, big, t3], [delivered]))).toEqual(["oversized_delivered"])
    const carriedOn = stream("s1", [frame(t1, NARROW, 1100), frame(t3, NARROW, 3100)])
    expect(rules(run([t1, big, t3], [carriedOn]))).toEqual(["missing"])
    const ended = stream("s1", [frame(t1, NARROW, 1100), terminal(2100, "error", "tx_too_large")], {
      end: { t: 2101, by: "server", final: false },
    })
    expect(run([t1, big, t3], [ended]).violations).toEqual([])
  })

  it("checks a resumed open from the Last-Event-ID on, and refuses a phantom transaction", () => {
    const resumedFrame: FrameRec = {
      t: 3050,
      event: "resumed",
      data: JSON.stringify({ last_event_id: String(t1.xid) }),
    }
    const ok = stream("s1", [resumedFrame, frame(t2, NARROW, 3060), frame(t3, NARROW, 3100)], {
      tReq: 3000,
      tHdr: 3040,
      lastEventIdSent: String(t1.xid),
    })
    expect(run([t1, t2, t3], [ok]).violations).toEqual([])
    const gap = stream("s1", [resumedFrame, frame(t3, NARROW, 3100)], {
      tReq: 3000,
      tHdr: 3040,
      lastEventIdSent: String(t1.xid),
    })
    expect(rules(run([t1, t2, t3], [gap]))).toEqual(["missing"])
    const fake = frame(t1, NARROW, 1000)
    const phantom = stream("s1", [
      { ...fake, id: "999", data: fake.data!.replace(String(t1.xid), "999") },
      frame(t1, NARROW, 1100),
    ])
    expect(rules(run([t1], [phantom]))).toEqual(["phantom_tx"])
  })
})
