// A label-less Prometheus histogram for the hot path. prom-client's `observe` validates labels, hashes them and
// indexes its buckets by the bound turned into a string: about 1 µs per call, three calls per transaction. Here an
// observation is a scan of a few bounds and two additions; the registry renders it exactly as prom-client renders
// its own histogram (the same `_bucket{le}`, `_sum`, `_count` lines), which test/adapters/FastHistogram.test.ts pins.
import type { Metric, Registry } from "prom-client"

/** What the registry reads from a metric to render it (prom-client's own histograms return the same shape). */
interface Rendered {
  readonly name: string
  readonly help: string
  readonly type: "histogram"
  readonly aggregator: "sum"
  readonly values: ReadonlyArray<{
    readonly labels: Readonly<Record<string, string | number>>
    readonly value: number
    readonly metricName: string
  }>
}

export class FastHistogram {
  readonly type = "histogram" as const
  readonly aggregator = "sum" as const
  private readonly bounds: Float64Array
  /** Observations per bucket, not cumulative; the last slot is above every bound (+Inf). */
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  readonly name: string
  readonly help: string

  constructor(name: string, help: string, buckets: ReadonlyArray<number>, registry: Registry) {
    this.name = name
    this.help = help
    for (let i = 1; i < buckets.length; i++)
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must be strictly increasing`)
    this.bounds = Float64Array.from(buckets)
    this.counts = new Float64Array(this.bounds.length + 1)
    // The registry only reads name, type, get() and reset(); prom-client's type asks for a whole Metric class.
    registry.registerMetric(this as unknown as Metric)
  }

  observe(value: number): void {
    // A clock step can make a duration NaN or infinite; a metric must never throw into the caller's path.
    if (!Number.isFinite(value)) return
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]! += 1
    this.sum += value
    this.count += 1
  }

  reset(): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }

  get(): Promise<Rendered> {
    const values: Array<Rendered["values"][number]> = []
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!
      values.push({ labels: { le: this.bounds[i]! }, value: cumulative, metricName: `${this.name}_bucket` })
    }
    values.push({ labels: { le: "+Inf" }, value: this.count, metricName: `${this.name}_bucket` })
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` })
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` })
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values })
  }
}
