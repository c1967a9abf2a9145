// HDR-style latency histogram with fixed log buckets: 0.1 ms resolution up to ~100 ms, ≤ 0.1 % error above, up to 60 s.
// Plain Float64Array counts so histograms from several load-generator processes can be summed.

/** Values are stored in ticks of 0.1 ms. Below SUB ticks every tick has its own bucket. */
const SUB = 1024
const HALF = SUB / 2
const MAX_TICKS = 600_000 // 60 s
const MAX_EXP = Math.ceil(Math.log2(MAX_TICKS)) - 9

export const BUCKETS = SUB + MAX_EXP * HALF

const indexOf = (ticks: number): number => {
  if (ticks < SUB) return ticks
  const exp = Math.min(31 - Math.clz32(ticks) - 9, MAX_EXP)
  const sub = Math.min(ticks >>> exp, SUB - 1)
  return SUB + (exp - 1) * HALF + (sub - HALF)
}

/** Upper edge of a bucket, in ms. */
const upperMs = (index: number): number => {
  if (index < SUB) return (index + 1) / 10
  const exp = Math.floor((index - SUB) / HALF) + 1
  const sub = ((index - SUB) % HALF) + HALF
  return ((sub + 1) * 2 ** exp) / 10
}

export interface Summary {
  readonly count: number
  readonly minMs: number
  readonly meanMs: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

export class Histogram {
  counts: Float64Array
  count = 0
  sumMs = 0
  minMs = Number.POSITIVE_INFINITY
  maxMs = 0

  constructor(counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(BUCKETS)
    if (counts !== undefined) for (let i = 0; i < counts.length; i++) this.count += counts[i]!
  }

  record(ms: number): void {
    const v = Math.max(0, ms)
    const ticks = Math.min(Math.floor(v * 10), MAX_TICKS)
    this.counts[indexOf(ticks)]! += 1
    this.count++
    this.sumMs += v
    if (v < this.minMs) this.minMs = v
    if (v > this.maxMs) this.maxMs = v
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.sumMs = 0
    this.minMs = Number.POSITIVE_INFINITY
    this.maxMs = 0
  }

  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!
    this.count += other.count
    this.sumMs += other.sumMs
    this.minMs = Math.min(this.minMs, other.minMs)
    this.maxMs = Math.max(this.maxMs, other.maxMs)
  }

  /** Upper bucket edge of the q-quantile (0..1), in ms; capped by the observed maximum. */
  quantile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(upperMs(i), this.maxMs)
    }
    return this.maxMs
  }

  summary(): Summary {
    return {
      count: this.count,
      minMs: this.count === 0 ? 0 : this.minMs,
      meanMs: this.count === 0 ? 0 : this.sumMs / this.count,
      p50Ms: this.quantile(0.5),
      p90Ms: this.quantile(0.9),
      p99Ms: this.quantile(0.99),
      p999Ms: this.quantile(0.999),
      maxMs: this.maxMs,
    }
  }

  /** A plain object that survives structured clone / JSON (for IPC between processes). */
  toJSON(): { counts: number[]; sumMs: number; minMs: number; maxMs: number } {
    return { counts: Array.from(this.counts), sumMs: this.sumMs, minMs: this.minMs, maxMs: this.maxMs }
  }

  static fromJSON(o: { counts: ArrayLike<number>; sumMs: number; minMs: number | null; maxMs: number }): Histogram {
    const h = new Histogram(Float64Array.from(o.counts))
    h.sumMs = o.sumMs
    h.minMs = o.minMs ?? Number.POSITIVE_INFINITY
    h.maxMs = o.maxMs
    return h
  }
}
