// The soak's leak test separates growth over time from growth with load: a heap that follows the
// stream count is not a leak, a heap that climbs while the count stays put is.
import { describe, expect, it } from "vitest"
import { fitDrift, floors } from "../../testbench/soak/monitor.ts"

const minute = 60_000

describe("fitDrift", () => {
  it("finds the growth per minute with the stream count held constant", () => {
    const points = Array.from({ length: 30 }, (_, i) => {
      const streams = [100, 900, 300, 50, 700][i % 5]!
      return { t: i * 20_000, y: 40e6 + 2e6 * ((i * 20_000) / minute) + 30_000 * streams, x: streams }
    })
    const fit = fitDrift(points)!
    expect(fit.slopePerMin).toBeCloseTo(2e6, -3)
    expect(fit.growth).toBeCloseTo(2e6 * fit.minutes, -3)
  })

  it("does not read a heap that follows the stream count as drift", () => {
    const points = Array.from({ length: 30 }, (_, i) => {
      const streams = i < 15 ? 100 + i * 50 : 850 - (i - 15) * 50
      return { t: i * 20_000, y: 40e6 + 30_000 * streams, x: streams }
    })
    expect(Math.abs(fitDrift(points)!.slopePerMin)).toBeLessThan(1)
  })

  it("needs a few points", () => {
    expect(fitDrift([{ t: 0, y: 1 }])).toBeNull()
  })
})

describe("floors", () => {
  it("keeps the lowest sample of each bucket", () => {
    const f = floors(
      [
        { t: 0, y: 5 },
        { t: 1000, y: 3 },
        { t: 25_000, y: 9 },
        { t: 30_000, y: 7 },
      ],
      20_000,
    )
    expect(f.map((p) => p.y)).toEqual([3, 7])
  })
})
