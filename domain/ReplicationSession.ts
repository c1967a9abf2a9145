// One replication session's bookkeeping as a pure state machine: which messages may be handed on (in WAL order,
// held back while a relation's primary key is being looked up in the catalog) and which LSN may be acknowledged
// to PostgreSQL (never past the last transaction fully handed on). The caller dispatches the delivered messages
// synchronously, in order, before it feeds the next input, so "delivered" means "dispatched".
import type { PgMessage, RelationMessage } from "./PgMessage.ts"
import type { WalEvent } from "./ports/WalSource.ts"

export interface SessionState {
  /** End LSN of the last commit handed on, or PostgreSQL's WAL end while idle between transactions. */
  readonly dispatched: bigint
  readonly acked: bigint
  readonly lastAckAt: number
  /** A transaction has begun and not yet been handed on whole. */
  readonly inTx: boolean
  /** Events waiting for a relation's key lookup, in WAL order; null when nothing waits. */
  readonly held: ReadonlyArray<WalEvent> | null
  /** The relation whose key is being looked up. */
  readonly lookingUp: RelationMessage | null
}

export interface SessionStep {
  readonly state: SessionState
  /** Messages to dispatch now, in order. */
  readonly deliver: ReadonlyArray<PgMessage>
  /** A relation whose primary key must be looked up; feed the answer to `resolved`. */
  readonly lookup: RelationMessage | null
  /** An LSN to report to PostgreSQL now. */
  readonly ack: bigint | null
}

/** Status updates at least this often, even when nothing new was dispatched (PostgreSQL's wal_sender_timeout). */
export const ACK_EVERY_MS = 10_000

export const initialSession = (startLsn: bigint, now: number): SessionState => ({
  dispatched: startLsn,
  acked: 0n,
  lastAckAt: now,
  inTx: false,
  held: null,
  lookingUp: null,
})

const NOTHING: ReadonlyArray<PgMessage> = []

/** LSNs are bigints, which Math.max does not take. */
const later = (a: bigint, b: bigint): bigint => (a > b ? a : b)

/** Relations whose key flags do not name the primary key: the catalog must be asked. */
export const needsKeyLookup = (msg: RelationMessage): boolean =>
  msg.replicaIdentity !== "default" && msg.primaryKey === undefined

const acknowledge = (state: SessionState, now: number): SessionState => ({
  ...state,
  acked: later(state.dispatched, state.acked),
  lastAckAt: now,
})

/** Hands on events in order until one needs a lookup; the rest are held behind it. */
const run = (state: SessionState, events: ReadonlyArray<WalEvent>, now: number): SessionStep => {
  let s = state
  const deliver: PgMessage[] = []
  let ack: bigint | null = null
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!
    if (e._tag === "keepalive") {
      // Between transactions everything up to the server's WAL end was dispatched, so an idle database does not
      // pin WAL behind the slot.
      if (!s.inTx && e.walEnd > s.dispatched) s = { ...s, dispatched: e.walEnd }
      if (e.replyRequested) {
        s = acknowledge(s, now)
        ack = s.acked
      }
      continue
    }
    if (e._tag === "relation" && needsKeyLookup(e)) {
      return { state: { ...s, lookingUp: e, held: events.slice(i + 1) }, deliver, lookup: e, ack }
    }
    deliver.push(e)
    if (e._tag === "begin") s = { ...s, inTx: true }
    else if (e._tag === "commit") s = { ...s, inTx: false, dispatched: later(e.endLsn, s.dispatched) }
  }
  return { state: { ...s, held: null, lookingUp: null }, deliver, lookup: null, ack }
}

/**
 * The next event. null — the common case, a row change with nothing held — means: dispatch this event as it is,
 * the state does not change (no step is allocated on the hot path).
 */
export const receive = (state: SessionState, event: WalEvent, now: number): SessionStep | null => {
  if (state.held !== null) {
    // A keepalive that asks for an answer gets one now (an older LSN is always safe); it is applied in order later.
    const ack =
      event._tag === "keepalive" && event.replyRequested ? (state.acked > 0n ? state.acked : state.dispatched) : null
    const held = [...state.held, event]
    return {
      state: { ...state, held, lastAckAt: ack === null ? state.lastAckAt : now },
      deliver: NOTHING,
      lookup: null,
      ack,
    }
  }
  if (event._tag !== "keepalive" && event._tag !== "relation" && event._tag !== "begin" && event._tag !== "commit") {
    return null
  }
  return run(state, [event], now)
}

/** The catalog named the relation's primary key: hand it on, then what waited behind it. */
export const resolved = (state: SessionState, primaryKey: ReadonlyArray<string>, now: number): SessionStep => {
  const relation = state.lookingUp
  if (relation === null) return { state, deliver: NOTHING, lookup: null, ack: null }
  const next = run({ ...state, held: null, lookingUp: null }, state.held ?? [], now)
  return { ...next, deliver: [{ ...relation, primaryKey }, ...next.deliver] }
}

/** The periodic status update: when something new was dispatched, or every ACK_EVERY_MS regardless. */
export const tick = (state: SessionState, now: number): SessionStep => {
  if (state.dispatched > state.acked || now - state.lastAckAt >= ACK_EVERY_MS) {
    const s = acknowledge(state, now)
    return { state: s, deliver: NOTHING, lookup: null, ack: s.acked }
  }
  return { state, deliver: NOTHING, lookup: null, ack: null }
}
