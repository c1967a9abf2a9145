// Resource tracking for the soak: every 2 s, per Walera process, RSS and open fds from /proc and
// heap, streams, event-loop delay and the multi-root counter from /metrics; the replication slot
// count from PostgreSQL. The trend test decides whether memory grew in a way load does not explain.
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import http from "node:http"

export interface Sample {
  readonly t: number
  readonly instance: string
  readonly rss: number
  readonly fds: number
  readonly heap: number | null
  readonly streams: number | null
  readonly loopLagP99: number | null
  readonly multiRoot: number | null
}

export const rssOf = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

export const fdsOf = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return 0
  }
}

export interface FdBreakdown {
  readonly total: number
  /** fds that are not sockets (pipes, eventfd, epoll, files) */
  readonly nonSocket: number
  /** TCP connections by role: accepted on Walera's port, to the auth backend, to PostgreSQL, anything else */
  readonly sse: number
  readonly auth: number
  readonly pg: number
  readonly otherTcp: number
}

/** A process's fds by role, so idle keep-alive connections to the auth backend are not mistaken for leaked streams. */
export const fdBreakdown = (pid: number, ports: { walera: number; auth: number; pg: number }): FdBreakdown | null => {
  let total = 0
  let sockets = 0
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      total++
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++
      } catch {}
    }
  } catch {
    return null
  }
  let sse = 0
  let auth = 0
  let pgConns = 0
  let otherTcp = 0
  try {
    const ss = execFileSync("ss", ["-tanpH"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 })
    for (const line of ss.split("\n")) {
      if (!line.includes(`pid=${pid},`)) continue
      const cols = line.trim().split(/\s+/)
      if (cols[0] === "LISTEN") continue
      const local = Number(cols[3]?.slice(cols[3].lastIndexOf(":") + 1))
      const peer = Number(cols[4]?.slice(cols[4].lastIndexOf(":") + 1))
      if (local === ports.walera) sse++
      else if (peer === ports.auth) auth++
      else if (peer === ports.pg) pgConns++
      else otherTcp++
    }
  } catch {}
  return { total, nonSocket: total - sockets, sse, auth, pg: pgConns, otherTcp }
}

/** Prometheus text → series → value (labels kept as written). */
export const parseMetrics = (text: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const sp = line.lastIndexOf(" ")
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)))
  }
  return out
}

/** One GET /metrics on its own connection (a kept-alive one would look like an open stream in the fd count). */
export const scrape = (url: string): Promise<Map<string, number> | null> =>
  new Promise((resolve) => {
    const req = http.get(`${url}/metrics`, { agent: false, timeout: 3000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => {
        body += c
      })
      res.on("end", () => resolve(res.statusCode === 200 ? parseMetrics(body) : null))
      res.on("error", () => resolve(null))
    })
    req.on("timeout", () => req.destroy())
    req.on("error", () => resolve(null))
  })

export const streamsOf = (m: Map<string, number>): number =>
  (m.get('walera_subscribers_active{type="exact"}') ?? 0) + (m.get('walera_subscribers_active{type="wildcard"}') ?? 0)

export const MULTI_ROOT = 'walera_tx_dropped_total{reason="multi_root"}'

export interface Fit {
  /** Growth per minute not explained by the number of open streams. */
  readonly slopePerMin: number
  /** slopePerMin × the window's length. */
  readonly growth: number
  readonly minutes: number
  readonly points: number
}

/**
 * Least squares y = a + b·t + c·x (x = open streams, when given): b is the drift in time with the
 * load held constant. Solved by the normal equations, small enough to write out.
 */
export const fitDrift = (points: ReadonlyArray<{ t: number; y: number; x?: number }>): Fit | null => {
  const n = points.length
  if (n < 4) return null
  const t0 = points[0]!.t
  const useX = points.every((p) => p.x !== undefined) && new Set(points.map((p) => p.x)).size > 1
  const rows = points.map((p) => (useX ? [1, (p.t - t0) / 60_000, p.x!] : [1, (p.t - t0) / 60_000]))
  const k = rows[0]!.length
  const ata = Array.from({ length: k }, () => new Array<number>(k).fill(0))
  const aty = new Array<number>(k).fill(0)
  rows.forEach((r, i) => {
    for (let a = 0; a < k; a++) {
      aty[a]! += r[a]! * points[i]!.y
      for (let b = 0; b < k; b++) ata[a]![b]! += r[a]! * r[b]!
    }
  })
  const beta = solve(ata, aty)
  if (beta === null) return null
  const minutes = (points[n - 1]!.t - t0) / 60_000
  return { slopePerMin: beta[1]!, growth: beta[1]! * minutes, minutes, points: n }
}

const solve = (m: number[][], v: number[]): number[] | null => {
  const n = v.length
  const a = m.map((row, i) => [...row, v[i]!])
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r
    if (Math.abs(a[p]![c]!) < 1e-12) return null
    ;[a[c], a[p]] = [a[p]!, a[c]!]
    for (let r = 0; r < n; r++) {
      if (r === c) continue
      const f = a[r]![c]! / a[c]![c]!
      for (let k = c; k <= n; k++) a[r]![k]! -= f * a[c]![k]!
    }
  }
  return a.map((row, i) => row[n]! / row[i]!)
}

/** The heap's floor: the lowest sample per bucket (garbage collection makes the rest a sawtooth). */
export const floors = (
  samples: ReadonlyArray<{ t: number; y: number; x?: number }>,
  bucketMs: number,
): Array<{ t: number; y: number; x?: number }> => {
  const out = new Map<number, { t: number; y: number; x?: number }>()
  for (const s of samples) {
    const b = Math.floor(s.t / bucketMs)
    const cur = out.get(b)
    if (cur === undefined || s.y < cur.y) out.set(b, s)
  }
  return [...out.values()].sort((a, b) => a.t - b.t)
}
