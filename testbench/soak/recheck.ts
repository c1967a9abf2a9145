// Re-judges a saved soak run (a failed one, or one kept with --keep-raw) with the current oracle:
// `node testbench/soak/recheck.ts bench-results/soak-<timestamp> [--lenient-open]`. Prints violations by rule
// and the first examples; exits 1 when there are any.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { checkHistory, DEFAULT_ORACLE_CONFIG } from "./oracle.ts"
import type { AuthCall, HTx, Incarnation, StreamRec } from "./types.ts"

const dir = process.argv[2]
if (dir === undefined) {
  process.stderr.write("usage: node testbench/soak/recheck.ts <results dir> [--lenient-open]\n")
  process.exit(2)
}
const lines = <T>(file: string): T[] =>
  readFileSync(join(dir, file), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T)
const result = checkHistory(
  {
    txs: lines<HTx>("history.ndjson"),
    streams: lines<StreamRec>("streams.ndjson"),
    authCalls: lines<AuthCall>("auth-calls.ndjson"),
    incarnations: JSON.parse(readFileSync(join(dir, "incarnations.json"), "utf8")) as Incarnation[],
  },
  { ...DEFAULT_ORACLE_CONFIG, strictOpen: !process.argv.includes("--lenient-open") },
)
const byRule: Record<string, number> = {}
for (const v of result.violations) byRule[v.rule] = (byRule[v.rule] ?? 0) + 1
process.stdout.write(
  `${JSON.stringify({ violations: byRule, stats: result.stats, multiRoot: result.multiRoot }, null, 2)}\n`,
)
for (const rule of Object.keys(byRule))
  for (const v of result.violations.filter((x) => x.rule === rule).slice(0, 3))
    process.stdout.write(`${v.rule} ${v.stream ?? "-"} ${v.instance ?? "-"} ${v.xid ?? "-"}: ${v.detail}\n`)
process.exit(result.violations.length === 0 ? 0 : 1)
