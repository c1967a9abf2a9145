// Pins the reconnect delay arithmetic: full jitter within its cap, never under Retry-After, and the server's own
// retry: honoured with at most 10 % added.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { backoffDelayMs, parseRetryAfterMs, retryDelayMs } from "../../client/src/index.ts"

describe("backoffDelayMs and parseRetryAfterMs", () => {
  it("property: full jitter within [max(min, 0), max(min, min(maxMs, baseMs·2^attempt))]", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 2000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.nat({ max: 60_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, maxMs, minMs, r) => {
          const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 52))
          const d = backoffDelayMs(attempt, { baseMs, maxMs }, minMs, () => r)
          expect(d).toBeGreaterThanOrEqual(minMs)
          expect(d).toBeLessThanOrEqual(Math.max(minMs, cap))
          expect(Number.isFinite(d)).toBe(true)
        },
      ),
    )
    expect(backoffDelayMs(0, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(500)
    expect(backoffDelayMs(3, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(4000)
    expect(backoffDelayMs(10, { baseMs: 1000, maxMs: 30_000 }, 0, () => 0.5)).toBe(15_000)
  })

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfterMs("5")).toBe(5000)
    expect(parseRetryAfterMs(" 0 ")).toBe(0)
    expect(parseRetryAfterMs(null)).toBeUndefined()
    expect(parseRetryAfterMs("soon")).toBeUndefined()
    const now = Date.parse("2026-05-18T08:30:00Z")
    expect(parseRetryAfterMs("Mon, 18 May 2026 08:30:10 GMT", now)).toBe(10_000)
    expect(parseRetryAfterMs("Mon, 18 May 2026 08:29:10 GMT", now)).toBe(0)
  })

  it("property: a server retry: is never shortened and gets at most 10 % added", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 120_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (retry, r) => {
          const d = retryDelayMs(retry, () => r)
          expect(d).toBeGreaterThanOrEqual(retry)
          expect(d).toBeLessThan(retry * 1.1 + 1e-9)
        },
      ),
    )
    expect(retryDelayMs(12_000, () => 0.5)).toBe(12_600)
  })
})
