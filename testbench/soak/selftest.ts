// The soak's self-test: after a run, damage copies of real recorded streams in known ways and check
// that the oracle notices each one (and does not object to an allowed gap). A checker that passes a
// run must be able to fail the same run.
import { checkHistory, type OracleConfig, type OracleInput, type Rule } from "./oracle.ts"
import type { FrameRec, StreamRec } from "./types.ts"

export interface SelfTestCase {
  readonly name: string
  readonly stream: string
  readonly expected: Rule | null
  readonly found: Rule[]
  readonly ok: boolean
}

const clone = (s: StreamRec): StreamRec => ({ ...s, frames: s.frames.map((f) => ({ ...f })) })
const txIndexes = (s: StreamRec) => s.frames.flatMap((f, i) => (f.event === "tx" ? [i] : []))

/** Adds a column no grant has to the first change with data in a tx frame. */
const withSecret = (f: FrameRec): FrameRec => {
  const body = JSON.parse(f.data ?? "{}") as { changes?: Array<{ data?: Record<string, unknown> }> }
  const change = body.changes?.find((c) => c.data !== undefined)
  if (change?.data !== undefined) change.data["secret"] = "leaked"
  return { ...f, data: JSON.stringify(body) }
}

export const selfTest = (full: OracleInput, config: OracleConfig): SelfTestCase[] => {
  // A clean stream with several deliveries, preferably one the harness closed at the end.
  const candidates = full.streams
    .filter((s) => s.status === 200 && s.maxPauseMs === 0 && txIndexes(s).length >= 3)
    .sort(
      (a, b) =>
        Number(b.end?.final === true) - Number(a.end?.final === true) || txIndexes(a).length - txIndexes(b).length,
    )
  const first = candidates[0]
  if (first === undefined) return []
  // Only that process's streams (the oracle's rules never look across processes), without the metric check.
  const input: OracleInput = {
    ...full,
    streams: full.streams.filter((s) => s.instance === first.instance),
    incarnations: full.incarnations.map((i) => ({ ...i, multiRootScrapes: [] })),
  }
  const baseline = new Set(checkHistory(input, config).violations.map((v) => `${v.rule}|${v.stream}`))
  const clean = candidates.filter(
    (s) => s.instance === first.instance && ![...baseline].some((k) => k.endsWith(`|${s.id}`)),
  )
  const target = clean[0]
  if (target === undefined) return []
  const cases: Array<{ name: string; expected: Rule | null; mutate: (s: StreamRec) => void }> = [
    {
      name: "drop a delivered transaction in the middle",
      expected: "missing",
      mutate: (s) => void s.frames.splice(txIndexes(s)[1]!, 1),
    },
    {
      name: "deliver a transaction twice",
      expected: "duplicate",
      mutate: (s) => {
        const i = txIndexes(s)[1]!
        s.frames.splice(i + 1, 0, { ...s.frames[i]! })
      },
    },
    {
      name: "swap two transactions",
      expected: "out_of_order",
      mutate: (s) => {
        const [, a, b] = txIndexes(s)
        const fa = s.frames[a!]!
        s.frames[a!] = { ...s.frames[b!]!, t: fa.t }
        s.frames[b!] = { ...fa, t: s.frames[b!]!.t }
      },
    },
    {
      name: "add a column outside the grant",
      expected: "column_leak",
      mutate: (s) => {
        const i = txIndexes(s)[1]!
        s.frames[i] = withSecret(s.frames[i]!)
      },
    },
    {
      name: "end the stream with wal_disconnected right after a delivery (an allowed gap)",
      expected: null,
      mutate: (s) => {
        const i = txIndexes(s)[0]!
        const t = s.frames[i]!.t
        s.frames.splice(i + 1, s.frames.length, { t: t + 1, event: "error", data: '{"reason":"wal_disconnected"}' })
        s.end = { t: t + 2, by: "server", final: false }
      },
    },
  ]
  return cases.map((c) => {
    const damaged = clone(target)
    c.mutate(damaged)
    const streams = input.streams.map((s) => (s === target ? damaged : s))
    const found = checkHistory({ ...input, streams }, config)
      .violations.filter((v) => v.stream === target.id && !baseline.has(`${v.rule}|${v.stream}`))
      .map((v) => v.rule)
    const ok = c.expected === null ? found.length === 0 : found.includes(c.expected)
    return { name: c.name, stream: target.id, expected: c.expected, found: [...new Set(found)], ok }
  })
}
