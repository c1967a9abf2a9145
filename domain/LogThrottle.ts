// Rate limit for log lines about things that can happen once per request or per transaction (refused opens,
// auth failures, multi-root drops): at most one line per key and period, with the count of lines it stood for,
// so an attacker cannot flood the logs and an operator still sees that it happens (metrics count each one).

export class LogThrottle {
  private readonly periodMs: number
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(periodMs: number) {
    this.periodMs = periodMs
  }

  /** undefined: stay silent; a number: log now, mentioning how many similar lines were left out since the last. */
  admit(key: string, now: number): number | undefined {
    const seen = this.last.get(key)
    if (seen === undefined || now - seen.at >= this.periodMs) {
      const suppressed = seen?.suppressed ?? 0
      if (this.last.size > 1000) this.last.clear()
      this.last.set(key, { at: now, suppressed: 0 })
      return suppressed
    }
    seen.suppressed++
    return undefined
  }
}
