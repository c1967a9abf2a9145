// Circuit breaker for auth-backend calls (docs/auth.md, "Circuit breaker") as immutable state and plain
// functions, so the caller owns the clock, the storage and the cooldown timer, and every transition is testable
// without timers. The cooldown is an explicit transition (`halfOpen`) that the caller schedules.

export type BreakerStatus = "closed" | "open" | "half_open"

export interface BreakerConfig {
  /** Length of the sliding window; counted in whole 1-second buckets (ceil(windowMs / 1000), at least 1). */
  readonly windowMs: number
  /** Fewest calls in the window before the breaker may open. */
  readonly minSamples: number
  /** Opens when failures / samples is strictly greater than this. */
  readonly failureRatio: number
  /** How long the breaker stays open before one probe is let through. */
  readonly cooldownMs: number
}

/** Outcomes of the calls that finished within one wall-clock second (`second` = floor(ms / 1000)). */
export interface BreakerBucket {
  readonly second: number
  readonly successes: number
  readonly failures: number
}

export interface BreakerState {
  readonly status: BreakerStatus
  /** When the breaker last opened; meaningful only while open or half-open. */
  readonly openedAtMs: number
  /** Half-open only: the single probe call has been handed out and its outcome is not yet recorded. */
  readonly probeInFlight: boolean
  /** Ring of 1-second buckets indexed by second mod length; a bucket older than the window counts as empty. */
  readonly buckets: ReadonlyArray<BreakerBucket>
}

export interface BreakerAcquire {
  readonly allowed: boolean
  /** The call is the half-open probe: its outcome decides, and abandoning it must be reported (`abandon`). */
  readonly probe: boolean
  readonly state: BreakerState
  /** When refused: ms until the breaker half-opens (0 while a probe is in flight); 0 when allowed. Never negative. */
  readonly retryAfterMs: number
}

export interface BreakerView {
  readonly status: BreakerStatus
  /** Open: ms left of the cooldown (0 once it has passed); otherwise 0. */
  readonly retryAfterMs: number
}

export interface BreakerWindow {
  readonly samples: number
  readonly failures: number
}

const EMPTY_BUCKET: BreakerBucket = { second: Number.NEGATIVE_INFINITY, successes: 0, failures: 0 }

const emptyBuckets = (count: number): ReadonlyArray<BreakerBucket> => new Array<BreakerBucket>(count).fill(EMPTY_BUCKET)

const bucketCount = (config: BreakerConfig): number => Math.max(1, Math.ceil(config.windowMs / 1000))

const secondOf = (nowMs: number): number => Math.floor(nowMs / 1000)

const slotOf = (second: number, length: number): number => ((second % length) + length) % length

export const initialBreaker = (config: BreakerConfig): BreakerState => ({
  status: "closed",
  openedAtMs: 0,
  probeInFlight: false,
  buckets: emptyBuckets(bucketCount(config)),
})

/** Samples and failures in the window ending at nowMs (the current second and the length - 1 before it). */
export const windowCounts = (state: BreakerState, nowMs: number): BreakerWindow => {
  const buckets = state.buckets
  const oldest = secondOf(nowMs) - buckets.length
  let samples = 0
  let failures = 0
  for (let i = 0; i < buckets.length; i++) {
    const bucket = buckets[i]!
    if (bucket.second > oldest) {
      samples += bucket.successes + bucket.failures
      failures += bucket.failures
    }
  }
  return { samples, failures }
}

const cooldownLeftMs = (state: BreakerState, config: BreakerConfig, nowMs: number): number =>
  Math.max(0, state.openedAtMs + config.cooldownMs - nowMs)

/**
 * Asks to make a call at nowMs. closed → allowed. open → refused (retryAfterMs = cooldown left) until `halfOpen`
 * runs. half_open → exactly one probe allowed (probeInFlight); everyone else is refused while it is in flight.
 * Every allowed call is followed by exactly one `record`, or by `abandon` when the caller gave up on it.
 */
export const acquire = (state: BreakerState, config: BreakerConfig, nowMs: number): BreakerAcquire => {
  switch (state.status) {
    case "closed":
      return { allowed: true, probe: false, state, retryAfterMs: 0 }
    case "open":
      return { allowed: false, probe: false, state, retryAfterMs: cooldownLeftMs(state, config, nowMs) }
    case "half_open":
      if (state.probeInFlight) return { allowed: false, probe: false, state, retryAfterMs: 0 }
      return { allowed: true, probe: true, state: { ...state, probeInFlight: true }, retryAfterMs: 0 }
  }
}

/** The cooldown has passed (the caller's timer): open → half_open, ready to hand out one probe. */
export const halfOpen = (state: BreakerState): BreakerState =>
  state.status === "open" ? { ...state, status: "half_open", probeInFlight: false } : state

/**
 * An allowed call was given up by its caller (the client went away): it says nothing about the backend. A probe
 * given up leaves the breaker half-open for the next caller; any other call is simply not a sample.
 */
export const abandon = (state: BreakerState, probe: boolean): BreakerState =>
  probe && state.status === "half_open" && state.probeInFlight ? { ...state, probeInFlight: false } : state

const addSample = (state: BreakerState, nowMs: number, success: boolean): BreakerState => {
  const second = secondOf(nowMs)
  const length = state.buckets.length
  const slot = slotOf(second, length)
  const current = state.buckets[slot]!
  // A slot holding an older second is reused; one holding a newer second (clock stepped back) absorbs the sample.
  const base = current.second < second ? { second, successes: 0, failures: 0 } : current
  const next: BreakerBucket = success
    ? { second: base.second, successes: base.successes + 1, failures: base.failures }
    : { second: base.second, successes: base.successes, failures: base.failures + 1 }
  const buckets = state.buckets.slice()
  buckets[slot] = next
  return { ...state, buckets }
}

/**
 * Records the outcome of an allowed call, at nowMs. closed: counted in the window; opens (openedAtMs = nowMs) when
 * the window holds ≥ minSamples calls and failures / samples > failureRatio. half_open: the probe's outcome —
 * success closes with an empty window, failure reopens with a fresh cooldown. Outcomes of calls that started before
 * the breaker opened (not the probe) are ignored while it is open or half-open.
 */
export const record = (
  state: BreakerState,
  config: BreakerConfig,
  nowMs: number,
  success: boolean,
  probe = false,
): BreakerState => {
  switch (state.status) {
    case "open":
      return state
    case "half_open":
      if (!probe || !state.probeInFlight) return state
      return success
        ? {
            status: "closed",
            openedAtMs: state.openedAtMs,
            probeInFlight: false,
            buckets: emptyBuckets(state.buckets.length),
          }
        : { ...state, status: "open", openedAtMs: nowMs, probeInFlight: false }
    case "closed": {
      const next = addSample(state, nowMs, success)
      const { samples, failures } = windowCounts(next, nowMs)
      if (samples >= config.minSamples && failures > config.failureRatio * samples) {
        return { ...next, status: "open", openedAtMs: nowMs }
      }
      return next
    }
  }
}

/** Status at nowMs without acquiring: an open breaker whose cooldown timer has not fired yet reports retryAfterMs 0. */
export const view = (state: BreakerState, config: BreakerConfig, nowMs: number): BreakerView =>
  state.status === "open"
    ? { status: "open", retryAfterMs: cooldownLeftMs(state, config, nowMs) }
    : { status: state.status, retryAfterMs: 0 }

/** Metric value for a status: closed 0, open 1, half_open 2 (the walera_auth_circuit_breaker_state gauge). */
export const statusGauge = (status: BreakerStatus): number => (status === "closed" ? 0 : status === "open" ? 1 : 2)
