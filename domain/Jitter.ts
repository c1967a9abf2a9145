// When to refresh an auth grant (docs/auth.md): spread over [50 %, 85 %] of its TTL so streams opened together do not
// refresh together, and each refreshes well before it expires. Randomness is passed in.

/**
 * Refresh delay in ms for a grant living `ttlSeconds`: uniform in [0.5 · ttl, 0.85 · ttl] seconds, driven by `random`
 * in [0, 1). A TTL of 0 (or negative / NaN) means never refresh: Infinity.
 */
export const jitteredRefreshDelayMs = (ttlSeconds: number, random: number): number => {
  if (!(ttlSeconds > 0)) return Number.POSITIVE_INFINITY
  const r = random >= 0 ? Math.min(random, 1) : 0 // also maps NaN to 0
  return ttlSeconds * 1000 * (0.5 + 0.35 * r)
}
