// Reconnect delay for the replication connection (docs/operations.md, "Replication"): capped exponential backoff with "equal jitter", so a
// fleet of instances losing PostgreSQL together does not reconnect in lockstep. Randomness is passed in.

export interface BackoffOptions {
  /** Delay before jitter for attempt 0; default 1000 ms. */
  readonly baseMs?: number
  /** Cap on the delay; default 30 000 ms. */
  readonly maxMs?: number
}

/**
 * Delay before reconnect attempt `attempt` (0-based): d = min(baseMs · 2^attempt, maxMs), result uniform in
 * [d/2, d] driven by `random` in [0, 1). Never below 1 ms, never above maxMs, and huge attempts simply cap.
 */
export const reconnectDelayMs = (attempt: number, random: number, options?: BackoffOptions): number => {
  const maxMs = Math.max(1, options?.maxMs ?? 30_000)
  const baseMs = Math.max(0, options?.baseMs ?? 1000)
  const exponent = Number.isNaN(attempt) ? 0 : Math.max(attempt, 0)
  const r = random >= 0 ? Math.min(random, 1) : 0 // also maps NaN to 0
  // 2^exponent may be Infinity (exponent ≥ 1024); Math.min caps it. 0 · Infinity is NaN, hence the guard.
  const d = baseMs === 0 ? 0 : Math.min(baseMs * 2 ** exponent, maxMs)
  const half = d / 2
  return Math.min(maxMs, Math.max(1, half + r * half))
}
