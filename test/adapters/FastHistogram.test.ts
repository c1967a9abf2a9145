// The hot-path histogram must be indistinguishable on /metrics from prom-client's own: dashboards, alert rules and
// the black-box checks read these lines.
import fc from "fast-check"
import { Histogram, Registry } from "prom-client"
import { describe, expect, it } from "vitest"
import { FastHistogram } from "../../adapters/metrics/FastHistogram.ts"

const render = async (buckets: ReadonlyArray<number>, observations: ReadonlyArray<number>) => {
  const ours = new Registry()
  const theirs = new Registry()
  const fast = new FastHistogram("walera_test_seconds", "Test histogram.", buckets, ours)
  const reference = new Histogram({
    name: "walera_test_seconds",
    help: "Test histogram.",
    buckets: [...buckets],
    registers: [theirs],
  })
  for (const v of observations) {
    fast.observe(v)
    reference.observe(v)
  }
  return { ours: await ours.metrics(), theirs: await theirs.metrics(), fast, reference }
}

const bound = fc.oneof(
  fc.constantFrom(0.00005, 0.0001, 0.0025, 0.005, 0.1, 1, 2.5, 10, 100_000),
  fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }),
)

describe("FastHistogram", () => {
  it("renders exactly the lines prom-client's histogram renders, for any buckets and observations", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .uniqueArray(bound, { minLength: 1, maxLength: 14, comparator: "SameValueZero" })
          .map((b) => b.sort((x, y) => x - y)),
        fc.array(fc.oneof(bound, fc.integer({ min: -5, max: 200_000 })), { maxLength: 200 }),
        async (buckets, observations) => {
          const { ours, theirs } = await render(buckets, observations)
          expect(ours).toBe(theirs)
        },
      ),
      { numRuns: 200 },
    )
  })

  it("shows zeroed buckets before the first observation, and again after a reset", async () => {
    const { ours, theirs, fast } = await render([0.1, 1], [])
    expect(ours).toBe(theirs)
    expect(ours).toContain('walera_test_seconds_bucket{le="+Inf"} 0')
    fast.observe(0.5)
    fast.reset()
    expect((await fast.get()).values.map((v) => v.value)).toEqual([0, 0, 0, 0, 0])
  })

  it("refuses buckets that are not strictly increasing (prom-client would render them out of order)", () => {
    expect(() => new FastHistogram("walera_test_seconds", "Test histogram.", [1, 0.5], new Registry())).toThrow(
      /strictly increasing/,
    )
  })

  it("ignores a value that is not a finite number instead of throwing into the caller", async () => {
    const registry = new Registry()
    const fast = new FastHistogram("walera_test_seconds", "Test histogram.", [1], registry)
    fast.observe(Number.NaN)
    fast.observe(Number.POSITIVE_INFINITY)
    fast.observe(0.5)
    const text = await registry.metrics()
    expect(text).toContain("walera_test_seconds_count 1")
    expect(text).toContain("walera_test_seconds_sum 0.5")
  })
})
