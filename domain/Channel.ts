// Path and header syntax of the stream endpoints (docs/operations.md, "Endpoints"): what a client may ask for.

export interface Channel {
  readonly table: string
  /** null for the table stream (`/all`). */
  readonly pk: string | null
  /** The string sent to the auth backend: `<table>:<pk>` or `<table>:all`. */
  readonly name: string
}

const TABLE_RE = /^[a-z_][a-z0-9_]{0,62}$/
const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,128}$/
export const SSE_PREFIX = "/sse/v1/"

const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

/** Parses the path (without query) after `/sse/v1/`; undefined means 400 invalid_channel. */
export const parseChannel = (rest: string): Channel | undefined => {
  const slash = rest.indexOf("/")
  if (slash <= 0 || rest.indexOf("/", slash + 1) >= 0) return undefined
  const table = rest.slice(0, slash)
  if (!TABLE_RE.test(table)) return undefined
  const raw = rest.slice(slash + 1)
  if (raw === "all") return { table, pk: null, name: `${table}:all` }
  let pk: string
  try {
    pk = decodeURIComponent(raw)
  } catch {
    return undefined
  }
  // "%61ll" must not become the table stream (nor a row the backend could mistake for it).
  if (pk === "all") return undefined
  const bytes = utf8Length(pk)
  if (bytes < 1 || bytes > 256) return undefined
  return { table, pk, name: `${table}:${pk}` }
}

export const isValidRequestId = (id: string): boolean => REQUEST_ID_RE.test(id)
