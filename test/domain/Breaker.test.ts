import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  abandon,
  acquire,
  halfOpen,
  type BreakerConfig,
  type BreakerState,
  initialBreaker,
  record,
  statusGauge,
  view,
  windowCounts,
} from "../../domain/Breaker.ts"

const config: BreakerConfig = { windowMs: 30_000, minSamples: 20, failureRatio: 0.5, cooldownMs: 30_000 }

const recordMany = (state: BreakerState, nowMs: number, successes: number, failures: number): BreakerState => {
  let s = state
  for (let i = 0; i < successes; i++) s = record(s, config, nowMs, true)
  for (let i = 0; i < failures; i++) s = record(s, config, nowMs, false)
  return s
}

const opened = (nowMs: number): BreakerState => {
  const s = recordMany(initialBreaker(config), nowMs, 0, 20)
  expect(s.status).toBe("open")
  return s
}

describe("Breaker: closed → open", () => {
  it("starts closed and allows calls", () => {
    const s = initialBreaker(config)
    expect(s.status).toBe("closed")
    expect(s.buckets.length).toBe(30)
    const a = acquire(s, config, 0)
    expect(a.allowed).toBe(true)
    expect(a.retryAfterMs).toBe(0)
    expect(view(s, config, 0)).toEqual({ status: "closed", retryAfterMs: 0 })
  })

  it("stays closed with 19 failures of 19 samples when minSamples is 20", () => {
    const s = recordMany(initialBreaker(config), 1_000, 0, 19)
    expect(s.status).toBe("closed")
    expect(windowCounts(s, 1_000)).toEqual({ samples: 19, failures: 19 })
  })

  it("opens with 11 failures of 20 samples", () => {
    const s = recordMany(initialBreaker(config), 1_000, 9, 11)
    expect(s.status).toBe("open")
    expect(s.openedAtMs).toBe(1_000)
  })

  it("stays closed with 10 failures of 20 samples (ratio must be strictly greater)", () => {
    const s = recordMany(initialBreaker(config), 1_000, 10, 10)
    expect(s.status).toBe("closed")
  })

  it("opens on the sample that reaches minSamples when the ratio is already above the threshold", () => {
    let s = recordMany(initialBreaker(config), 1_000, 0, 15)
    s = recordMany(s, 1_500, 4, 0)
    expect(s.status).toBe("closed")
    s = record(s, config, 2_000, true)
    expect(s.status).toBe("open")
    expect(s.openedAtMs).toBe(2_000)
  })

  it("counts samples spread over the window's buckets", () => {
    let s = initialBreaker(config)
    for (let i = 0; i < 20; i++) s = record(s, config, i * 1_000 + 500, i % 2 === 0)
    expect(windowCounts(s, 19_500)).toEqual({ samples: 20, failures: 10 })
    expect(s.status).toBe("closed")
    s = record(s, config, 20_000, false)
    expect(s.status).toBe("open")
  })

  it("lets old samples leave the window", () => {
    let s = recordMany(initialBreaker(config), 0, 0, 15)
    expect(windowCounts(s, 29_999)).toEqual({ samples: 15, failures: 15 })
    expect(windowCounts(s, 30_000)).toEqual({ samples: 0, failures: 0 })
    // 15 old failures + 5 new would open; once the old ones have left, 5 new failures stay closed.
    s = recordMany(s, 30_000, 0, 5)
    expect(s.status).toBe("closed")
    expect(windowCounts(s, 30_000)).toEqual({ samples: 5, failures: 5 })
    // Within the window they still count.
    const inside = recordMany(recordMany(initialBreaker(config), 0, 0, 15), 29_999, 0, 5)
    expect(inside.status).toBe("open")
  })

  it("reuses a ring slot whose second has left the window", () => {
    let s = recordMany(initialBreaker(config), 2_000, 3, 4)
    s = record(s, config, 32_000, false) // same slot as second 2, one full ring later
    expect(windowCounts(s, 32_000)).toEqual({ samples: 1, failures: 1 })
  })

  it("does not mutate the previous state", () => {
    const s0 = initialBreaker(config)
    const before = JSON.stringify(s0)
    record(s0, config, 1_000, false)
    acquire(opened(0), config, 40_000)
    expect(JSON.stringify(s0)).toBe(before)
  })
})

describe("Breaker: open → half_open → closed/open", () => {
  it("refuses while open, with a decreasing retryAfterMs", () => {
    const s = opened(10_000)
    const a1 = acquire(s, config, 11_000)
    const a2 = acquire(s, config, 30_000)
    const a3 = acquire(s, config, 39_999)
    expect([a1.allowed, a2.allowed, a3.allowed]).toEqual([false, false, false])
    expect([a1.retryAfterMs, a2.retryAfterMs, a3.retryAfterMs]).toEqual([29_000, 10_000, 1])
    expect(a1.state).toBe(s)
    expect(view(s, config, 30_000)).toEqual({ status: "open", retryAfterMs: 10_000 })
  })

  it("view past the cooldown still reports open with retryAfterMs 0", () => {
    const s = opened(0)
    expect(view(s, config, 45_000)).toEqual({ status: "open", retryAfterMs: 0 })
  })

  it("ignores outcomes recorded while open", () => {
    const s = opened(0)
    expect(record(s, config, 1_000, true)).toBe(s)
    expect(record(s, config, 1_000, false)).toBe(s)
  })

  it("stays open past the cooldown until halfOpen runs, then allows exactly one probe", () => {
    const s = opened(0)
    expect(acquire(s, config, 90_000)).toMatchObject({ allowed: false, retryAfterMs: 0 })
    const probe = acquire(halfOpen(s), config, 30_000)
    expect(probe.allowed).toBe(true)
    expect(probe.probe).toBe(true)
    expect(probe.state.status).toBe("half_open")
    expect(probe.state.probeInFlight).toBe(true)
    const second = acquire(probe.state, config, 30_001)
    expect(second.allowed).toBe(false)
    expect(second.retryAfterMs).toBe(0)
    expect(acquire(probe.state, config, 90_000).allowed).toBe(false)
    expect(view(probe.state, config, 30_001)).toEqual({ status: "half_open", retryAfterMs: 0 })
  })

  it("closes with an empty window when the probe succeeds", () => {
    const probe = acquire(halfOpen(opened(0)), config, 30_000)
    const s = record(probe.state, config, 30_500, true, true)
    expect(s.status).toBe("closed")
    expect(s.probeInFlight).toBe(false)
    expect(windowCounts(s, 30_500)).toEqual({ samples: 0, failures: 0 })
    // The 20 failures that opened it are gone: one failure now does not reopen.
    const after = record(s, config, 31_000, false)
    expect(after.status).toBe("closed")
    expect(acquire(after, config, 31_000).allowed).toBe(true)
  })

  it("reopens with a fresh cooldown when the probe fails", () => {
    const probe = acquire(halfOpen(opened(0)), config, 30_000)
    const s = record(probe.state, config, 31_000, false, true)
    expect(s.status).toBe("open")
    expect(s.openedAtMs).toBe(31_000)
    expect(s.probeInFlight).toBe(false)
    const refused = acquire(s, config, 32_000)
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterMs).toBe(29_000)
  })

  it("an abandoned probe leaves the breaker half-open for the next caller", () => {
    const probe = acquire(halfOpen(opened(0)), config, 30_000)
    const left = abandon(probe.state, true)
    expect(left).toMatchObject({ status: "half_open", probeInFlight: false })
    expect(acquire(left, config, 30_100)).toMatchObject({ allowed: true, probe: true })
  })

  it("ignores a late outcome of a call that started before the breaker opened", () => {
    const probe = acquire(halfOpen(opened(0)), config, 30_000)
    expect(record(probe.state, config, 30_100, false, false)).toBe(probe.state)
    expect(abandon(probe.state, false)).toBe(probe.state)
  })

  it("maps statuses to gauge values", () => {
    expect([statusGauge("closed"), statusGauge("open"), statusGauge("half_open")]).toEqual([0, 1, 2])
  })

  it("uses at least one bucket", () => {
    const tiny: BreakerConfig = { windowMs: 0, minSamples: 1, failureRatio: 0.5, cooldownMs: 0 }
    const s = initialBreaker(tiny)
    expect(s.buckets.length).toBe(1)
    expect(record(s, tiny, 0, false).status).toBe("open")
  })
})

type Event = { readonly advanceMs: number } & (
  | { readonly kind: "acquire" }
  | { readonly kind: "finish"; readonly index: number; readonly success: boolean }
  | { readonly kind: "abandon"; readonly index: number }
)

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ advanceMs: fc.integer({ min: 0, max: 4_000 }), kind: fc.constant("acquire" as const) }),
  fc.record({ advanceMs: fc.integer({ min: 0, max: 4_000 }), kind: fc.constant("abandon" as const), index: fc.nat() }),
  fc.record({
    advanceMs: fc.integer({ min: 0, max: 4_000 }),
    kind: fc.constant("finish" as const),
    index: fc.nat(),
    success: fc.boolean(),
  }),
)

const configArb: fc.Arbitrary<BreakerConfig> = fc.record({
  windowMs: fc.integer({ min: 0, max: 20_000 }),
  minSamples: fc.integer({ min: 0, max: 25 }),
  failureRatio: fc.constantFrom(0, 0.25, 0.5, 0.75, 1),
  cooldownMs: fc.integer({ min: 0, max: 10_000 }),
})

describe("Breaker: properties", () => {
  it("never opens below minSamples or at/below the ratio, and never hands out two concurrent probes", () => {
    fc.assert(
      fc.property(configArb, fc.array(eventArb, { maxLength: 300 }), (cfg, events) => {
        let state = initialBreaker(cfg)
        let now = 0
        let probeOutstanding = false
        const inFlight: Array<boolean> = []
        for (const event of events) {
          now += event.advanceMs
          // The caller's cooldown timer.
          if (state.status === "open" && now >= state.openedAtMs + cfg.cooldownMs) state = halfOpen(state)
          if (event.kind === "abandon") {
            if (inFlight.length > 0) {
              const [wasProbe] = inFlight.splice(event.index % inFlight.length, 1)
              state = abandon(state, wasProbe!)
              if (wasProbe) probeOutstanding = false
            }
          } else if (event.kind === "acquire") {
            const before = state.status
            const result = acquire(state, cfg, now)
            expect(result.retryAfterMs).toBeGreaterThanOrEqual(0)
            if (result.allowed && before !== "closed") {
              expect(probeOutstanding).toBe(false)
              expect(result.state.status).toBe("half_open")
              probeOutstanding = true
            }
            if (!result.allowed) expect(result.state).toBe(state)
            state = result.state
            if (result.allowed) inFlight.push(result.probe)
          } else if (inFlight.length > 0) {
            const [wasProbe] = inFlight.splice(event.index % inFlight.length, 1)
            const before = state.status
            const next = record(state, cfg, now, event.success, wasProbe)
            if (before === "closed" && next.status === "open") {
              const { samples, failures } = windowCounts(next, now)
              expect(samples).toBeGreaterThanOrEqual(cfg.minSamples)
              expect(failures / samples).toBeGreaterThan(cfg.failureRatio)
            }
            if (before === "closed" && next.status === "closed") {
              const { samples, failures } = windowCounts(next, now)
              expect(samples < cfg.minSamples || failures <= cfg.failureRatio * samples).toBe(true)
            }
            if (before === "open") expect(next).toBe(state)
            if (before === "half_open" && wasProbe) {
              expect(next.status).toBe(event.success ? "closed" : "open")
              probeOutstanding = false
            }
            if (before === "half_open" && !wasProbe) expect(next).toBe(state)
            state = next
          }
          expect(state.probeInFlight).toBe(state.status === "half_open" && probeOutstanding)
          expect(statusGauge(view(state, cfg, now).status)).toBe(statusGauge(state.status))
        }
      }),
      { numRuns: 300 },
    )
  })
})
