import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { reconnectDelayMs } from "../../domain/Backoff.ts"
import { jitteredRefreshDelayMs } from "../../domain/Jitter.ts"

const randomArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })

describe("reconnectDelayMs", () => {
  it("doubles from 1 s and caps at 30 s with equal jitter", () => {
    expect(reconnectDelayMs(0, 0)).toBe(500)
    expect(reconnectDelayMs(0, 0.5)).toBe(750)
    expect(reconnectDelayMs(1, 0)).toBe(1_000)
    expect(reconnectDelayMs(4, 0)).toBe(8_000)
    expect(reconnectDelayMs(5, 0)).toBe(15_000) // 32 s capped to 30 s
    expect(reconnectDelayMs(5, 0.999_999)).toBeLessThanOrEqual(30_000)
    expect(reconnectDelayMs(2, 0, { baseMs: 100, maxMs: 1_000 })).toBe(200)
  })

  it("does not overflow for huge attempts (2^1000 and 2^1024 = Infinity still cap)", () => {
    for (const attempt of [1_000, 1_024, 5_000, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY]) {
      const d = reconnectDelayMs(attempt, 0.5)
      expect(Number.isFinite(d)).toBe(true)
      expect(d).toBe(22_500)
    }
  })

  it("stays ≥ 1 ms and finite for odd inputs", () => {
    expect(reconnectDelayMs(-3, 0)).toBe(500)
    expect(reconnectDelayMs(Number.NaN, Number.NaN)).toBe(500)
    expect(reconnectDelayMs(0, 0, { baseMs: 0 })).toBe(1)
    expect(reconnectDelayMs(0, 0, { baseMs: 1 })).toBe(1)
  })

  it("property: within [d/2, d] for d = min(base·2^a, max), and ≤ max", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), randomArb, (attempt, random) => {
        const d = Math.min(1000 * 2 ** attempt, 30_000)
        const delay = reconnectDelayMs(attempt, random)
        expect(delay).toBeGreaterThanOrEqual(d / 2)
        expect(delay).toBeLessThanOrEqual(d)
        expect(delay).toBeLessThanOrEqual(30_000)
        expect(delay).toBeGreaterThanOrEqual(1)
      }),
    )
  })

  it("property: custom base and max are respected", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        randomArb,
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (attempt, random, baseMs, maxMs) => {
          const d = Math.min(baseMs * 2 ** attempt, maxMs)
          const delay = reconnectDelayMs(attempt, random, { baseMs, maxMs })
          expect(delay).toBeGreaterThanOrEqual(Math.max(1, d / 2))
          expect(delay).toBeLessThanOrEqual(Math.max(1, d))
          expect(delay).toBeLessThanOrEqual(maxMs)
        },
      ),
    )
  })
})

describe("jitteredRefreshDelayMs", () => {
  it("spreads refreshes over [50 %, 85 %] of the TTL", () => {
    expect(jitteredRefreshDelayMs(60, 0)).toBe(30_000)
    expect(jitteredRefreshDelayMs(60, 0.5)).toBeCloseTo(40_500, 6)
    expect(jitteredRefreshDelayMs(60, 0.999_999_999)).toBeLessThanOrEqual(51_000)
  })

  it("never refreshes a TTL of 0", () => {
    expect(jitteredRefreshDelayMs(0, 0.3)).toBe(Number.POSITIVE_INFINITY)
    expect(jitteredRefreshDelayMs(-1, 0.3)).toBe(Number.POSITIVE_INFINITY)
  })

  it("property: within [0.5·ttl, 0.85·ttl] seconds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 86_400 * 365 }), randomArb, (ttl, random) => {
        const delay = jitteredRefreshDelayMs(ttl, random)
        const eps = 1e-6
        expect(delay).toBeGreaterThanOrEqual(ttl * 500 - eps)
        expect(delay).toBeLessThanOrEqual(ttl * 850 + eps)
        expect(delay).toBeLessThan(ttl * 1000)
      }),
    )
  })

  it("spreads 10 000 simultaneous opens over the whole jitter range", () => {
    const delays = Array.from({ length: 10_000 }, (_, i) => jitteredRefreshDelayMs(60, i / 10_000))
    expect(Math.min(...delays)).toBe(30_000)
    expect(Math.max(...delays)).toBeGreaterThan(50_990)
    expect(new Set(delays.map((d) => Math.floor(d / 1_000))).size).toBe(21) // seconds 30..50
  })
})
