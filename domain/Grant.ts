// What the auth backend granted (docs/auth.md), parsed from an untrusted body. Anything of the
// wrong shape is refused as a whole: a malformed grant must never grant more than it says.
import { compactJson } from "./ValueMapper.ts"
import { makeWhitelist, type Whitelist } from "./Whitelist.ts"

export interface Grant {
  readonly userId: string
  readonly tables: Readonly<Record<string, ReadonlyArray<string>>>
  /** null = every table in `tables` may be subscribed to. */
  readonly roots: ReadonlyArray<string> | null
  /** null = the configured default. */
  readonly ttlSeconds: number | null
  /** The backend's initial_data as compact JSON text (numbers kept digit for digit); undefined = no frame. */
  readonly initialData: string | undefined
}

export type GrantResult =
  | { readonly _tag: "Valid"; readonly grant: Grant }
  | { readonly _tag: "Invalid"; readonly reason: string }

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string")

export const parseGrant = (body: string): GrantResult => {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch {
    return { _tag: "Invalid", reason: "body is not JSON" }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { _tag: "Invalid", reason: "body is not a JSON object" }
  }
  const v = value as Record<string, unknown>
  const userId = v["user_id"]
  if (typeof userId !== "string" || userId.length === 0 || userId.length > 512) {
    return { _tag: "Invalid", reason: "user_id missing or not a non-empty string" }
  }
  const rawTables = v["tables"] ?? {}
  if (typeof rawTables !== "object" || rawTables === null || Array.isArray(rawTables)) {
    return { _tag: "Invalid", reason: "tables is not an object" }
  }
  const tables: Record<string, ReadonlyArray<string>> = Object.create(null)
  for (const [name, cols] of Object.entries(rawTables)) {
    if (cols === null) tables[name] = []
    else if (isStringArray(cols)) tables[name] = cols
    else return { _tag: "Invalid", reason: `tables.${name} is not a list of column names` }
  }
  const rawRoots = v["roots"] ?? null
  if (rawRoots !== null && !isStringArray(rawRoots))
    return { _tag: "Invalid", reason: "roots is not a list of table names" }
  const rawTtl = v["ttl_seconds"] ?? null
  if (
    rawTtl !== null &&
    (typeof rawTtl !== "number" || !Number.isInteger(rawTtl) || rawTtl < 0 || rawTtl > 31_536_000)
  ) {
    return { _tag: "Invalid", reason: "ttl_seconds is not a whole number of seconds between 0 and one year" }
  }
  const initial = v["initial_data"]
  const initialText = initial === undefined || initial === null ? undefined : rawMember(body, "initial_data")
  return {
    _tag: "Valid",
    grant: {
      userId,
      tables,
      roots: rawRoots,
      ttlSeconds: rawTtl,
      initialData: initialText === undefined ? undefined : (compactJson(initialText) ?? JSON.stringify(initial)),
    },
  }
}

const skipWs = (s: string, i: number): number => {
  while (i < s.length && (s[i] === " " || s[i] === "\n" || s[i] === "\r" || s[i] === "\t")) i++
  return i
}

const skipString = (s: string, i: number): number => {
  i++
  while (i < s.length && s[i] !== '"') i += s[i] === "\\" ? 2 : 1
  return i + 1
}

const skipValue = (s: string, i: number): number => {
  if (s[i] === '"') return skipString(s, i)
  if (s[i] === "{" || s[i] === "[") {
    let depth = 0
    while (i < s.length) {
      const c = s[i]
      if (c === '"') {
        i = skipString(s, i)
        continue
      }
      if (c === "{" || c === "[") depth++
      else if (c === "}" || c === "]") {
        depth--
        if (depth === 0) return i + 1
      }
      i++
    }
    return i
  }
  while (i < s.length && !",}] \n\r\t".includes(s[i]!)) i++
  return i
}

/**
 * The raw text of a top-level member of a JSON object that JSON.parse already accepted,
 * so a value can be passed on without re-encoding it (JSON.parse rounds big numbers).
 * The last occurrence wins, as with JSON.parse.
 */
export const rawMember = (body: string, key: string): string | undefined => {
  let i = skipWs(body, 0)
  if (body[i] !== "{") return undefined
  i = skipWs(body, i + 1)
  let found: string | undefined
  while (i < body.length && body[i] === '"') {
    const end = skipString(body, i)
    const name = JSON.parse(body.slice(i, end)) as string
    i = skipWs(body, end)
    if (body[i] !== ":") return found
    const start = skipWs(body, i + 1)
    const stop = skipValue(body, start)
    if (name === key) found = body.slice(start, stop)
    i = skipWs(body, stop)
    if (body[i] === ",") i = skipWs(body, i + 1)
  }
  return found
}

export type ChannelCheck = "ok" | "not_a_root" | "not_allowed"

/** Handshake step 9 (also used on refresh: a table gone from the grant revokes the stream). */
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
