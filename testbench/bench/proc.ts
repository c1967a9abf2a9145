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
}

export const machineCpu = (): MachineCpu => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  return { busy: total - idle, total }
}

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
  readonly cpu: Record<string, number>
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
}

/** Samples named process groups every second; CPU of a group that lost processes may dip (cumulative counters). */
export class Sampler {
  readonly groups = new Map<string, () => number[]>()
  readonly samples: Snapshot[] = []
  private timer: NodeJS.Timeout | undefined

  track(name: string, pids: () => number[]): void {
    this.groups.set(name, pids)
  }

  snapshot(): Snapshot {
    const cpu: Record<string, number> = {}
    const rss: Record<string, number> = {}
    for (const [name, pids] of this.groups) {
      let c = 0
      let r = 0
      for (const pid of pids()) {
        if (pid === process.pid) {
          const u = process.cpuUsage()
          c += (u.user + u.system) / 1e6
          r += process.memoryUsage.rss()
        } else {
          c += cpuSeconds(pid)
          r += rssBytes(pid)
        }
      }
      cpu[name] = c
      rss[name] = r
    }
    return { t: performance.now(), cpu, rss, machine: machineCpu() }
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
    for (const name of Object.keys(b.cpu)) {
      const used = Math.max(0, (b.cpu[name] ?? 0) - (a.cpu[name] ?? 0))
      cpuSecondsOut[name] = used
      avg[name] = seconds > 0 ? (100 * used) / seconds : 0
      let p = 0
      let r = 0
      for (let i = 1; i < inside.length; i++) {
        const dt = (inside[i]!.t - inside[i - 1]!.t) / 1000
        if (dt >= 0.5) p = Math.max(p, (100 * ((inside[i]!.cpu[name] ?? 0) - (inside[i - 1]!.cpu[name] ?? 0))) / dt)
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
    }
  }
}
