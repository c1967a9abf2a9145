// The replication session's bookkeeping: messages handed on in WAL order (held back while a relation's key is looked
// up), and acknowledgements that never run ahead of what was handed on.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { PgMessage } from "../../domain/PgMessage.ts"
import type { WalEvent } from "../../domain/ports/WalSource.ts"
import {
  ACK_EVERY_MS,
  initialSession,
  receive,
  resolved,
  type SessionState,
  type SessionStep,
  tick,
} from "../../domain/ReplicationSession.ts"

const relation = (id: number, identity: "default" | "full"): PgMessage => ({
  _tag: "relation",
  relationId: id,
  schema: "public",
  name: `t${id}`,
  replicaIdentity: identity,
  columns: [{ name: "id", typeOid: 23, isKey: true }],
})

/** A WAL: transactions (begin, rows, commit) with relations and keepalives in between, LSNs increasing. */
const walArb = fc
  .array(
    fc.record({
      rows: fc.integer({ min: 0, max: 3 }),
      relationBefore: fc.option(fc.record({ id: fc.integer({ min: 1, max: 3 }), full: fc.boolean() }), {
        nil: undefined,
      }),
      keepaliveInside: fc.boolean(),
      keepaliveAfter: fc.option(fc.boolean(), { nil: undefined }),
    }),
    { maxLength: 12 },
  )
  .map((txs) => {
    const events: WalEvent[] = []
    let lsn = 100n
    txs.forEach((t, i) => {
      if (t.relationBefore !== undefined)
        events.push(relation(t.relationBefore.id, t.relationBefore.full ? "full" : "default"))
      events.push({ _tag: "begin", finalLsn: lsn + 10n, commitTime: 0n, xid: 1000 + i })
      for (let r = 0; r < t.rows; r++) events.push({ _tag: "insert", relationId: 1, newTuple: [String(r)] })
      if (t.keepaliveInside) events.push({ _tag: "keepalive", walEnd: lsn + 50n, replyRequested: true })
      lsn += 10n
      events.push({ _tag: "commit", commitLsn: lsn - 1n, endLsn: lsn, commitTime: 0n })
      if (t.keepaliveAfter !== undefined)
        events.push({ _tag: "keepalive", walEnd: lsn + 5n, replyRequested: t.keepaliveAfter })
      lsn += 20n
    })
    return events
  })

interface Run {
  readonly delivered: PgMessage[]
  readonly acks: Array<{ lsn: bigint; dispatchedThen: bigint }>
}

/**
 * Feeds the WAL; lookups are answered after `delays[i]` further events (0 = at once), as a slow catalog would.
 * What is safe to acknowledge: the end LSN of the last commit handed on, or the WAL end of a keepalive between
 * transactions once every message before it was handed on.
 */
const run = (events: ReadonlyArray<WalEvent>, delays: ReadonlyArray<number>): Run => {
  let state: SessionState = initialSession(100n, 0)
  const delivered: PgMessage[] = []
  const acks: Run["acks"] = []
  const keepalives: Array<{ walEnd: bigint; messagesBefore: number }> = []
  {
    let messages = 0
    let inside = false
    for (const e of events) {
      if (e._tag === "keepalive") {
        if (!inside) keepalives.push({ walEnd: e.walEnd, messagesBefore: messages })
        continue
      }
      messages++
      if (e._tag === "begin") inside = true
      if (e._tag === "commit") inside = false
    }
  }
  let safe = 100n
  const covered = () => {
    for (const k of keepalives) if (k.messagesBefore <= delivered.length && k.walEnd > safe) safe = k.walEnd
  }
  let pending = null as { relation: PgMessage; wait: number } | null
  let lookups = 0
  let now = 0
  const apply = (step: SessionStep | null, event?: WalEvent) => {
    const out = step === null ? (event === undefined || event._tag === "keepalive" ? [] : [event]) : step.deliver
    for (const m of out) {
      delivered.push(m)
      if (m._tag === "commit" && m.endLsn > safe) safe = m.endLsn
    }
    covered()
    if (step !== null) {
      state = step.state
      if (step.ack !== null) acks.push({ lsn: step.ack, dispatchedThen: safe })
      if (step.lookup !== null)
        pending = { relation: step.lookup, wait: delays[lookups++ % Math.max(1, delays.length)] ?? 0 }
    }
  }
  const answer = () => {
    while (pending !== null && pending.wait <= 0) {
      pending = null
      apply(resolved(state, ["id"], now))
    }
  }
  for (const e of events) {
    now += 100
    // A keepalive counts once it is received, if everything before it was handed on already.
    if (e._tag === "keepalive" && state.held === null) covered()
    apply(receive(state, e, now), e)
    if (pending !== null) pending.wait--
    answer()
    apply(tick(state, now))
  }
  while (pending !== null) {
    pending.wait = 0
    answer()
  }
  apply(tick(state, now + ACK_EVERY_MS))
  return { delivered, acks }
}

const withoutKeys = (m: PgMessage) => (m._tag === "relation" ? { ...m, primaryKey: undefined } : m)

describe("ReplicationSession", () => {
  it("property: every message is handed on exactly once, in WAL order, however slowly keys are looked up", () => {
    fc.assert(
      fc.property(walArb, fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 5 }), (events, delays) => {
        const { delivered } = run(events, delays)
        const messages = events.filter((e): e is PgMessage => e._tag !== "keepalive")
        expect(delivered.map(withoutKeys)).toEqual(messages.map(withoutKeys))
        // A relation that needed its key reaches the assembler with it.
        for (const m of delivered)
          if (m._tag === "relation" && m.replicaIdentity === "full") expect(m.primaryKey).toEqual(["id"])
      }),
      { numRuns: 500 },
    )
  })

  it("property: never acknowledges past what was dispatched", () => {
    fc.assert(
      fc.property(walArb, fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 5 }), (events, delays) => {
        const { acks } = run(events, delays)
        for (const a of acks)
          expect(a.lsn <= a.dispatchedThen, `ack ${a.lsn} > dispatched ${a.dispatchedThen}`).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it("answers a keepalive that asks for it even while a lookup holds messages back", () => {
    let state = initialSession(100n, 0)
    const r = receive(state, relation(1, "full"), 1)!
    expect(r.lookup).not.toBeNull()
    state = r.state
    const k = receive(state, { _tag: "keepalive", walEnd: 500n, replyRequested: true }, 2)!
    expect(k.ack).toBe(100n)
    expect(k.deliver).toEqual([])
  })

  it("reports at least every ACK_EVERY_MS even when nothing new was dispatched", () => {
    const state = initialSession(100n, 0)
    const first = tick(state, 1)
    expect(first.ack).toBe(100n)
    expect(tick(first.state, 2).ack).toBeNull()
    expect(tick(first.state, 1 + ACK_EVERY_MS).ack).toBe(100n)
  })
})
