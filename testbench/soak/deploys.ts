// What a rolling deploy cost: the reconnect wave of the stopped process's clients (when they came
// back, how many per second, how many were refused) and the auth backend's load meanwhile. This is
// what shutdown.reconnect_spread is for (docs/reliability.md), so each deploy is measured on its own.
import type { DeployMeasure } from "./report.ts"
import type { Incarnation, StreamRec } from "./types.ts"

export interface DeployRecord {
  readonly inc: Incarnation
  readonly tSig: number
  readonly spreadMs: number
  readonly exitMs: number
  readonly restartMs: number
  readonly streamsAtSigterm: number
}

const iso = (t: number) => new Date(t).toISOString().slice(11, 23)

export const measureDeploy = (
  d: DeployRecord,
  streams: ReadonlyArray<StreamRec>,
  perSecond: ReadonlyMap<number, { open: number; refresh: number; probe: number }>,
  faults: ReadonlyArray<{ t: number; kind: string }>,
): DeployMeasure => {
  const windowMs = Math.max(d.spreadMs, 15_000) + 10_000
  const end = d.tSig + windowMs
  let peakOpen = 0
  let peakAll = 0
  for (const [sec, c] of perSecond) {
    if (sec * 1000 < d.tSig || sec * 1000 > end) continue
    peakOpen = Math.max(peakOpen, c.open)
    peakAll = Math.max(peakAll, c.open + c.refresh + c.probe)
  }
  const inWindow = streams.filter((s) => s.tReq >= d.tSig && s.tReq <= end)
  const refused = inWindow.filter((s) => s.status >= 400)
  const refusedByStatus: Record<string, number> = {}
  for (const s of refused) refusedByStatus[s.status] = (refusedByStatus[s.status] ?? 0) + 1

  // The wave: each client told `shutdown` by this process, and its next request.
  const byClient = new Map<number, StreamRec[]>()
  for (const s of streams) {
    let l = byClient.get(s.client)
    if (l === undefined) byClient.set(s.client, (l = []))
    l.push(s)
  }
  for (const l of byClient.values()) l.sort((a, b) => a.tReq - b.tReq)
  const retries: number[] = []
  const delays: number[] = []
  const perSecondWave = new Map<number, number>()
  const waveRefused: Record<string, number> = {}
  let shutdownFrames = 0
  for (const s of streams) {
    if (s.instance !== d.inc.id || s.status !== 200) continue
    const i = s.frames.findIndex((f) => f.event === "shutdown")
    if (i < 0) continue
    shutdownFrames++
    const shutdownAt = s.frames[i]!.t
    // Its own `retry:` block right before the frame (i > 1: not the prelude's), or a `retry:` line inside it.
    const before = s.frames[i - 1]
    const own = s.frames[i]!.retry ?? (i > 1 && before?.event === "retry" ? before.retry : undefined)
    if (own !== undefined) retries.push(own)
    const mine = byClient.get(s.client) ?? []
    const next = mine[mine.indexOf(s) + 1]
    if (next === undefined) continue
    delays.push(next.tReq - shutdownAt)
    const sec = Math.floor((next.tReq - d.tSig) / 1000)
    perSecondWave.set(sec, (perSecondWave.get(sec) ?? 0) + 1)
    if (next.status >= 400) waveRefused[next.status] = (waveRefused[next.status] ?? 0) + 1
  }
  delays.sort((a, b) => a - b)
  const q = (p: number) =>
    delays.length === 0 ? 0 : Math.round(delays[Math.min(delays.length - 1, Math.floor(p * delays.length))]!)
  return {
    incarnation: d.inc.id,
    spread: d.spreadMs === 1000 ? "1s" : "30s (default)",
    at: iso(d.tSig),
    exitMs: d.exitMs,
    exitCode: d.inc.exitCode,
    restartMs: d.restartMs,
    streamsAtSigterm: d.streamsAtSigterm,
    shutdownFrames,
    retryBeforeShutdownMs: {
      min: retries.length === 0 ? 0 : Math.min(...retries),
      max: retries.length === 0 ? 0 : Math.max(...retries),
      count: retries.length,
    },
    wave: {
      reconnects: delays.length,
      peakPerSec: Math.max(0, ...perSecondWave.values()),
      delayMs: { p50: q(0.5), p90: q(0.9), max: q(1) },
      refusedByStatus: waveRefused,
    },
    windowSeconds: windowMs / 1000,
    peakOpenCallsPerSec: peakOpen,
    peakAuthCallsPerSec: peakAll,
    opensInWindow: inWindow.length,
    refusedInWindow: refused.length,
    refusedByStatus,
    overlappedFaults: faults.filter((f) => f.t > d.tSig + 100 && f.t < end).map((f) => f.kind),
  }
}
