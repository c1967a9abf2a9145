// What the auth backend granted (SPEC §3), parsed from an untrusted body. Anything of the
// wrong shape is refused as a whole: a malformed grant must never grant more than it says.
import { makeWhitelist, type Whitelist } from "./Whitelist.ts"

export interface Grant {
  readonly userId: string
  readonly tables: Readonly<Record<string, ReadonlyArray<string>>>
  /** null = every table in `tables` may be subscribed to. */
  readonly roots: ReadonlyArray<string> | null
  /** null = the configured default. */
  readonly ttlSeconds: number | null
  /** undefined = no initial_data frame. */
  readonly initialData: unknown
}

export type GrantResult = { readonly ok: true; readonly grant: Grant } | { readonly ok: false; readonly reason: string }

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string")

export const parseGrant = (body: string): GrantResult => {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch {
    return { ok: false, reason: "body is not JSON" }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "body is not a JSON object" }
  }
  const v = value as Record<string, unknown>
  const userId = v["user_id"]
  if (typeof userId !== "string" || userId.length === 0 || userId.length > 512) {
    return { ok: false, reason: "user_id missing or not a non-empty string" }
  }
  const rawTables = v["tables"] ?? {}
  if (typeof rawTables !== "object" || rawTables === null || Array.isArray(rawTables)) {
    return { ok: false, reason: "tables is not an object" }
  }
  const tables: Record<string, ReadonlyArray<string>> = Object.create(null)
  for (const [name, cols] of Object.entries(rawTables)) {
    if (cols === null) tables[name] = []
    else if (isStringArray(cols)) tables[name] = cols
    else return { ok: false, reason: `tables.${name} is not a list of column names` }
  }
  const rawRoots = v["roots"] ?? null
  if (rawRoots !== null && !isStringArray(rawRoots)) return { ok: false, reason: "roots is not a list of table names" }
  const rawTtl = v["ttl_seconds"] ?? null
  if (
    rawTtl !== null &&
    (typeof rawTtl !== "number" || !Number.isInteger(rawTtl) || rawTtl < 0 || rawTtl > 31_536_000)
  ) {
    return { ok: false, reason: "ttl_seconds is not a whole number of seconds between 0 and one year" }
  }
  const initial = v["initial_data"]
  return {
    ok: true,
    grant: {
      userId,
      tables,
      roots: rawRoots,
      ttlSeconds: rawTtl,
      initialData: initial === null ? undefined : initial,
    },
  }
}

export type ChannelCheck = "ok" | "not_a_root" | "not_allowed"

/** SPEC §1.2 step 9 (also used on refresh: a table gone from the grant revokes the stream). */
export const checkChannel = (grant: Grant, table: string): ChannelCheck => {
  if (grant.roots !== null && !grant.roots.includes(table)) return "not_a_root"
  if (!Object.hasOwn(grant.tables, table)) return "not_allowed"
  return "ok"
}

/** Interns whitelists so equal grants share one object — and one encoding per transaction. */
export class WhitelistPool {
  private readonly byKey = new Map<string, { whitelist: Whitelist; refs: number }>()

  acquire(tables: Readonly<Record<string, ReadonlyArray<string>>>): Whitelist {
    const fresh = makeWhitelist(tables)
    const entry = this.byKey.get(fresh.key)
    if (entry !== undefined) {
      entry.refs++
      return entry.whitelist
    }
    this.byKey.set(fresh.key, { whitelist: fresh, refs: 1 })
    return fresh
  }

  release(w: Whitelist): void {
    const entry = this.byKey.get(w.key)
    if (entry === undefined) return
    if (--entry.refs === 0) this.byKey.delete(w.key)
  }

  get size(): number {
    return this.byKey.size
  }
}
