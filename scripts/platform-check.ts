// `npm install` must work on linux-x64, linux-arm64, darwin-arm64 and darwin-x64. npm skips a package whose os/cpu
// do not match the machine only when every path to it is optional; a platform package reached as a plain dependency
// fails the whole install with EBADPLATFORM, and `npm install --dry-run --os=… --cpu=…` does not notice it for direct
// dependencies. So the lockfile is checked directly: every package restricted to some os/cpu must be optional.
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"

interface LockEntry {
  readonly version?: string
  readonly os?: string | ReadonlyArray<string>
  readonly cpu?: string | ReadonlyArray<string>
  readonly libc?: string | ReadonlyArray<string>
  readonly optional?: boolean
  readonly devOptional?: boolean
  readonly dependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
}

export interface Lockfile {
  readonly packages: Record<string, LockEntry>
}

/** The platforms the project promises `npm install` on (README, Develop). */
export const PLATFORMS: ReadonlyArray<{ readonly os: string; readonly cpu: string }> = [
  { os: "linux", cpu: "x64" },
  { os: "linux", cpu: "arm64" },
  { os: "darwin", cpu: "arm64" },
  { os: "darwin", cpu: "x64" },
]

const list = (value: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
  value === undefined ? [] : typeof value === "string" ? [value] : value

/** npm's rule: a list of names allows those names, "!name" entries exclude them. */
const allows = (value: string | ReadonlyArray<string> | undefined, actual: string): boolean => {
  const entries = list(value)
  if (entries.length === 0) return true
  if (entries.includes(`!${actual}`)) return false
  const positive = entries.filter((entry) => !entry.startsWith("!"))
  return positive.length === 0 || positive.includes(actual) || positive.includes("any")
}

const restriction = (entry: LockEntry): string =>
  [
    ["os", entry.os],
    ["cpu", entry.cpu],
    ["libc", entry.libc],
  ]
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${list(value as string | ReadonlyArray<string>).join("|")}`)
    .join(" ")

/** Every reason `npm install` from this lockfile would fail with EBADPLATFORM on one of PLATFORMS. */
export const platformProblems = (lock: Lockfile): Array<string> => {
  const problems: Array<string> = []
  const root = lock.packages[""] ?? {}
  const direct = new Map<string, string>()
  for (const field of ["dependencies", "devDependencies", "optionalDependencies"] as const)
    for (const name of Object.keys(root[field] ?? {})) direct.set(name, field)
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || (entry.os === undefined && entry.cpu === undefined && entry.libc === undefined)) continue
    const blocked = PLATFORMS.filter((p) => !allows(entry.os, p.os) || !allows(entry.cpu, p.cpu))
    if (blocked.length === 0 || entry.optional === true || entry.devOptional === true) continue
    const name = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length)
    const where = blocked.map((p) => `${p.os}-${p.cpu}`).join(", ")
    const field = path === `node_modules/${name}` ? direct.get(name) : undefined
    problems.push(
      field === undefined
        ? `${name}@${entry.version} (${restriction(entry)}) is installed unconditionally (not optional), so ` +
            `\`npm install\` fails with EBADPLATFORM on ${where}: find which package requires it (npm explain ${name})`
        : `${name}@${entry.version} (${restriction(entry)}) is in "${field}", so \`npm install\` fails with ` +
            `EBADPLATFORM on ${where}: move it to "optionalDependencies" (with its siblings for the other platforms)`,
    )
  }
  return problems
}

if (import.meta.main) {
  const path = resolve(process.argv[2] ?? join(import.meta.dirname, "..", "package-lock.json"))
  const problems = platformProblems(JSON.parse(readFileSync(path, "utf8")) as Lockfile)
  if (problems.length > 0) {
    console.error(`platform-check: ${problems.length} package(s) would break npm install\n  ${problems.join("\n  ")}`)
    process.exit(1)
  }
  console.log(`platform-check: no package in the lockfile is pinned to one platform without being optional`)
}
