// The soak's fault schedule: which failure happens when. One cycle holds every kind once; a short
// run squeezes one cycle into its length, a long run repeats it. Rolling deploys get a longer slot
// so their reconnect wave can be measured before the next fault.

export type FaultKind =
  | "walsender_kill_a"
  | "walsender_kill_b"
  | "pg_restart_fast"
  | "pg_restart_immediate"
  | "auth_down"
  | "auth_slow"
  | "auth_sluggish"
  | "auth_garbage"
  | "auth_5xx"
  | "deploy_default_spread"
  | "deploy_short_spread"
  | "client_storm"

export const CYCLE: ReadonlyArray<FaultKind> = [
  "auth_5xx",
  "deploy_default_spread",
  "client_storm",
  "walsender_kill_a",
  "pg_restart_fast",
  "auth_sluggish",
  "deploy_short_spread",
  "auth_slow",
  "pg_restart_immediate",
  "auth_garbage",
  "walsender_kill_b",
  "auth_down",
]

export interface Planned {
  /** ms after the chaos phase began */
  readonly at: number
  readonly kind: FaultKind
  /** how long an auth fault lasts */
  readonly lasts: number
}

const FAULT_SLOT_MS = 20_000
const DEPLOY_SLOT_MS = 45_000

export const isDeploy = (k: FaultKind) => k === "deploy_default_spread" || k === "deploy_short_spread"

/** Faults for a chaos phase of `chaosMs`, each at its offset from the phase's start. */
export const planFaults = (chaosMs: number): Planned[] => {
  const cycleMs = CYCLE.reduce((a, k) => a + (isDeploy(k) ? DEPLOY_SLOT_MS : FAULT_SLOT_MS), 0)
  const usable = Math.max(0, chaosMs - 2000)
  const scale = Math.min(1, usable / cycleMs)
  const out: Planned[] = []
  let at = 2000
  for (let i = 0; ; i++) {
    const kind = CYCLE[i % CYCLE.length]!
    const slot = Math.max(3500, (isDeploy(kind) ? DEPLOY_SLOT_MS : FAULT_SLOT_MS) * scale)
    if (at > usable && i > 0) break
    out.push({ at: Math.round(at), kind, lasts: Math.round(Math.min(8000, Math.max(3000, slot * 0.5))) })
    at += slot
  }
  return out
}
