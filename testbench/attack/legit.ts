// The legitimate client that keeps using Walera while an attack runs: open a stream, commit a
// transaction, wait for it on the stream, close, repeat. What it sees is the verdict of an attack.
import http from "node:http"
import type pg from "pg"

export interface LegitStats {
  opensOk: number
  refused: number
  /** Opens with no answer within the timeout, or a connection error. */
  failed: number
  delivered: number
  /** Opened, but the committed transaction did not arrive within the timeout. */
  missed: number
  readonly statuses: Map<number, number>
  readonly openMs: number[]
  readonly deliverMs: number[]
}

export const emptyStats = (): LegitStats => ({
  opensOk: 0,
  refused: 0,
  failed: 0,
  delivered: 0,
  missed: 0,
  statuses: new Map(),
  openMs: [],
  deliverMs: [],
})

interface Open {
  readonly status: number
  readonly retryAfter: number
  readonly received: () => string
  readonly close: () => void
}

const open = (url: string, headers: Record<string, string>, timeoutMs: number): Promise<Open | undefined> =>
  new Promise((resolve) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      clearTimeout(timer)
      let received = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => {
        received += c
        if (received.length > 1_000_000) received = received.slice(-100_000)
      })
      res.on("error", () => {})
      resolve({
        status: res.statusCode ?? 0,
        retryAfter: Number(res.headers["retry-after"] ?? 0),
        received: () => received,
        close: () => {
          req.destroy()
          res.destroy()
        },
      })
    })
    const timer = setTimeout(() => {
      req.destroy()
      resolve(undefined)
    }, timeoutMs)
    req.on("error", () => {
      clearTimeout(timer)
      resolve(undefined)
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface LegitOptions {
  readonly url: string
  readonly token: string
  readonly db: pg.Pool
  /** Row of orders the client subscribes to and updates. */
  readonly pk: number
  readonly timeoutMs?: number
}

let sequence = 0

/** One open → commit → receive round; returns false when the open was refused or failed. */
export const legitRound = async (options: LegitOptions, stats: LegitStats): Promise<boolean> => {
  const timeoutMs = options.timeoutMs ?? 5000
  const started = performance.now()
  const s = await open(
    `${options.url}/sse/v1/orders/${options.pk}`,
    { authorization: `Bearer ${options.token}` },
    timeoutMs,
  )
  if (s === undefined) {
    stats.failed++
    stats.statuses.set(0, (stats.statuses.get(0) ?? 0) + 1)
    await sleep(250)
    return false
  }
  stats.statuses.set(s.status, (stats.statuses.get(s.status) ?? 0) + 1)
  if (s.status !== 200) {
    s.close()
    stats.refused++
    // Like a real client: honour Retry-After, but never wait so long that the run stops measuring.
    await sleep(Math.min(1000, Math.max(250, s.retryAfter * 1000)))
    return false
  }
  stats.opensOk++
  stats.openMs.push(performance.now() - started)
  const marker = `legit-${process.pid}-${++sequence}`
  const committed = performance.now()
  try {
    await options.db.query("UPDATE orders SET status = $1 WHERE id = $2", [marker, options.pk])
    const deadline = performance.now() + timeoutMs
    while (!s.received().includes(marker) && performance.now() < deadline) await sleep(10)
    if (s.received().includes(marker)) {
      stats.delivered++
      stats.deliverMs.push(performance.now() - committed)
    } else stats.missed++
  } catch {
    stats.missed++
  } finally {
    s.close()
  }
  return true
}

/** Keeps doing rounds until stopped; resolves when the last round has finished. */
export const runLegit = (options: LegitOptions, stats: LegitStats) => {
  let stopped = false
  const done = (async () => {
    while (!stopped) {
      await legitRound(options, stats)
      await sleep(200)
    }
  })()
  return {
    stop: async () => {
      stopped = true
      await done
    },
  }
}

export const percentile = (values: ReadonlyArray<number>, p: number): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** "ok 41 / refused 3 / failed 0, delivered 41; open p50 12 ms max 480 ms" */
export const describeStats = (s: LegitStats): string => {
  const p50 = percentile(s.openMs, 50)
  const max = s.openMs.length === 0 ? undefined : Math.max(...s.openMs)
  const refusedBy = [...s.statuses].filter(([status]) => status !== 200 && status !== 0)
  const by = refusedBy.length === 0 ? "" : ` (${refusedBy.map(([k, v]) => `${v}×${k}`).join(", ")})`
  const latency = p50 === undefined ? "" : `; open p50 ${Math.round(p50)} ms, max ${Math.round(max ?? 0)} ms`
  const missed = s.missed > 0 ? `, MISSED ${s.missed}` : ""
  return `ok ${s.opensOk} / refused ${s.refused}${by} / failed ${s.failed}; delivered ${s.delivered}${missed}${latency}`
}
