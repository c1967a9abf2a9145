// The fan-out: every open stream, the routing index over them, and the per-transaction hot
// path (plan → encode once per audience → write the same bytes to each socket). One periodic
// sweep handles heartbeats, stalled sockets, grant refresh and expiry for all streams, so a
// stream costs one small object and no timer of its own.
import { Clock, Context, Effect, Layer } from "effect"
import type { Credentials } from "../domain/ports/AuthBackend.ts"
import type { StreamSink } from "../domain/ports/StreamGateway.ts"
import { type ErrorReason, errorFrame, HEARTBEAT_FRAME, SHUTDOWN_FRAME, txFrame } from "../domain/Frames.ts"
import { WhitelistPool } from "../domain/Grant.ts"
import { planTx, RoutingIndex, type Routable } from "../domain/Routing.ts"
import type { SpilledChange, TableTouch, Tx } from "../domain/TxAssembler.ts"
import { pgEpochMicrosToUnixMs } from "../domain/ValueMapper.ts"
import type { Whitelist } from "../domain/Whitelist.ts"
import { Metrics, type MetricsShape } from "../adapters/metrics/Metrics.ts"
import { Log, type LogShape } from "../adapters/telemetry/Log.ts"

export interface HubConfig {
  readonly heartbeatIntervalMs: number
  readonly writeTimeoutMs: number
  readonly maxBufferedBytes: number
  readonly maxPayloadBytes: number
}

export type DisconnectReason = ErrorReason | "client_closed" | "shutdown"

export interface Stream extends Routable {
  readonly id: number
  readonly channel: string
  readonly kind: "exact" | "wildcard"
  readonly userId: string
  readonly requestId: string
  readonly credentials: Credentials
  readonly sink: StreamSink
  whitelist: Whitelist
  lastWriteAt: number
  /** Bytes handed to the socket so far, and how many of them it had accepted at the last sweep. */
  written: number
  accepted: number
  stalledSince: number
  /** Grant lifecycle (ms since epoch); Infinity = never. */
  refreshAt: number
  expiresAt: number
  refreshing: boolean
  open: boolean
  /** Writes are held back until the end of the current tick (see Hub.write). */
  corked: boolean
}

export interface NewStream {
  readonly table: string
  readonly pk: string | null
  readonly channel: string
  readonly userId: string
  readonly requestId: string
  readonly credentials: Credentials
  readonly tables: Readonly<Record<string, ReadonlyArray<string>>>
  readonly sink: StreamSink
  readonly refreshAt: number
  readonly expiresAt: number
}

const HEARTBEAT = Buffer.from(HEARTBEAT_FRAME)
const SHUTDOWN = Buffer.from(SHUTDOWN_FRAME)
const ERRORS = new Map<ErrorReason, Buffer>()
const errorBytes = (reason: ErrorReason): Buffer => {
  let b = ERRORS.get(reason)
  if (b === undefined) ERRORS.set(reason, (b = Buffer.from(errorFrame(reason))))
  return b
}

export class Hub {
  readonly index = new RoutingIndex<Stream>()
  /** Every open stream, for the sweep and for shutdown (the index is keyed for routing). */
  private readonly streams = new Set<Stream>()
  readonly whitelists = new WhitelistPool()
  private readonly config: HubConfig
  private readonly metrics: MetricsShape
  private readonly log: LogShape
  private readonly now: () => number
  private readonly perUser = new Map<string, number>()
  private nextId = 1
  private oversized: { xid: number; touched: Set<Stream> } | null = null
  /** Increments on every replication session start, so a handshake can tell it straddled a gap. */
  walEpoch = 0
  walStreaming = false
  closing = false
  /** Handshakes holding a global slot but not yet attached. */
  pendingOpens = 0
  onRefreshDue: (s: Stream) => void = () => {}

  constructor(config: HubConfig, metrics: MetricsShape, log: LogShape, now: () => number = Date.now) {
    this.config = config
    this.metrics = metrics
    this.log = log
    this.now = now
  }

  get size(): number {
    return this.index.size
  }

  /** Holds one of the user's stream slots from the handshake's step 8 on; false when the cap is reached. */
  reserveUser(userId: string, cap: number): boolean {
    const n = this.perUser.get(userId) ?? 0
    if (n >= cap) return false
    this.perUser.set(userId, n + 1)
    return true
  }

  releaseUser(userId: string): void {
    const left = (this.perUser.get(userId) ?? 1) - 1
    if (left <= 0) this.perUser.delete(userId)
    else this.perUser.set(userId, left)
  }

  /** Registers a stream whose user slot was reserved by `reserveUser`. */
  attach(n: NewStream): Stream {
    const now = this.now()
    const s: Stream = {
      id: this.nextId++,
      table: n.table,
      pk: n.pk,
      channel: n.channel,
      kind: n.pk === null ? "wildcard" : "exact",
      userId: n.userId,
      requestId: n.requestId,
      credentials: n.credentials,
      sink: n.sink,
      whitelist: this.whitelists.acquire(n.tables),
      lastWriteAt: now,
      written: 0,
      accepted: 0,
      stalledSince: 0,
      refreshAt: n.refreshAt,
      expiresAt: n.expiresAt,
      refreshing: false,
      open: true,
      corked: false,
    }
    this.index.add(s)
    this.streams.add(s)
    this.metrics.subscribersActive.labels(s.kind).inc()
    this.log.info("stream opened", {
      stream_id: s.id,
      channel: s.channel,
      user_id: s.userId,
      request_id: s.requestId,
    })
    return s
  }

  /** Ends a stream once; an error reason sends its terminal frame first. */
  end(s: Stream, reason: DisconnectReason): void {
    if (!s.open) return
    s.open = false
    this.index.remove(s)
    this.streams.delete(s)
    this.whitelists.release(s.whitelist)
    this.releaseUser(s.userId)
    this.metrics.subscribersActive.labels(s.kind).dec()
    this.metrics.disconnects.labels(reason).inc()
    if (reason === "client_closed") s.sink.close()
    else if (reason === "shutdown") {
      this.metrics.eventsSent.labels("shutdown").inc()
      s.sink.close(SHUTDOWN)
    } else {
      this.metrics.eventsSent.labels("error").inc()
      s.sink.close(errorBytes(reason))
    }
    const level = reason === "client_closed" || reason === "shutdown" ? "info" : "warn"
    this.log.log(level, "stream closed", {
      stream_id: s.id,
      channel: s.channel,
      user_id: s.userId,
      request_id: s.requestId,
      reason,
    })
  }

  /** Ends a stream whose backlog or transaction Walera gives up on, counting what it did not deliver. */
  private drop(s: Stream, reason: "slow_consumer" | "tx_too_large"): void {
    this.metrics.txDropped.labels(reason).inc()
    this.end(s, reason)
  }

  replaceWhitelist(s: Stream, tables: Readonly<Record<string, ReadonlyArray<string>>>): void {
    const next = this.whitelists.acquire(tables)
    this.whitelists.release(s.whitelist)
    s.whitelist = next
  }

  private readonly corked: Stream[] = []
  private readonly uncorkAll = () => {
    for (const s of this.corked) {
      s.corked = false
      if (!s.open) continue
      s.sink.uncork()
      // Checked once the tick's events are out of the cork: what the socket still holds is the backlog.
      if (s.sink.pending() > this.config.maxBufferedBytes) this.drop(s, "slow_consumer")
    }
    this.corked.length = 0
  }

  /**
   * Transactions that arrive in one read of the replication socket are dispatched in one tick;
   * corking each socket until the tick ends turns their events into one write per socket
   * instead of one per event (a busy /all stream gets dozens per read).
   */
  private write(s: Stream, bytes: Buffer, now: number): void {
    if (!s.corked) {
      s.corked = true
      s.sink.cork()
      if (this.corked.push(s) === 1) process.nextTick(this.uncorkAll)
    }
    s.sink.write(bytes)
    s.written += bytes.length
    s.lastWriteAt = now
  }

  dispatch(tx: Tx): void {
    const decodedAt = this.now()
    this.metrics.walTx.inc()
    this.metrics.txSize.observe(tx.changes.length)
    this.metrics.walLag.observe(Math.max(0, decodedAt - pgEpochMicrosToUnixMs(tx.commitTime)) / 1000)
    if (tx.fallbacks > 0) this.metrics.valueFallbacks.inc(tx.fallbacks)
    if (this.index.size === 0) return
    const started = performance.now()
    const plan = planTx(tx, this.index)
    if (plan.multiRoot.length > 0) {
      this.metrics.txDropped.labels("multi_root").inc(plan.multiRoot.length)
      this.log.warn("multi-root transaction dropped for its subscribers", {
        tx_id: tx.xid,
        subscribers: plan.multiRoot.length,
        first_channel: plan.multiRoot[0]!.channel,
      })
    }
    let delivered = 0
    for (const audience of plan.audiences) {
      const bytes = Buffer.from(txFrame(tx.xid, audience.json))
      if (bytes.length > this.config.maxPayloadBytes) {
        for (const s of audience.subscribers) this.drop(s, "tx_too_large")
        continue
      }
      for (const s of audience.subscribers) this.write(s, bytes, decodedAt)
      delivered += audience.subscribers.length
    }
    if (delivered > 0) {
      this.metrics.sentTx.inc(delivered)
      this.metrics.fanoutLatency.observe((performance.now() - started) / 1000)
    }
  }

  /** A transaction past router.max_changes_per_tx: remember who it touches, without its changes. */
  spill(xid: number, changes: ReadonlyArray<SpilledChange>): void {
    if (this.oversized === null || this.oversized.xid !== xid) this.oversized = { xid, touched: new Set() }
    const touched = this.oversized.touched
    for (const c of changes) {
      this.index.touched(c.table, c.pk, (s) => {
        if (s.whitelist.tables.has(c.table)) touched.add(s)
      })
    }
  }

  oversizedCommit(xid: number, tables: ReadonlyMap<string, TableTouch>, changeCount: number): void {
    const state = this.oversized
    this.oversized = null
    this.metrics.walTx.inc()
    this.metrics.txSize.observe(changeCount)
    if (state === null || state.xid !== xid) return
    let dropped = 0
    for (const s of state.touched) {
      if (!s.open) continue
      if (tables.get(s.table)?.multi === true) {
        this.metrics.txDropped.labels("multi_root").inc()
        continue
      }
      this.drop(s, "tx_too_large")
      dropped++
    }
    this.log.warn("transaction larger than router.max_changes_per_tx", {
      tx_id: xid,
      changes: changeCount,
      streams_closed: dropped,
    })
  }

  /** Ends the stream when its client went away; built here so it captures nothing of the handshake. */
  detacher(s: Stream): () => void {
    return () => this.end(s, "client_closed")
  }

  /** Replication lost: every open stream now has a gap it cannot see, so each is told and closed. */
  walLost(): void {
    this.walStreaming = false
    this.oversized = null
    for (const s of [...this.streams]) this.end(s, "wal_disconnected")
  }

  walStarted(): void {
    this.walEpoch++
    this.walStreaming = true
  }

  shutdown(): void {
    this.closing = true
    for (const s of [...this.streams]) this.end(s, "shutdown")
  }

  /** Heartbeats, stalled sockets, grant refresh and expiry — one pass over every stream. */
  sweep(now: number): void {
    const heartbeatBefore = now - this.config.heartbeatIntervalMs
    const writeTimeout = this.config.writeTimeoutMs
    let beats = 0
    for (const s of this.streams) {
      const pending = s.sink.pending()
      if (pending > 0) {
        const accepted = s.written - pending
        if (accepted > s.accepted || s.stalledSince === 0) {
          s.accepted = accepted
          s.stalledSince = now
        } else if (now - s.stalledSince >= writeTimeout) {
          this.drop(s, "slow_consumer")
          continue
        }
      } else {
        s.accepted = s.written
        s.stalledSince = 0
      }
      // An expired grant gets one last refresh attempt; its failure ends the stream (auth_unavailable).
      if ((s.refreshAt <= now || s.expiresAt <= now) && !s.refreshing) this.onRefreshDue(s)
      if (!s.open) continue
      if (s.open && s.lastWriteAt <= heartbeatBefore) {
        this.write(s, HEARTBEAT, now)
        beats++
      }
    }
    if (beats > 0) this.metrics.sentHeartbeat.inc(beats)
  }

  get sweepIntervalMs(): number {
    return Math.max(
      50,
      Math.min(1000, Math.floor(Math.min(this.config.heartbeatIntervalMs, this.config.writeTimeoutMs) / 4)),
    )
  }
}

export class HubService extends Context.Service<HubService, Hub>()("walera/Hub") {
  static readonly layer = (config: HubConfig) =>
    Layer.effect(
      HubService,
      Effect.gen(function* () {
        const clock = yield* Clock.Clock
        return new Hub(config, yield* Metrics, yield* Log, () => clock.currentTimeMillisUnsafe())
      }),
    )
}
