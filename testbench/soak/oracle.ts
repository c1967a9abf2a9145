// The history checker: given what the writer committed, what the auth backend answered and what each
// client received, it decides for every stream whether Walera kept its delivery contract
// (docs/delivery-semantics.md): every touching transaction exactly once, in commit order, with exactly the granted columns,
// and a gap only right before a terminal frame. The rules and their tolerances are in docs/reliability.md.
import { canonical, parseTs, SCHEMA } from "./schema.ts"
import type { AuthCall, FrameRec, Grant, HTx, Incarnation, Json, StreamRec } from "./types.ts"

export interface OracleConfig {
  /** Gapless open: require every touching transaction committed after the backend received the open's call. */
  readonly strictOpen: boolean
  /** How long after the backend sent a grant Walera may still use the previous one. */
  readonly grantSlackMs: number
  /** A stream the client closed must hold every touching transaction committed this long before the close. */
  readonly tailGraceMs: number
  /** A tail gap before a terminal frame may start at most this long before the frame. */
  readonly staleGapMs: number
  readonly commitTsSlackMs: number
  /** Answers slower than this (minus a margin) may have been abandoned by Walera (auth.request_timeout). */
  readonly authTimeoutMs: number
  /** A close without a frame counts as "while stopping" up to this long after the process exited. */
  readonly stopGraceMs: number
  /** Time a client may take to read what is already on its socket (on top of its own pauses). */
  readonly readMarginMs: number
}

export const DEFAULT_ORACLE_CONFIG: OracleConfig = {
  strictOpen: false,
  grantSlackMs: 1000,
  tailGraceMs: 10_000,
  staleGapMs: 10_000,
  commitTsSlackMs: 1500,
  authTimeoutMs: 2000,
  stopGraceMs: 1500,
  readMarginMs: 1000,
}

export interface OracleInput {
  readonly txs: ReadonlyArray<HTx>
  readonly streams: ReadonlyArray<StreamRec>
  readonly authCalls: ReadonlyArray<AuthCall>
  readonly incarnations: ReadonlyArray<Incarnation>
}

export type Rule =
  | "phantom_tx"
  | "bad_frame"
  | "duplicate"
  | "out_of_order"
  | "column_leak"
  | "content_mismatch"
  | "unexpected_delivery"
  | "delivered_after_revocation"
  | "oversized_delivered"
  | "missing"
  | "stale_gap"
  | "unsignalled_close"
  | "frame_after_terminal"
  | "replayed_old"
  | "bad_prelude"
  | "resume_mismatch"
  | "commit_ts"
  | "multi_root_metric"
  | "no_open_grant"

export interface Violation {
  readonly rule: Rule
  readonly stream?: string
  readonly instance?: string
  readonly xid?: number
  readonly detail: string
  /** The frame's bytes (or what was expected), shortened. */
  readonly bytes?: string
}

export interface OracleStats {
  streamsChecked: number
  streamsRefused: number
  streamsAbortedByClient: number
  framesChecked: number
  transactionsCommitted: number
  transactionsDelivered: number
  requiredChecked: number
  /** Touching transactions committed after the request was sent that a normal open did not get (the open gap). */
  openWindowMisses: number
  openWindowStreams: number
  resumedOpens: number
  endsByReason: Record<string, number>
  tailGapsAllowed: number
  /** Over streams whose client never paused reading. */
  maxCommitToReceiveMs: number
}

export interface MultiRootCheck {
  readonly instance: string
  readonly observed: number
  readonly lower: number
  readonly upper: number
}

export interface OracleResult {
  readonly violations: Violation[]
  readonly stats: OracleStats
  readonly multiRoot: MultiRootCheck[]
}

const REVOKED = "revoked" as const
type InForce = Grant | typeof REVOKED

interface Interval {
  readonly start: number
  readonly end: number
  readonly value: InForce
}

type Outcome =
  | { readonly kind: "none" }
  | { readonly kind: "multi" }
  | { readonly kind: "too_large" }
  | { readonly kind: "deliver"; readonly changes: ReadonlyArray<ExpectedChange> }

interface ExpectedChange {
  readonly op: string
  readonly table: string
  readonly pk: string
  readonly data?: ReadonlyArray<readonly [string, Json]>
}

const TERMINAL = new Set(["error", "shutdown"])
const shorten = (s: string, n = 1200) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s)
const grantKey = (g: Grant) => JSON.stringify([g.userId, Object.entries(g.tables).sort(), g.roots])

/** Whether Walera must accept this grant for a stream on `table` (docs/auth.md: roots and tables, also on refresh). */
export const grantAllows = (g: Grant, table: string): boolean =>
  (g.roots === null || g.roots.includes(table)) && Object.hasOwn(g.tables, table)

export const checkHistory = (input: OracleInput, config: OracleConfig = DEFAULT_ORACLE_CONFIG): OracleResult => {
  const violations: Violation[] = []
  const stats: OracleStats = {
    streamsChecked: 0,
    streamsRefused: 0,
    streamsAbortedByClient: 0,
    framesChecked: 0,
    transactionsCommitted: input.txs.length,
    transactionsDelivered: 0,
    requiredChecked: 0,
    openWindowMisses: 0,
    openWindowStreams: 0,
    resumedOpens: 0,
    endsByReason: {},
    tailGapsAllowed: 0,
    maxCommitToReceiveMs: 0,
  }
  const txs = [...input.txs].sort((a, b) => a.seq - b.seq)
  const byXid = new Map<number, HTx>()
  const position = new Map<number, number>()
  txs.forEach((t, i) => {
    byXid.set(t.xid, t)
    position.set(t.seq, i)
  })

  // Which transactions change a row, or any row of a table; and which tables they change with several pks.
  const byRow = new Map<string, number[]>()
  const byTable = new Map<string, number[]>()
  const multiTables = new Map<number, Set<string>>()
  txs.forEach((t, i) => {
    const pks = new Map<string, Set<string>>()
    const rows = new Set<string>()
    for (const c of t.changes) {
      let s = pks.get(c.table)
      if (s === undefined) pks.set(c.table, (s = new Set()))
      s.add(c.pk)
      rows.add(`${c.table}\u0000${c.pk}`)
    }
    for (const r of rows) {
      let l = byRow.get(r)
      if (l === undefined) byRow.set(r, (l = []))
      l.push(i)
    }
    const multi = new Set<string>()
    for (const [table, set] of pks) {
      let l = byTable.get(table)
      if (l === undefined) byTable.set(table, (l = []))
      l.push(i)
      if (set.size > 1) multi.add(table)
    }
    multiTables.set(t.seq, multi)
  })

  // Encodings are shared by every stream with the same grant (as in Walera itself).
  const encodeCache = new Map<string, ReadonlyArray<ExpectedChange>>()
  const encode = (t: HTx, g: Grant): ReadonlyArray<ExpectedChange> => {
    const key = `${t.seq}|${grantKey(g)}`
    const hit = encodeCache.get(key)
    if (hit !== undefined) return hit
    const out: ExpectedChange[] = []
    for (const c of t.changes) {
      const cols = g.tables[c.table]
      const spec = SCHEMA.get(c.table)
      if (cols === undefined || spec === undefined) continue
      if (c.op === "delete" || c.row === null) {
        out.push({ op: c.op, table: c.table, pk: c.pk })
        continue
      }
      const data: Array<readonly [string, Json]> = []
      let visible = false
      for (const col of spec.columns) {
        if (col.name !== spec.pk && !cols.includes(col.name)) continue
        const v = c.row[col.name]
        if (v === undefined) continue
        data.push([col.name, canonical(v)])
        if (col.name !== spec.pk) visible = true
      }
      if (c.op === "update" && !visible) continue
      out.push({ op: c.op, table: c.table, pk: c.pk, data })
    }
    encodeCache.set(key, out)
    return out
  }

  const touchesRow = (t: HTx, s: StreamRec) =>
    t.changes.some((c) => c.table === s.table && (s.pk === null || c.pk === s.pk))

  /** What Walera does with transaction t for stream s under grant g (docs/delivery-semantics.md, routing rules). */
  const outcomes = (t: HTx, s: StreamRec, g: Grant): Outcome[] => {
    if (!touchesRow(t, s)) return [{ kind: "none" }]
    const multi = multiTables.get(t.seq)?.has(s.table) === true
    const spill = (): Outcome =>
      !Object.hasOwn(g.tables, s.table) ? { kind: "none" } : multi ? { kind: "multi" } : { kind: "too_large" }
    const normal = (): Outcome => {
      const changes = encode(t, g)
      const anchor = changes.some((c) => c.table === s.table && (s.pk === null || c.pk === s.pk))
      if (!anchor) return { kind: "none" }
      return multi ? { kind: "multi" } : { kind: "deliver", changes }
    }
    if (t.oversize === "changes" || t.oversize === "bytes") return [spill()]
    if (t.oversize === "maybe") return [normal(), spill()]
    return [normal()]
  }

  // Grant timelines, one per stream token (each connection attempt has its own token).
  const callsByToken = new Map<string, AuthCall[]>()
  const callsByRequest = new Map<string, AuthCall>()
  for (const c of input.authCalls) {
    let l = callsByToken.get(c.token)
    if (l === undefined) callsByToken.set(c.token, (l = []))
    l.push(c)
    if (!callsByRequest.has(c.requestId) || c.outcome === "grant") callsByRequest.set(c.requestId, c)
  }
  const timeline = (s: StreamRec, open: AuthCall & { grant: Grant }): Interval[] => {
    const entries: Array<{ t: number; value: InForce; definite: boolean }> = []
    for (const c of callsByToken.get(s.token) ?? []) {
      if (c === open || c.requestId === s.id || c.tRecv < open.tRecv) continue
      let value: InForce | undefined
      if (c.outcome === "deny") value = REVOKED
      else if (c.outcome === "grant" && c.grant !== undefined)
        value = grantAllows(c.grant, s.table) && c.grant.userId === open.grant.userId ? c.grant : REVOKED
      if (value === undefined) continue
      entries.push({ t: c.tSent, value, definite: c.tSent - c.tRecv < config.authTimeoutMs - 150 })
    }
    entries.sort((a, b) => a.t - b.t)
    const nextDefinite = (from: number) => {
      for (let i = from; i < entries.length; i++) if (entries[i]!.definite) return entries[i]!.t + config.grantSlackMs
      return Number.POSITIVE_INFINITY
    }
    const out: Interval[] = [{ start: Number.NEGATIVE_INFINITY, end: nextDefinite(0), value: open.grant }]
    entries.forEach((e, i) => {
      out.push({ start: e.t, end: nextDefinite(i + 1), value: e.value })
    })
    return out
  }
  const inForce = (intervals: ReadonlyArray<Interval>, t0: number, t1: number): InForce[] => {
    const out: InForce[] = []
    for (const iv of intervals) if (iv.start <= t1 && iv.end >= t0 && !out.includes(iv.value)) out.push(iv.value)
    return out
  }

  // Decoded-by witnesses: the first time any client of an incarnation read each transaction.
  const firstSeen = new Map<string, Map<number, number>>()
  const receipts = new Map<string, Array<{ t: number; seq: number }>>()
  for (const s of input.streams) {
    let m = firstSeen.get(s.instance)
    if (m === undefined) firstSeen.set(s.instance, (m = new Map()))
    let r = receipts.get(s.instance)
    if (r === undefined) receipts.set(s.instance, (r = []))
    for (const f of s.frames) {
      if (f.event !== "tx" || f.id === undefined) continue
      const t = byXid.get(Number(f.id))
      if (t === undefined) continue
      const prev = m.get(t.seq)
      if (prev === undefined || f.t < prev) m.set(t.seq, f.t)
      r.push({ t: f.t, seq: t.seq })
    }
  }
  const readBy = new Map<string, SuffixMin>()
  for (const [instance, r] of receipts) readBy.set(instance, suffixMin(r.map((x) => [x.seq, x.t])))
  /** The earliest time a transaction at or after `seq` was read from this incarnation: it was dispatched by then. */
  const dispatchedBy = (instance: string, seq: number): number =>
    readBy.get(instance)?.atLeast(seq) ?? Number.POSITIVE_INFINITY

  const stopping = (instance: string, t: number): boolean => {
    const inc = input.incarnations.find((i) => i.id === instance)
    if (inc === undefined || inc.stopSignalAt === null) return false
    const until = inc.exitedAt === null ? Number.POSITIVE_INFINITY : inc.exitedAt + config.stopGraceMs
    return t >= inc.stopSignalAt && t <= until
  }

  const add = (v: Violation) => violations.push(v)

  /** Per stream: what it received, checked against what it had to receive. */
  const checked: Array<{ s: StreamRec; intervals: Interval[]; delivered: Map<number, number>; lastSeq: number }> = []
  for (const s of input.streams) {
    if (s.abortedByClient && s.status !== 200) {
      stats.streamsAbortedByClient++
      continue
    }
    if (s.status !== 200) {
      stats.streamsRefused++
      continue
    }
    stats.streamsChecked++
    const open = callsByRequest.get(s.id)
    if (open === undefined || open.outcome !== "grant" || open.grant === undefined) {
      add({
        rule: "no_open_grant",
        stream: s.id,
        instance: s.instance,
        detail: "no 200 grant from the backend for this open",
      })
      continue
    }
    const intervals = timeline(s, open as AuthCall & { grant: Grant })
    const ctx = { stream: s.id, instance: s.instance }

    // Prelude: content type, `retry:` first, initial_data only right after it, resumed only there too.
    if (s.contentType === null || !s.contentType.startsWith("text/event-stream"))
      add({ ...ctx, rule: "bad_prelude", detail: `content-type ${s.contentType}` })
    const frames = s.frames
    if (frames.length > 0 && frames[0]!.event !== "retry")
      add({ ...ctx, rule: "bad_prelude", detail: `first frame is ${frames[0]!.event}, not retry:` })
    let resumedFrom: HTx | null = null
    let resumed = false
    frames.forEach((f, i) => {
      if ((f.event === "initial_data" || f.event === "resumed") && i !== 1)
        add({ ...ctx, rule: "bad_prelude", detail: `${f.event} at position ${i}` })
    })
    const second = frames[1]
    if (second?.event === "resumed") {
      resumed = true
      stats.resumedOpens++
      let id: string | undefined
      try {
        id = String((JSON.parse(second.data ?? "null") as { last_event_id?: unknown }).last_event_id)
      } catch {}
      if (id === undefined || id !== s.lastEventIdSent)
        add({ ...ctx, rule: "resume_mismatch", detail: `resumed ${id} but Last-Event-ID was ${s.lastEventIdSent}` })
      resumedFrom = id === undefined ? null : (byXid.get(Number(id)) ?? null)
      if (resumedFrom === null) add({ ...ctx, rule: "resume_mismatch", detail: `resumed from unknown tx ${id}` })
    }

    // Terminal frame and what follows it.
    const termIndex = frames.findIndex((f) => TERMINAL.has(f.event))
    const terminal = termIndex >= 0 ? frames[termIndex]! : null
    if (terminal !== null && termIndex < frames.length - 1) {
      const after = frames.slice(termIndex + 1).filter((f) => f.event !== "retry")
      if (after.length > 0)
        add({ ...ctx, rule: "frame_after_terminal", detail: `${after.length} frame(s) after ${terminal.event}` })
    }
    const endReason = terminal
      ? `${terminal.event}:${reasonOf(terminal)}`
      : s.end === null || s.end.final
        ? "final_close"
        : s.end.by === "client"
          ? "client_close"
          : "bare_close"
    stats.endsByReason[endReason] = (stats.endsByReason[endReason] ?? 0) + 1

    // What arrived: known, once, in order, with exactly the columns of an acceptable grant.
    const delivered = new Map<number, number>()
    let lastSeq = -1
    for (const f of frames) {
      if (f.event !== "tx") continue
      stats.framesChecked++
      const bytes = shorten(`event: tx\nid: ${f.id}\ndata: ${f.data}`)
      let body: { tx_id?: unknown; commit_ts?: unknown; changes?: unknown }
      try {
        body = JSON.parse(f.data ?? "")
      } catch {
        add({ ...ctx, rule: "bad_frame", detail: "tx data is not JSON", bytes })
        continue
      }
      const xid = Number(f.id)
      if (body.tx_id !== xid) add({ ...ctx, xid, rule: "bad_frame", detail: `id ${f.id} ≠ tx_id ${body.tx_id}`, bytes })
      const t = byXid.get(xid)
      if (t === undefined) {
        add({ ...ctx, xid, rule: "phantom_tx", detail: "tx_id of no committed transaction", bytes })
        continue
      }
      if (delivered.has(t.seq)) {
        add({ ...ctx, xid, rule: "duplicate", detail: `transaction #${t.seq} (${t.kind}) received twice`, bytes })
        continue
      }
      if (t.seq < lastSeq) {
        const before = txs[position.get(lastSeq)!]!
        add({
          ...ctx,
          xid,
          rule: "out_of_order",
          detail: `#${t.seq} (xid ${t.xid}) after #${lastSeq} (xid ${before.xid})`,
          bytes,
        })
      }
      lastSeq = Math.max(lastSeq, t.seq)
      delivered.set(t.seq, f.t)
      stats.transactionsDelivered++
      if (s.maxPauseMs === 0) stats.maxCommitToReceiveMs = Math.max(stats.maxCommitToReceiveMs, f.t - t.commitEnd)
      if (typeof body.commit_ts === "string") {
        const ts = parseTs(body.commit_ts)
        if (!(ts >= t.commitStart - config.commitTsSlackMs && ts <= t.commitEnd + config.commitTsSlackMs))
          add({
            ...ctx,
            xid,
            rule: "commit_ts",
            detail: `commit_ts ${body.commit_ts} outside the commit window`,
            bytes,
          })
      } else add({ ...ctx, xid, rule: "bad_frame", detail: "commit_ts missing", bytes })

      if (resumed && resumedFrom !== null && t.seq <= resumedFrom.seq)
        add({ ...ctx, xid, rule: "resume_mismatch", detail: `#${t.seq} is not after the resumed id`, bytes })
      if (!resumed) {
        const seen = firstSeen.get(s.instance)?.get(t.seq)
        if (seen !== undefined && seen < s.tReq)
          add({
            ...ctx,
            xid,
            rule: "replayed_old",
            detail: `decoded before the request was sent (another stream of ${s.instance} read it ${Math.round(s.tReq - seen)} ms earlier)`,
            bytes,
          })
      }

      const grants = inForce(intervals, t.commitStart, f.t)
      const live = grants.filter((g): g is Grant => g !== REVOKED)
      if (live.length === 0) {
        add({
          ...ctx,
          xid,
          rule: "delivered_after_revocation",
          detail: `#${t.seq} committed after the grant was revoked`,
          bytes,
        })
        continue
      }
      const got = Array.isArray(body.changes) ? (body.changes as Json[]) : []
      const options = live.flatMap((g) => outcomes(t, s, g))
      const matches = options.some((o) => o.kind === "deliver" && sameChanges(o.changes, got))
      if (matches) continue
      const leak = findLeak(got, live)
      if (leak !== null) {
        add({
          ...ctx,
          xid,
          rule: "column_leak",
          detail: `${leak} (grants in force: ${live.map(describeGrant).join(" | ")})`,
          bytes,
        })
        continue
      }
      const expected = options.find((o) => o.kind === "deliver")
      if (expected !== undefined && expected.kind === "deliver") {
        add({
          ...ctx,
          xid,
          rule: "content_mismatch",
          detail: `#${t.seq} (${t.kind}) expected ${shorten(JSON.stringify(expected.changes.map(toJson)), 600)}`,
          bytes,
        })
      } else if (options.some((o) => o.kind === "too_large")) {
        add({
          ...ctx,
          xid,
          rule: "oversized_delivered",
          detail: `#${t.seq} (${t.kind}, over ${t.oversize}) delivered instead of tx_too_large`,
          bytes,
        })
      } else {
        const why = options.some((o) => o.kind === "multi") ? "multi-root for this table" : "does not touch this stream"
        add({ ...ctx, xid, rule: "unexpected_delivery", detail: `#${t.seq} (${t.kind}) ${why}`, bytes })
      }
    }
    const deliveredSeqs = [...delivered.keys()].sort((a, b) => a - b)
    const firstDelivered = deliveredSeqs[0] ?? Number.POSITIVE_INFINITY
    const lastDelivered = deliveredSeqs.at(-1) ?? Number.NEGATIVE_INFINITY
    checked.push({ s, intervals, delivered, lastSeq: lastDelivered })
    const next = suffixMin([...delivered])

    // What had to arrive.
    const candidates = s.pk === null ? (byTable.get(s.table) ?? []) : (byRow.get(`${s.table}\u0000${s.pk}`) ?? [])
    const authRecv = open.tRecv
    const lower = config.strictOpen ? authRecv : (s.tHdr ?? s.tReq)
    const endT = s.end?.t ?? Number.POSITIVE_INFINITY
    const stalled = s.stallFrom !== null
    const gapAllowed =
      terminal !== null ||
      (s.end !== null && s.end.by !== "client" && !s.end.final && (stopping(s.instance, s.end.t) || stalled))
    const unsignalled = terminal === null && s.end !== null && s.end.by !== "client" && !s.end.final && !gapAllowed
    if (unsignalled)
      add({
        ...ctx,
        rule: "unsignalled_close",
        detail: `closed by the server at ${iso(s.end!.t)} without a terminal frame while ${s.instance} was running`,
      })
    const cut = terminal?.t ?? endT
    let openMiss = 0
    for (const i of candidates) {
      const t = txs[i]!
      if (t.commitStart > endT) break
      if (resumed && resumedFrom !== null && t.seq <= resumedFrom.seq) continue
      const inHoles = t.seq > firstDelivered && t.seq < lastDelivered
      const afterOpen = resumed ? resumedFrom !== null && t.seq > resumedFrom.seq : t.commitStart > lower
      if (delivered.has(t.seq)) {
        if ((inHoles || afterOpen) && required(t, s, intervals, next, endT)) stats.requiredChecked++
        continue
      }
      if (!inHoles && !afterOpen) {
        // Before the open bound: the open gap of today's server, counted, not a violation.
        if (!resumed && t.seq < firstDelivered && t.commitStart > s.tReq && required(t, s, intervals, next, endT))
          openMiss++
        continue
      }
      if (!required(t, s, intervals, next, endT)) continue
      stats.requiredChecked++
      // Missing before the headers (strict open, the default): the gapless open owes it whatever happened later.
      const openPhase = !resumed && t.seq < firstDelivered && (s.tHdr === null || t.commitStart <= s.tHdr)
      // Committed while the headers were on their way, it may have been decoded after the subscriber attached and
      // be on its way live: a stream that ended before it could arrive has not missed it.
      if (openPhase && s.end !== null && s.end.t < t.commitEnd + config.readMarginMs && delivered.size === 0) continue
      const tail = t.seq > lastDelivered && !openPhase
      if (tail) {
        // Another client of this process read this transaction (or a later one) by `seen`: it was dispatched
        // then, to every stream attached, and bytes on one socket arrive in order — so a stream whose end came
        // well after that should have it, whatever the end was.
        const seen = dispatchedBy(s.instance, t.seq)
        const margin = config.readMarginMs + s.maxPauseMs
        const stale = (at: number) => seen + margin < at
        if (gapAllowed) {
          stats.tailGapsAllowed++
          const at = terminal?.t ?? endT
          if (!stalled && (stale(at) || (terminal !== null && t.commitEnd < terminal.t - config.staleGapMs)))
            add({
              ...ctx,
              xid: t.xid,
              rule: "stale_gap",
              detail: `#${t.seq} (${t.kind}) committed ${iso(t.commitStart)}${Number.isFinite(seen) ? `, read by another client of ${s.instance} at ${iso(seen)}` : ""}, never arrived; the stream ended (${endReason}) at ${iso(at)}`,
              bytes: expectedBytes(t, s, intervals, endT),
            })
          continue
        }
        const final = s.end === null || s.end.final
        if (!final && t.commitEnd >= cut - config.tailGraceMs && !stale(cut)) continue
      }
      add({
        ...ctx,
        xid: t.xid,
        rule: "missing",
        detail: `#${t.seq} (${t.kind}${t.oversize ? `, over ${t.oversize}: must end the stream with tx_too_large` : ""}) committed ${iso(t.commitStart)}, ${tail ? "after the last delivered transaction" : t.seq < firstDelivered ? `before the first delivered one (open: request ${iso(s.tReq)}, auth call received ${iso(authRecv)})` : "between delivered ones"}; stream ${s.path} headers ${iso(s.tHdr ?? 0)}, end ${endReason} ${iso(endT)}`,
        bytes: expectedBytes(t, s, intervals, endT),
      })
    }
    if (openMiss > 0) {
      stats.openWindowMisses += openMiss
      stats.openWindowStreams++
    }
  }

  /** The frame a missing transaction should have been (under the first grant that may apply), for the report. */
  function expectedBytes(t: HTx, s: StreamRec, intervals: Interval[], endT: number): string | undefined {
    const g = inForce(intervals, t.commitStart, endT).find((x): x is Grant => x !== REVOKED)
    const o = g === undefined ? undefined : outcomes(t, s, g).find((x) => x.kind === "deliver")
    if (o === undefined || o.kind !== "deliver") return undefined
    return shorten(
      `(expected) event: tx\nid: ${t.xid}\ndata: ${JSON.stringify({ tx_id: t.xid, changes: o.changes.map(toJson) })}`,
    )
  }

  /** The transaction had to reach the stream (or end it): it touches it under every grant that may apply. */
  function required(t: HTx, s: StreamRec, intervals: Interval[], next: SuffixMin, endT: number) {
    // A later transaction that arrived was dispatched after this one: the grant had to apply by then.
    const until = Math.min(endT, next.atLeast(t.seq + 1))
    const grants = inForce(intervals, t.commitStart, until)
    if (grants.length === 0 || grants.includes(REVOKED)) return false
    return grants.every((g) => outcomes(t, s, g as Grant).every((o) => o.kind === "deliver" || o.kind === "too_large"))
  }

  // Multi-root drops against the metric, per incarnation: bounds from what the clients saw.
  const multiRoot: MultiRootCheck[] = []
  for (const inc of input.incarnations) {
    const last = inc.multiRootScrapes.reduce<{ t: number; value: number } | null>(
      (a, b) => (a === null || b.value >= a.value ? b : a),
      null,
    )
    if (last === null) continue
    let lower = 0
    let upper = 0
    const mine = input.streams.filter((s) => s.instance === inc.id && s.tReq <= last.t)
    const byStream = new Map(checked.map((c) => [c.s, c]))
    for (const s of mine) {
      const candidates = s.pk === null ? (byTable.get(s.table) ?? []) : (byRow.get(`${s.table}\u0000${s.pk}`) ?? [])
      const c = byStream.get(s)
      const open = callsByRequest.get(s.id)
      for (const i of candidates) {
        const t = txs[i]!
        if (!(multiTables.get(t.seq)?.has(s.table) ?? false)) continue
        if (t.commitStart > last.t) break
        const endT = s.end?.t ?? Number.POSITIVE_INFINITY
        if (endT < t.commitStart) continue
        const grants: Grant[] =
          c !== undefined
            ? inForce(c.intervals, t.commitStart, endT).filter((g): g is Grant => g !== REVOKED)
            : open?.grant !== undefined
              ? [open.grant]
              : []
        const kinds = grants.map((g) => outcomes(t, s, g).some((o) => o.kind === "multi"))
        if (kinds.length === 0) continue
        // Dispatched before this stream's request was even sent (a later transaction was read by then): not its drop.
        if (kinds.some((k) => k) && dispatchedBy(inc.id, t.seq) >= s.tReq) upper++
        if (c === undefined || !kinds.every((k) => k) || s.tHdr === null || t.commitStart <= s.tHdr) continue
        const by = dispatchedBy(inc.id, t.seq)
        if (by > last.t) continue
        const laterFrame = c.lastSeq > t.seq
        const clientKept = s.end === null || (s.end.by === "client" && s.end.t > by)
        if (laterFrame || clientKept) lower++
      }
    }
    multiRoot.push({ instance: inc.id, observed: last.value, lower, upper })
    if (last.value < lower || last.value > upper)
      add({
        rule: "multi_root_metric",
        instance: inc.id,
        detail: `walera_tx_dropped_total{reason="multi_root"} = ${last.value} at ${iso(last.t)}, expected between ${lower} and ${upper}`,
      })
  }

  return { violations, stats, multiRoot }
}

interface SuffixMin {
  /** The smallest time among entries whose key is at least `key` (Infinity when none). */
  readonly atLeast: (key: number) => number
}

/** (key, time) pairs → "earliest time at or after a key" in O(log n). */
const suffixMin = (pairs: ReadonlyArray<readonly [number, number]>): SuffixMin => {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0])
  const keys = sorted.map((p) => p[0])
  const mins = new Array<number>(sorted.length + 1).fill(Number.POSITIVE_INFINITY)
  for (let i = sorted.length - 1; i >= 0; i--) mins[i] = Math.min(sorted[i]![1], mins[i + 1]!)
  return {
    atLeast: (key) => {
      let lo = 0
      let hi = keys.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (keys[mid]! < key) lo = mid + 1
        else hi = mid
      }
      return mins[lo]!
    },
  }
}

const reasonOf = (f: FrameRec): string => {
  try {
    return String((JSON.parse(f.data ?? "{}") as { reason?: unknown }).reason)
  } catch {
    return "?"
  }
}

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString().slice(11, 23) : String(t))

const describeGrant = (g: Grant) =>
  `${g.userId} ${Object.entries(g.tables)
    .map(([t, c]) => `${t}[${c.join(",")}]`)
    .join(" ")}`

const toJson = (c: ExpectedChange): Json => {
  const o: Record<string, Json> = { op: c.op, table: c.table, pk: c.pk }
  if (c.data !== undefined) o["data"] = Object.fromEntries(c.data)
  return o
}

/** Same changes in the same order, same data keys in the same (column) order, same canonical values. */
export const sameChanges = (expected: ReadonlyArray<ExpectedChange>, got: ReadonlyArray<Json>): boolean => {
  if (expected.length !== got.length) return false
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!
    const g = got[i]
    if (g === null || typeof g !== "object" || Array.isArray(g)) return false
    if (g["op"] !== e.op || g["table"] !== e.table || g["pk"] !== e.pk) return false
    const data = g["data"]
    if (e.data === undefined) {
      if (data !== undefined) return false
      continue
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) return false
    const keys = Object.keys(data)
    if (keys.length !== e.data.length) return false
    for (let k = 0; k < keys.length; k++) {
      const [name, value] = e.data[k]!
      if (keys[k] !== name) return false
      if (JSON.stringify(canonical(data[name]!)) !== JSON.stringify(value)) return false
    }
  }
  return true
}

/** A table or column that no grant in force allows (the primary key is always allowed). */
export const findLeak = (got: ReadonlyArray<Json>, grants: ReadonlyArray<Grant>): string | null => {
  for (const c of got) {
    if (c === null || typeof c !== "object" || Array.isArray(c)) continue
    const table = String(c["table"])
    const spec = SCHEMA.get(table)
    const allowed = new Set<string>(spec === undefined ? [] : [spec.pk])
    let tableAllowed = false
    for (const g of grants) {
      const cols = g.tables[table]
      if (cols === undefined) continue
      tableAllowed = true
      for (const x of cols) allowed.add(x)
    }
    if (!tableAllowed) return `table ${table} is in no grant`
    const data = c["data"]
    if (data !== null && typeof data === "object" && !Array.isArray(data))
      for (const k of Object.keys(data)) if (!allowed.has(k)) return `column ${table}.${k} is in no grant`
  }
  return null
}
