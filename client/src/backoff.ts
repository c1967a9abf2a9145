// Reconnect delays: full-jitter exponential backoff for ends nobody announced, and the server's own `retry:` for the
// ends it does announce (a `shutdown` comes with a per-stream random `retry:`, so a restart never becomes a storm).

export type BackoffOptions = {
  /** Cap of the first retry's delay (default 1000 ms). */
  baseMs?: number
  /** Largest cap (default 30 000 ms). */
  maxMs?: number
  /** A stream that stayed open at least this long resets the attempt counter (default 30 000 ms). */
  resetAfterMs?: number
}

/**
 * Full-jitter exponential backoff: uniform in [0, min(maxMs, baseMs · 2^attempt)], but never below `minMs`
 * (a server's `Retry-After`). `attempt` counts from 0.
 */
export const backoffDelayMs = (
  attempt: number,
  backoff: { baseMs: number; maxMs: number },
  minMs = 0,
  random: () => number = Math.random,
): number => {
  const cap = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 52))
  return Math.max(minMs, random() * cap)
}

/**
 * The delay the server asked for with `retry:`, plus up to 10 % so clients handed the same value still spread.
 * Never shorter than asked, as an EventSource would wait.
 */
export const retryDelayMs = (retryMs: number, random: () => number = Math.random): number =>
  retryMs * (1 + 0.1 * random())

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export const parseRetryAfterMs = (value: string | null, now: number = Date.now()): number | undefined => {
  if (value === null) return undefined
  const trimmed = value.trim()
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
