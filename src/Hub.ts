// The fan-out: every attached subscriber, the routing index over them, the replay window, and the
// per-transaction hot path (plan → encode once per audience → write the same bytes to each subscriber).
// A sliced sweep handles heartbeats and stalled connections a slice at a time, so a subscriber costs one
// small object and no timer of its own, and heartbeats leave spread over the interval, not in one burst.
// Replication status, admission and grant lifecycle have their own owners; the hub only routes and writes.
import { Clock, Context, Duration, Effect, Layer, Schedule } from "effect"
import {
  type ErrorReason,
  errorFrame,
  HEARTBEAT_FRAME,
  retryFrame,
  SHUTDOWN_FRAME,
  shutdownRetryMs,
  txFrame,
} from "../domain/Frames.ts"
import { WhitelistPool } from "../domain/Grant.ts"
import { LogThrottle } from "../domain/LogThrottle.ts"
import type { SubscriberSink } from "../domain/ports/Gateway.ts"
import { Log, type LogShape } from "../domain/ports/Log.ts"
import {
  type CloseReason,
  Observability,
  type ObservabilityShape,
  type SubscriberKind,
} from "../domain/ports/Observability.ts"
import { ReplayWindow, type WindowLimits } from "../domain/ReplayWindow.ts"
import { planFor, planTx, type Routable, RoutingIndex } from "../domain/Routing.ts"
import type { SpilledChange, TableTouch, Tx } from "../domain/TxAssembler.ts"
import { pgEpochMicrosToUnixMs } from "../domain/ValueMapper.ts"
import { makeWhitelist, type Whitelist } from "../domain/Whitelist.ts"
import { Admission } from "./Admission.ts"

export interface HubConfig {
  readonly heartbeatIntervalMs: number
  readonly writeTimeoutMs: number
  readonly maxBufferedBytes: number
  readonly maxPayloadBytes: number
  /**
   * `keep`: hold transactions whether or not a handshake is in flight, indexed by row (resume on: replays reach far
   * back). Otherwise the window fills only while some handshake needs it and is scanned, so a steady state without
   * opens costs nothing.
   */
  readonly replay: Omit<WindowLimits, "indexed"> & { readonly keep?: boolean }
  /** Subscribers the sweep visits together at most (default SUBSCRIBERS_PER_PASS). */
  readonly subscribersPerPass?: number
}

export interface Subscriber extends Routable {
  readonly id: number
  readonly channel: string
  readonly kind: SubscriberKind
  readonly userId: string
  readonly requestId: string
  readonly sink: SubscriberSink
  whitelist: Whitelist
  lastWriteAt: number
  /** Bytes handed to the sink so far, and how many of them it had accepted at its last sweep. */
  written: number
  accepted: number
  stalledSince: number
  open: boolean
  /** Writes are held back until the end of the current tick (see Hub.write). */
  corked: boolean
}

export interface Joining {
  readonly table: string
  readonly pk: string | null
  readonly channel: string
  readonly userId: string
  readonly requestId: string
  readonly tables: Readonly<Record<string, ReadonlyArray<string>>>
  readonly sink: SubscriberSink
  /** Bytes written before the replay, already counted against the subscriber. */
  readonly prefaceBytes: number
}

/** What a replay from a window position holds for one subscriber. */
export type Replay =
  | { readonly _tag: "Frames"; readonly frames: string; readonly bytes: number; readonly count: number }
  /** The window no longer reaches back that far, or a transaction it passes was too large to hold. */
  | { readonly _tag: "Unavailable" }

const HEARTBEAT = Buffer.from(HEARTBEAT_FRAME)
const SHUTDOWN = Buffer.from(SHUTDOWN_FRAME)
const ERRORS = new Map<ErrorReason, Buffer>()
const errorBytes = (reason: ErrorReason): Buffer => {
  let b = ERRORS.get(reason)
  if (b === undefined) ERRORS.set(reason, (b = Buffer.from(errorFrame(reason))))
  return b
}

/** Sweep slices per cycle: at most one tick per slice, so a cycle's writes can be spread over it. */
export const SWEEP_SLICES = 20
/** Subscribers visited together in one tick at most, before the sweep spreads over more ticks. */
export const SUBSCRIBERS_PER_PASS = 5000

export class Hub {
  readonly index = new RoutingIndex<Subscriber>()
  readonly whitelists = new WhitelistPool()
  readonly window: ReplayWindow
  private readonly slices: Array<Set<Subscriber>> = Array.from({ length: SWEEP_SLICES }, () => new Set())
  private readonly config: HubConfig
  private readonly obs: ObservabilityShape
  private readonly log: LogShape
  /** Milliseconds on a monotonic clock: heartbeats, stalls, the replay window's retention. */
  private readonly now: () => number
  /** Wall-clock milliseconds, only to compare with PostgreSQL's commit timestamps. */
  private readonly wallNow: () => number
  private readonly leave: (userId: string) => void
  private readonly throttle = new LogThrottle(10_000)
  private nextId = 1
  private nextSlice = 0
  private readonly connectionSlices = new WeakMap<object, number>()
  /** Handshakes in flight that will replay from the window. */
  private windowHolders = 0
  private oversized: { xid: number; touched: Set<Subscriber> } | null = null

  constructor(
    config: HubConfig,
    obs: ObservabilityShape,
    log: LogShape,
    leave: (userId: string) => void,
    now: () => number = () => performance.now(),
    wallNow: () => number = Date.now,
  ) {
    this.config = config
    this.obs = obs
    this.log = log
    this.leave = leave
    this.now = now
    this.wallNow = wallNow
    this.window = new ReplayWindow({ ...config.replay, indexed: config.replay.keep === true })
  }

  get size(): number {
    return this.index.size
  }

  /** Time between two visits of the same subscriber by the sweep. */
  get sweepCycleMs(): number {
    return Math.max(
      50,
      Math.min(1000, Math.floor(Math.min(this.config.heartbeatIntervalMs, this.config.writeTimeoutMs) / 4)),
    )
  }

  get sweepTickMs(): number {
    return Math.max(5, Math.floor(this.sweepCycleMs / SWEEP_SLICES))
  }

  private get keepingWindow(): boolean {
    return this.windowHolders > 0 || this.config.replay.keep === true
  }

  /**
   * A handshake begins: from now on every decoded transaction is held until the returned release (at the latest
   * when the handshake attaches or gives up). The position to replay from is the window's position now.
   */
  holdWindow(): { readonly position: number; readonly release: () => void } {
    this.windowHolders++
    let held = true
    return {
      position: this.window.position(),
      release: () => {
        if (!held) return
        held = false
        if (--this.windowHolders === 0 && this.config.replay.keep !== true) {
          this.window.clear()
          this.obs.replayWindow(0, 0)
        }
      },
    }
  }

  /**
   * What the window holds for a subscriber of table/pk with these grants from `position` on, as frames in commit
   * order. Unavailable when the window does not reach back that far or a transaction it passes was not held.
   */
  replay(
    table: string,
    pk: string | null,
    tables: Readonly<Record<string, ReadonlyArray<string>>>,
    position: number,
  ): Replay {
    if (!this.window.reaches(position)) return { _tag: "Unavailable" }
    const entries = this.window.touching(table, pk, position)
    if (entries.length === 0) return { _tag: "Frames", frames: "", bytes: 0, count: 0 }
    const target = { table, pk, whitelist: makeWhitelist(tables) }
    let frames = ""
    let count = 0
    for (const entry of entries) {
      if (entry.tx === null) return { _tag: "Unavailable" }
      const plan = planFor(entry.tx, target)
      if (plan._tag === "MultiRoot") this.obs.txDropped("multi_root", 1)
      if (plan._tag !== "Send") continue
      const frame = txFrame(entry.xid, plan.json)
      if (Buffer.byteLength(frame) > this.config.maxPayloadBytes) return { _tag: "Unavailable" }
      frames += frame
      count++
    }
    return { _tag: "Frames", frames, bytes: Buffer.byteLength(frames), count }
  }

  /** Registers a subscriber whose admission slots were handed over; its end gives them back. */
  attach(j: Joining): Subscriber {
    const now = this.now()
    const s: Subscriber = {
      id: this.nextId++,
      table: j.table,
      pk: j.pk,
      channel: j.channel,
      kind: j.pk === null ? "wildcard" : "exact",
      userId: j.userId,
      requestId: j.requestId,
      sink: j.sink,
      whitelist: this.whitelists.acquire(j.tables),
      lastWriteAt: now,
      written: j.prefaceBytes,
      accepted: 0,
      stalledSince: 0,
      open: true,
      corked: false,
    }
    this.index.add(s)
    this.slices[this.sliceFor(j.sink)]!.add(s)
    this.obs.subscriberOpened(s.kind)
    return s
  }

  /**
   * Round-robin over the slices, so subscribers opened together heartbeat at different ticks — by connection when
   * sinks share one (HTTP/2): a session's subscribers are visited together, so its heartbeats of a tick leave in one
   * write of the session. At 100 000 streams over 1 000 sessions that is about 1 000 socket writes a second for the
   * heartbeats instead of one per session per tick (≈ 5 600), and as many fewer reads for the clients.
   */
  private sliceFor(sink: SubscriberSink): number {
    const connection = sink.connection
    let slice = connection === undefined ? undefined : this.connectionSlices.get(connection)
    if (slice === undefined) {
      slice = this.nextSlice
      this.nextSlice = (this.nextSlice + 1) % SWEEP_SLICES
      if (connection !== undefined) this.connectionSlices.set(connection, slice)
    }
    return slice
  }

  /** Ends a subscriber once; an error reason sends its terminal frame first. */
  end(s: Subscriber, reason: CloseReason, last?: Uint8Array): void {
    if (!s.open) return
    s.open = false
    this.index.remove(s)
    for (const slice of this.slices) if (slice.delete(s)) break
    this.whitelists.release(s.whitelist)
    this.leave(s.userId)
    this.obs.subscriberClosed(s.kind, reason)
    if (reason === "client_closed") s.sink.close()
    else if (reason === "shutdown") {
      this.obs.framesSent("shutdown", 1)
      s.sink.close(last ?? SHUTDOWN)
    } else {
      this.obs.framesSent("error", 1)
      s.sink.close(errorBytes(reason))
    }
    this.logClosed(s, reason)
  }

  /**
   * Clients come and go all day, and a replication loss or a shutdown ends every subscriber at once: those are
   * debug lines (the disconnect metric counts them; the caller logs one summary). What an operator should look at —
   * slow consumers, revocations, oversized transactions — is a warning, at most one per reason every ten seconds.
   */
  private logClosed(s: Subscriber, reason: CloseReason): void {
    const fields = { subscriber_id: s.id, channel: s.channel, user_id: s.userId, request_id: s.requestId, reason }
    if (reason === "client_closed" || reason === "shutdown" || reason === "wal_disconnected") {
      if (this.log.enabled("debug")) this.log.debug("subscriber closed", fields)
      return
    }
    const suppressed = this.throttle.admit(`closed:${reason}`, this.now())
    if (suppressed === undefined) return
    this.log.warn("subscriber closed", { ...fields, similar_suppressed: suppressed })
  }

  /** Ends a subscriber whose backlog or transaction Walera gives up on, counting what it did not deliver. */
  private drop(s: Subscriber, reason: "slow_consumer" | "tx_too_large"): void {
    this.obs.txDropped(reason, 1)
    this.end(s, reason)
  }

  replaceWhitelist(s: Subscriber, tables: Readonly<Record<string, ReadonlyArray<string>>>): void {
    if (!s.open) return
    const next = this.whitelists.acquire(tables)
    this.whitelists.release(s.whitelist)
    s.whitelist = next
  }

  private readonly corked: Subscriber[] = []
  private readonly uncorkAll = () => {
    for (const s of this.corked) {
      s.corked = false
      if (!s.open) continue
      s.sink.uncork()
      // Checked once the tick's events are out of the cork: what the connection still holds is the backlog.
      if (s.sink.pending() > this.config.maxBufferedBytes) this.drop(s, "slow_consumer")
    }
    this.corked.length = 0
  }

  /**
   * Transactions that arrive in one read of the replication socket are dispatched in one tick; corking each
   * subscriber until the tick ends turns their events into one write per connection instead of one per event.
   */
  private write(s: Subscriber, bytes: Buffer, now: number): void {
    if (!s.corked) {
      s.corked = true
      s.sink.cork()
      if (this.corked.push(s) === 1) process.nextTick(this.uncorkAll)
    }
    this.send(s, bytes, now)
  }

  /** Hands bytes to the subscriber's sink and counts them (for the stall check and the heartbeat timer). */
  private send(s: Subscriber, bytes: Buffer, now: number): void {
    s.sink.write(bytes)
    s.written += bytes.length
    s.lastWriteAt = now
  }

  dispatch(tx: Tx): void {
    const decodedAt = this.now()
    this.obs.txDecoded(tx.changes.length, Math.max(0, this.wallNow() - pgEpochMicrosToUnixMs(tx.commitTime)) / 1000)
    if (tx.fallbacks > 0) this.obs.valuesSentAsText(tx.fallbacks)
    if (this.keepingWindow) {
      this.window.append(tx, decodedAt)
      this.obs.replayWindow(this.window.size, this.window.bytes)
    }
    if (this.index.size === 0) return
    const started = performance.now()
    const plan = planTx(tx, this.index)
    if (plan.multiRoot.length > 0) {
      this.obs.txDropped("multi_root", plan.multiRoot.length)
      const suppressed = this.throttle.admit("multi_root", decodedAt)
      if (suppressed !== undefined) {
        this.log.warn("multi-root transaction dropped for its subscribers", {
          tx_id: tx.xid,
          subscribers: plan.multiRoot.length,
          first_channel: plan.multiRoot[0]!.channel,
          similar_suppressed: suppressed,
        })
      }
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
      this.obs.framesSent("tx", delivered)
      this.obs.txDelivered(delivered, (performance.now() - started) / 1000)
    }
  }

  /** A transaction past the size limits: remember who it touches, without its changes. */
  spill(xid: number, changes: ReadonlyArray<SpilledChange>): void {
    if (this.oversized === null || this.oversized.xid !== xid) this.oversized = { xid, touched: new Set() }
    const touched = this.oversized.touched
    for (const c of changes) {
      this.index.touched(c.table, c.pk, (s) => {
        if (s.whitelist.tables.has(c.table)) touched.add(s)
      })
    }
  }

  /**
   * A transaction past the size limits committed: every subscriber it touches gets tx_too_large — those seen while
   * it was spilled, and those that attached since to a row it touched — and the window remembers it, so no
   * handshake in flight can open past it without the gap being signalled.
   */
  oversizedCommit(
    xid: number,
    tables: ReadonlyMap<string, TableTouch>,
    changeCount: number,
    commitTime: bigint,
    limit: string,
  ): void {
    const state = this.oversized
    this.oversized = null
    const now = this.now()
    this.obs.txDecoded(changeCount, Math.max(0, this.wallNow() - pgEpochMicrosToUnixMs(commitTime)) / 1000)
    if (this.keepingWindow) {
      this.window.appendOversized(xid, tables, now)
      this.obs.replayWindow(this.window.size, this.window.bytes)
    }
    const touched = state !== null && state.xid === xid ? state.touched : new Set<Subscriber>()
    for (const [table, touch] of tables) {
      if (touch.multi) continue
      this.index.touched(table, touch.firstPk, (s) => {
        if (s.whitelist.tables.has(table)) touched.add(s)
      })
    }
    let dropped = 0
    for (const s of touched) {
      if (!s.open) continue
      if (tables.get(s.table)?.multi === true) {
        this.obs.txDropped("multi_root", 1)
        continue
      }
      this.drop(s, "tx_too_large")
      dropped++
    }
    this.log.warn(`transaction larger than ${limit}`, { tx_id: xid, changes: changeCount, subscribers_closed: dropped })
  }

  /** Ends the subscriber when its client went away; built here so it captures nothing of the handshake. */
  detacher(s: Subscriber): () => void {
    return () => this.end(s, "client_closed")
  }

  /** Replication lost: every subscriber now has a gap it cannot see, so each is told and closed. */
  replicationLost(): void {
    this.oversized = null
    this.window.clear()
    this.obs.replayWindow(0, 0)
    const told = this.size
    for (const slice of this.slices) for (const s of [...slice]) this.end(s, "wal_disconnected")
    if (told > 0) this.log.warn("replication lost: every subscriber was told wal_disconnected", { subscribers: told })
  }

  /** Sends every subscriber its own reconnect delay in [1 s, spreadMs], then `shutdown`, and ends it. */
  shutdown(spreadMs: number, random: () => number): void {
    const told = this.size
    if (told > 0)
      this.log.info("sending shutdown to every subscriber", { subscribers: told, reconnect_spread_ms: spreadMs })
    for (const slice of this.slices) {
      for (const s of [...slice]) {
        const last = Buffer.from(retryFrame(shutdownRetryMs(spreadMs, random())) + SHUTDOWN_FRAME)
        this.end(s, "shutdown", last)
      }
    }
  }

  private sweepTicks = 0

  /**
   * One tick of the sweep (every sweepTickMs). The subscribers are visited in SWEEP_SLICES slices over each cycle,
   * but only as finely as the load needs: up to SUBSCRIBERS_PER_PASS subscribers are visited together, so a small
   * instance does one pass per cycle, and at 100 000 streams every tick takes its slice — the heartbeats of a cycle
   * then leave in twenty small bursts instead of one large one that would delay the transactions behind it.
   */
  sweepTick(now: number): void {
    const perPass = this.config.subscribersPerPass ?? SUBSCRIBERS_PER_PASS
    const passes = Math.min(SWEEP_SLICES, Math.max(1, Math.ceil(this.size / perPass)))
    const every = Math.floor(SWEEP_SLICES / passes)
    const tick = this.sweepTicks++ % SWEEP_SLICES
    if (tick % every !== 0) return
    this.window.expire(now)
    const last = Math.min(tick + every, SWEEP_SLICES)
    for (let i = tick; i < last; i++) this.sweepSlice(this.slices[i]!, now)
  }

  /** How long the subscriber's connection has accepted none of its unsent bytes (0: it has none, or it moved). */
  private stalledFor(s: Subscriber, now: number): number {
    const pending = s.sink.pending()
    if (pending === 0) {
      s.accepted = s.written
      s.stalledSince = 0
      return 0
    }
    const accepted = s.written - pending
    if (accepted > s.accepted || s.stalledSince === 0) {
      s.accepted = accepted
      s.stalledSince = now
      return 0
    }
    return now - s.stalledSince
  }

  private sweepSlice(slice: Set<Subscriber>, now: number): void {
    const heartbeatBefore = now - this.config.heartbeatIntervalMs
    const writeTimeout = this.config.writeTimeoutMs
    let beats = 0
    for (const s of slice) {
      // A sink that had nothing pending at the last look and was given nothing since still has nothing pending: only
      // ask the others. At 100 000 subscribers most are idle, and reaching into every connection's buffers each cycle
      // (several objects scattered over a large heap per subscriber) made the sweep a fifth of the process's CPU.
      if ((s.written !== s.accepted || s.stalledSince !== 0) && this.stalledFor(s, now) >= writeTimeout) {
        this.drop(s, "slow_consumer")
        continue
      }
      if (s.lastWriteAt <= heartbeatBefore) {
        // One write per subscriber in this tick: nothing to batch, so no cork (a heartbeat is most writes at 100 000
        // mostly idle subscribers). A write into a cork taken earlier in the tick still leaves in order.
        this.send(s, HEARTBEAT, now)
        beats++
      }
    }
    if (beats > 0) this.obs.framesSent("heartbeat", beats)
  }

  /** Every subscriber, for shutdown and tests. */
  *subscribers(): Generator<Subscriber> {
    for (const slice of this.slices) yield* slice
  }
}

/**
 * Milliseconds on the clock's monotonic time, for durations (heartbeats, stalls, retention, grant refresh and expiry):
 * a step of the wall clock (NTP, a virtual machine restored from a snapshot) does not move them.
 */
export const monotonicMillis = (clock: Clock.Clock) => (): number =>
  Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)

export class HubService extends Context.Service<HubService, Hub>()("walera/Hub") {
  static readonly layer = (config: HubConfig) =>
    Layer.effect(
      HubService,
      Effect.gen(function* () {
        const clock = yield* Clock.Clock
        const admission = yield* Admission
        const monotonicMs = monotonicMillis(clock)
        const hub = new Hub(config, yield* Observability, yield* Log, admission.leave, monotonicMs, () =>
          clock.currentTimeMillisUnsafe(),
        )
        const tick = Effect.sync(() => hub.sweepTick(monotonicMs()))
        yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced(Duration.millis(hub.sweepTickMs))))
        return hub
      }),
    )
}
