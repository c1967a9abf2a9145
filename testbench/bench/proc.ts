// /proc readers and a 1 s sampler for the bench: CPU time and RSS of named process groups plus whole-machine CPU.
import { readdirSync, readFileSync } from "node:fs"

const CLK_TCK = 100

/** utime + stime of a process, in seconds (0 when it is gone). */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** VmRSS in bytes (0 when the process is gone). */
export const rssBytes = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

export interface MachineCpu {
  readonly busy: number
  readonly total: number
  readonly softirq: number
  readonly steal: number
}

export const machineCpu = (): MachineCpu => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  return { busy: total - idle, total, softirq: v[6] ?? 0, steal: v[7] ?? 0 }
}

/** Every process on the box (for the "other" group: CPU used by processes the bench did not start). */
export const allPids = (): number[] =>
  readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)

/** Every process whose command name is exactly `name` (e.g. the PostgreSQL backends). */
export const pidsNamed = (name: string): number[] => {
  const out: number[] = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) out.push(Number(entry))
    } catch {}
  }
  return out
}

export interface Snapshot {
  readonly t: number
  /** CPU seconds so far per group (sum over its live processes) */
  readonly cpu: Record<string, number>
  /** CPU seconds so far per group and process, so exited processes do not make a window negative */
  readonly perPid: Record<string, Map<number, number>>
  readonly rss: Record<string, number>
  readonly machine: MachineCpu
}

export interface WindowStats {
  readonly seconds: number
  /** CPU seconds used in the window, per group */
  readonly cpuSeconds: Record<string, number>
  /** average and peak (over 1 s samples) CPU in % of one core, per group */
  readonly cpuAvgPct: Record<string, number>
  readonly cpuPeakPct: Record<string, number>
  readonly rssPeak: Record<string, number>
  /** whole machine busy %, of all cores */
  readonly machineBusyAvgPct: number
  readonly machineBusyPeakPct: number
  /** kernel softirq and hypervisor steal, % of one core */
  readonly softirqPct: number
  readonly stealPct: number
}

/** Samples named process groups every second; CPU of a group that lost processes may dip (cumulative counters). */
export class Sampler {
  readonly groups = new Map<string, () => number[]>()
  readonly samples: Snapshot[] = []
  private timer: NodeJS.Timeout | undefined

  /** Adds a group; the special group "other" (every remaining process) is always evaluated last. */
  track(name: string, pids: () => number[]): void {
    this.groups.set(name, pids)
    const other = this.groups.get("other")
    if (other !== undefined && name !== "other") {
      this.groups.delete("other")
      this.groups.set("other", other)
    }
  }

  snapshot(): Snapshot {
    const cpu: Record<string, number> = {}
    const perPid: Record<string, Map<number, number>> = {}
    const rss: Record<string, number> = {}
    const seen = new Set<number>()
    for (const [name, pids] of this.groups) {
      let c = 0
      let r = 0
      const list = name === "other" ? allPids().filter((p) => !seen.has(p)) : pids()
      const byPid = new Map<number, number>()
      for (const pid of list) {
        seen.add(pid)
        let used: number
        if (pid === process.pid) {
          const u = process.cpuUsage()
          used = (u.user + u.system) / 1e6
          r += process.memoryUsage.rss()
        } else {
          used = cpuSeconds(pid)
          r += rssBytes(pid)
        }
        byPid.set(pid, used)
        c += used
      }
      cpu[name] = c
      perPid[name] = byPid
      rss[name] = r
    }
    return { t: performance.now(), cpu, perPid, rss, machine: machineCpu() }
  }

  start(): void {
    this.samples.push(this.snapshot())
    this.timer = setInterval(() => this.samples.push(this.snapshot()), 1000)
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }

  window(a: Snapshot, b: Snapshot): WindowStats {
    const seconds = (b.t - a.t) / 1000
    const cpuSecondsOut: Record<string, number> = {}
    const avg: Record<string, number> = {}
    const peak: Record<string, number> = {}
    const rssPeak: Record<string, number> = {}
    const inside = [a, ...this.samples.filter((s) => s.t > a.t && s.t < b.t), b]
    /** CPU used between x and y by the processes alive at y (a process born in between counts from zero). */
    const used = (x: Snapshot, y: Snapshot, name: string) => {
      const before = x.perPid[name] ?? new Map<number, number>()
      let sum = 0
      for (const [pid, v] of y.perPid[name] ?? []) sum += Math.max(0, v - (before.get(pid) ?? 0))
      return sum
    }
    for (const name of Object.keys(b.cpu)) {
      let usedSum = 0
      for (let i = 1; i < inside.length; i++) usedSum += used(inside[i - 1]!, inside[i]!, name)
      const usedTotal = usedSum
      cpuSecondsOut[name] = usedTotal
      avg[name] = seconds > 0 ? (100 * usedTotal) / seconds : 0
      let p = 0
      let r = 0
      for (let i = 1; i < inside.length; i++) {
        const dt = (inside[i]!.t - inside[i - 1]!.t) / 1000
        if (dt >= 0.5) p = Math.max(p, (100 * used(inside[i - 1]!, inside[i]!, name)) / dt)
      }
      for (const s of inside) r = Math.max(r, s.rss[name] ?? 0)
      peak[name] = p
      rssPeak[name] = r
    }
    const busy = (x: Snapshot, y: Snapshot) =>
      y.machine.total > x.machine.total
        ? (100 * (y.machine.busy - x.machine.busy)) / (y.machine.total - x.machine.total)
        : 0
    let machinePeak = 0
    for (let i = 1; i < inside.length; i++) machinePeak = Math.max(machinePeak, busy(inside[i - 1]!, inside[i]!))
    return {
      seconds,
      cpuSeconds: cpuSecondsOut,
      cpuAvgPct: avg,
      cpuPeakPct: peak,
      rssPeak,
      machineBusyAvgPct: busy(a, b),
      machineBusyPeakPct: machinePeak,
      softirqPct: seconds > 0 ? (b.machine.softirq - a.machine.softirq) / seconds : 0,
      stealPct: seconds > 0 ? (b.machine.steal - a.machine.steal) / seconds : 0,
    }
  }
}
