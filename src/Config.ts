// Configuration: the optional YAML file overlaid by WALERA_* environment variables, validated into one immutable
// value. Every problem is collected and reported together (key, env var, redacted value, fix) so an operator repairs
// a bad deployment in one pass instead of one restart per mistake.
import { parse } from "yaml"

export type BootstrapMode = "auto" | "verify" | "off"
export type LogLevel = "debug" | "info" | "warn" | "error"

export interface WaleraConfig {
  readonly database: { readonly url: string }
  readonly auth: {
    readonly backendUrl: string
    readonly allowPlaintext: boolean
    readonly requestTimeoutMs: number
    readonly defaultTtlSeconds: number
    readonly forwardedCookies: ReadonlyArray<string>
    readonly forwardedHeaders: ReadonlyArray<string>
    readonly breaker: {
      readonly windowMs: number
      readonly minSamples: number
      readonly failureRatio: number
      readonly cooldownMs: number
    }
  }
  readonly http: {
    readonly host: string
    readonly port: number
    readonly corsOrigins: ReadonlyArray<string>
    readonly maxPayloadBytes: number
    readonly maxBufferedBytesPerSubscriber: number
    readonly writeTimeoutMs: number
  }
  readonly router: { readonly heartbeatIntervalMs: number; readonly maxChangesPerTx: number }
  readonly limits: { readonly globalConcurrent: number; readonly perUserConcurrent: number }
  readonly wal: {
    readonly publicationName: string
    readonly slotNamePrefix: string
    readonly bootstrap: BootstrapMode
    readonly bootstrapTables: ReadonlyArray<string>
  }
  readonly shutdown: { readonly deadlineMs: number }
  readonly log: { readonly level: LogLevel }
}

export interface ConfigProblem {
  readonly key: string
  readonly env: string
  readonly value: string
  readonly problem: string
  readonly fix: string
}

export type ConfigResult =
  | { readonly ok: true; readonly config: WaleraConfig }
  | { readonly ok: false; readonly problems: ReadonlyArray<ConfigProblem> }

// ---------------------------------------------------------------------------------------------------------------------
// Public helpers

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
// "ms" before "m" so "5ms" is not read as five minutes followed by garbage. Compound values ("1m30s") are accepted
// because operators coming from the Go implementation write Go durations.
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/y

/** "500ms", "15s", "2m", "1h", "1.5s", "1m30s" → milliseconds. A bare number has no unit and is refused. */
export const parseDuration = (text: string): number | undefined => {
  if (text.length === 0) return undefined
  let total = 0
  let at = 0
  while (at < text.length) {
    DURATION_PART.lastIndex = at
    const match = DURATION_PART.exec(text)
    if (match === null) return undefined
    total += Number(match[1]) * UNIT_MS[match[2]!]!
    at = DURATION_PART.lastIndex
  }
  // Rounding absorbs binary fractions ("2.3s" is 2299.9999… before it).
  return Number.isFinite(total) ? Math.round(total) : undefined
}

// Query parameters and keyword/value pairs whose name suggests a credential.
const SECRET_PARAM = /((?:^|[?&;\s])[^=&#\s]*(?:pass|pwd|token|secret|key|sig)[^=&#\s]*\s*=\s*)('[^']*'|[^\s&#]*)/gi

/** Hides the password of `scheme://user:password@host` and of `password=` parameters. */
export const redactUrl = (url: string): string => {
  let out = url
  const schemeEnd = url.indexOf("://")
  if (schemeEnd >= 0) {
    const start = schemeEnd + 3
    const rest = url.slice(start)
    // A URL that parses cannot hold an unencoded / ? # in its password, so the authority ends at the first of them.
    // One that does not parse may (that is often why it fails), so then the last "@" anywhere wins: better to hide
    // too much than to print a password.
    const authorityEnd = URL.canParse(url) ? firstIndexOf(rest, "/?#") : rest.length
    const at = authorityEnd > 0 ? rest.lastIndexOf("@", authorityEnd - 1) : -1
    if (at >= 0) {
      const userinfo = rest.slice(0, at)
      const colon = userinfo.indexOf(":")
      if (colon >= 0) out = url.slice(0, start) + userinfo.slice(0, colon + 1) + "***" + rest.slice(at)
    }
  }
  return out.replace(SECRET_PARAM, "$1***")
}

const firstIndexOf = (text: string, chars: string): number => {
  for (let i = 0; i < text.length; i++) if (chars.includes(text[i]!)) return i
  return text.length
}

const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([^/?#\s@]+?)(?::(\d{1,5}))?\/?$/i

/**
 * "HTTPS://App.Example.com/" → "https://app.example.com". The port is kept as typed (`https://a.com:443` stays), so
 * the request Origin must be canonicalised with this same function before comparing.
 */
export const canonicalOrigin = (origin: string): string | undefined => {
  const match = ORIGIN.exec(origin.trim())
  if (match === null) return undefined
  const scheme = match[1]!.toLowerCase()
  const host = match[2]!
  const port = match[3]
  if (host.startsWith("[") ? !/^\[[0-9a-f:.]+\]$/i.test(host) : host.includes(":")) return undefined
  // Parsing as http gives browsers' host normalisation (lower case, punycode) whatever the scheme.
  const probe = `http://${host}`
  if (!URL.canParse(probe)) return undefined
  const hostname = new URL(probe).hostname
  if (hostname === "") return undefined
  if (port === undefined) return `${scheme}://${hostname}`
  const portNumber = Number(port)
  return portNumber >= 1 && portNumber <= 65535 ? `${scheme}://${hostname}:${portNumber}` : undefined
}

// ---------------------------------------------------------------------------------------------------------------------
// Readers: one per kind of value, each turning a raw env string or YAML value into a typed value or issues.

type Raw = { readonly from: "env"; readonly text: string } | { readonly from: "yaml"; readonly value: unknown }
interface Issue {
  readonly problem: string
  readonly fix: string
  readonly value?: string
}
type Read<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: ReadonlyArray<Issue> }

const ok = <T>(value: T): Read<T> => ({ ok: true, value })
const fail = (problem: string, fix: string): Read<never> => ({ ok: false, issues: [{ problem, fix }] })

const yamlKind = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "list" : typeof value === "object" ? "mapping" : typeof value

const display = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(display).join(", ")}]`
    : value !== null && typeof value === "object"
      ? "(mapping)"
      : String(value)

const rawDisplay = (raw: Raw): string => (raw.from === "env" ? raw.text : display(raw.value))

/** The raw value as text; YAML numbers and booleans are accepted where a string is expected. */
const scalarText = (raw: Raw, fix: string): Read<string> => {
  if (raw.from === "env") return ok(raw.text)
  const value = raw.value
  if (typeof value === "string") return ok(value.trim())
  if (typeof value === "number" || typeof value === "boolean") return ok(String(value))
  return fail(`expected a single value, got a YAML ${yamlKind(value)}`, fix)
}

const then = <A, B>(read: Read<A>, next: (value: A) => Read<B>): Read<B> => (read.ok ? next(read.value) : read)

const bool = (raw: Raw): Read<boolean> => {
  if (raw.from === "yaml" && typeof raw.value === "boolean") return ok(raw.value)
  const fix = "write true or false (1/0 and yes/no also work)"
  return then(scalarText(raw, fix), (text) => {
    const lower = text.toLowerCase()
    if (lower === "true" || lower === "1" || lower === "yes") return ok(true)
    if (lower === "false" || lower === "0" || lower === "no") return ok(false)
    return fail("is not a boolean", fix)
  })
}

const int =
  (min: number, max: number, unit: string, example: number) =>
  (raw: Raw): Read<number> => {
    const fix = `write a whole number of ${unit} from ${min} to ${max}, e.g. ${example}`
    return then(scalarText(raw, fix), (text) => {
      if (!/^-?\d+$/.test(text) && !(raw.from === "yaml" && typeof raw.value === "number")) {
        return fail("is not a whole number", fix)
      }
      const value = Number(text)
      if (!Number.isSafeInteger(value)) return fail("is not a whole number", fix)
      if (value < min) return fail(`must be at least ${min}`, fix)
      if (value > max) return fail(`must be at most ${max}`, fix)
      return ok(value)
    })
  }

// setTimeout fires at once (with only a warning) for delays above 2^31-1 ms, so longer values would be silently wrong.
const MAX_TIMER_MS = 2_147_483_647

const duration =
  (example: string) =>
  (raw: Raw): Read<number> => {
    const fix = `write a number with a unit (ms, s, m or h), e.g. "${example}"`
    if (raw.from === "yaml" && typeof raw.value === "number") {
      return fail(
        "is a bare number, so its unit is unknown",
        `write the unit too, e.g. "${raw.value}s" for seconds or "${raw.value}ms" for milliseconds`,
      )
    }
    return then(scalarText(raw, fix), (text) => {
      if (/^\d+(\.\d+)?$/.test(text)) {
        return fail("has no unit", `write the unit too, e.g. "${text}s" for seconds or "${text}ms" for milliseconds`)
      }
      const ms = parseDuration(text)
      if (ms === undefined) return fail("is not a duration", fix)
      if (ms <= 0) return fail("must be longer than zero", fix)
      if (ms > MAX_TIMER_MS) return fail("is longer than Node.js timers allow (about 24 days)", "use at most 596h")
      return ok(ms)
    })
  }

const ratio = (raw: Raw): Read<number> => {
  const fix = "write a fraction between 0 and 1, e.g. 0.5 (the breaker opens when more than half the calls fail)"
  return then(scalarText(raw, fix), (text) => {
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text)) return fail("is not a number", fix)
    const value = Number(text)
    return value > 0 && value < 1 ? ok(value) : fail("must be greater than 0 and less than 1", fix)
  })
}

const oneOf =
  <T extends string>(options: ReadonlyArray<T>, extraFix = "") =>
  (raw: Raw): Read<T> => {
    const fix = `write one of ${options.join(", ")}${extraFix}`
    return then(scalarText(raw, fix), (text) => {
      const lower = text.toLowerCase()
      const found = options.find((option) => option === lower)
      return found === undefined ? fail(`is not one of ${options.join(", ")}`, fix) : ok(found)
    })
  }

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

const identifier =
  (maxLength: number, why: string) =>
  (raw: Raw): Read<string> => {
    const fix = `use lower-case letters, digits and _, starting with a letter or _, at most ${maxLength} characters ${why}`
    return then(scalarText(raw, fix), (text) => {
      if (IDENTIFIER.test(text) && text.length <= maxLength) return ok(text)
      const lower = text.toLowerCase()
      if (IDENTIFIER.test(lower) && lower.length <= maxLength) {
        return fail("is not a lower-case identifier", `use "${lower}" (unquoted PostgreSQL names are lower-case)`)
      }
      return fail(text.length > maxLength ? `is longer than ${maxLength} characters` : "is not a valid identifier", fix)
    })
  }

/** A list from a comma-separated string or a YAML sequence; each item is checked on its own so all bad ones show. */
const list =
  (item: (text: string) => Read<string>, what: string) =>
  (raw: Raw): Read<ReadonlyArray<string>> => {
    let texts: Array<string>
    if (raw.from === "env" || typeof raw.value === "string") {
      const text = raw.from === "env" ? raw.text : (raw.value as string)
      texts = text.split(",")
    } else if (Array.isArray(raw.value)) {
      texts = []
      for (const element of raw.value) {
        if (typeof element !== "string" && typeof element !== "number") {
          return fail(`has a YAML ${yamlKind(element)} where ${what} was expected`, `list ${what}s as plain strings`)
        }
        texts.push(String(element))
      }
    } else {
      return fail(`expected a list, got a YAML ${yamlKind(raw.value)}`, `write a YAML list or a comma-separated string`)
    }
    const values: Array<string> = []
    const issues: Array<Issue> = []
    for (const text of texts.map((t) => t.trim()).filter((t) => t !== "")) {
      const read = item(text)
      if (!read.ok) for (const issue of read.issues) issues.push({ ...issue, value: text })
      else if (!values.includes(read.value)) values.push(read.value)
    }
    return issues.length > 0 ? { ok: false, issues } : ok(values)
  }

// RFC 7230 token, which is also what RFC 6265 allows as a cookie name.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

const RESERVED_HEADERS: Readonly<Record<string, string>> = {
  authorization: "Walera already forwards the client's bearer token as Authorization",
  cookie: "cookies are forwarded one by one through auth.forwarded_cookies",
  host: "Walera sets Host for the auth backend itself",
  "content-length": "Walera sets Content-Length for its own request body",
  "content-type": "Walera sends its own JSON body and sets Content-Type for it",
  connection: "hop-by-hop headers are never forwarded",
  "transfer-encoding": "hop-by-hop headers are never forwarded",
  "x-request-id": "Walera sends its own X-Request-ID so the auth call can be traced",
}

const cookieName = (text: string): Read<string> =>
  TOKEN.test(text)
    ? ok(text)
    : fail("is not a valid cookie name", "use the cookie's exact name (letters, digits and !#$%&'*+-.^_`|~)")

const headerName = (text: string): Read<string> => {
  const lower = text.toLowerCase()
  if (!TOKEN.test(text)) {
    return fail("is not a valid header name", "use the header's name only (letters, digits and !#$%&'*+-.^_`|~)")
  }
  const reserved = RESERVED_HEADERS[lower]
  return reserved === undefined ? ok(lower) : fail("is a reserved header", `remove it: ${reserved}`)
}

const corsOrigin = (text: string): Read<string> => {
  const canonical = canonicalOrigin(text)
  if (canonical !== undefined) return ok(canonical)
  return fail(
    "is not an origin",
    'write scheme://host[:port] with no path, e.g. "https://app.example.com" (wildcards are not supported)',
  )
}

const tableName = (text: string): Read<string> => {
  if (IDENTIFIER.test(text)) return ok(text)
  const fix = text.includes(".")
    ? `give the bare table name, e.g. "${text.slice(text.lastIndexOf(".") + 1).toLowerCase()}"`
    : "use the table's lower-case name, e.g. orders"
  return fail("is not a table name", fix)
}

const databaseUrl = (raw: Raw): Read<string> => {
  const fix = "write postgres://user:password@host:5432/dbname"
  return then(scalarText(raw, fix), (text) => {
    if (!/^postgres(ql)?:\/\//i.test(text)) return fail("is not a postgres:// or postgresql:// URL", fix)
    if (!URL.canParse(text)) {
      return fail("is not a valid URL", "percent-encode special characters in the user and password (@ → %40, # → %23)")
    }
    const url = new URL(text)
    // libpq also takes the host as a query parameter (unix sockets), so an empty authority is fine then.
    if (url.hostname === "" && !url.searchParams.has("host")) return fail("has no host", fix)
    return ok(text)
  })
}

const backendUrl = (raw: Raw): Read<string> => {
  const fix = "write the base URL of the auth backend, e.g. https://auth.example.com"
  return then(scalarText(raw, fix), (text) => {
    if (!/^https?:\/\//i.test(text) || !URL.canParse(text)) return fail("is not an http:// or https:// URL", fix)
    const url = new URL(text)
    if (url.hostname === "") return fail("has no host", fix)
    // fetch refuses URLs with credentials, and the caller's credentials are what gets forwarded anyway.
    if (url.username !== "" || url.password !== "") return fail("contains credentials", "remove user:password@")
    // Walera appends /auth/sessions, which a query or fragment would end up after.
    if (url.search !== "" || url.hash !== "") return fail("has a query or fragment", fix)
    return ok(url.origin + url.pathname.replace(/\/+$/, ""))
  })
}

interface Addr {
  readonly host: string
  readonly port: number
}

const addr = (raw: Raw): Read<Addr> => {
  const fix = 'write host:port, e.g. "0.0.0.0:8080", ":8080" or "[::1]:8080" (port 0 picks a free port)'
  if (raw.from === "yaml" && typeof raw.value === "number") {
    return fail("is a bare number", `write host:port as a string, e.g. ":${raw.value}"`)
  }
  return then(scalarText(raw, fix), (text) => {
    let host: string
    let port: string
    const bracketed = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text)
    if (bracketed !== null) {
      host = bracketed[1]!
      port = bracketed[2]!
    } else {
      const colon = text.lastIndexOf(":")
      if (colon < 0) return fail("has no port", /^\d+$/.test(text) ? `write ":${text}"` : fix)
      host = text.slice(0, colon)
      port = text.slice(colon + 1)
      if (host.includes(":")) return fail("has an IPv6 host without brackets", 'write e.g. "[::1]:8080"')
      if (host === "") host = "0.0.0.0"
      if (!/^[A-Za-z0-9.-]+$/.test(host)) return fail("has an invalid host", fix)
    }
    const portNumber = Number(port)
    if (!/^\d{1,5}$/.test(port) || portNumber > 65535) return fail("has an invalid port (0–65535)", fix)
    return ok({ host, port: portNumber })
  })
}

// ---------------------------------------------------------------------------------------------------------------------
// Every key, in the order they are documented and reported.

interface KeySpec<T> {
  /** undefined = required */
  readonly fallback: T | undefined
  readonly shownDefault: string
  readonly description: string
  readonly read: (raw: Raw) => Read<T>
  readonly requiredFix?: string
}

const key = <T>(spec: KeySpec<T>): KeySpec<T> => spec

const KEYS = {
  "database.url": key<string>({
    fallback: undefined,
    shownDefault: "required",
    description: "PostgreSQL connection URL; the role needs REPLICATION to stream the WAL",
    read: databaseUrl,
    requiredFix: "set WALERA_DATABASE_URL=postgres://user:password@host:5432/dbname",
  }),
  "auth.backend_url": key<string>({
    fallback: undefined,
    shownDefault: "required",
    description: "base URL of the auth backend; Walera POSTs {backend_url}/auth/sessions on every open and refresh",
    read: backendUrl,
    requiredFix: "set WALERA_AUTH_BACKEND_URL=https://auth.example.com",
  }),
  "auth.allow_plaintext": key<boolean>({
    fallback: false,
    shownDefault: "false",
    description: "allow an http:// auth backend; user credentials then cross the network unencrypted",
    read: bool,
  }),
  "auth.request_timeout": key<number>({
    fallback: 2_000,
    shownDefault: "2s",
    description: "timeout of one auth backend call; a timeout counts as a breaker failure",
    read: duration("2s"),
  }),
  "auth.default_ttl_seconds": key<number>({
    fallback: 60,
    shownDefault: "60",
    description: "grant lifetime when the auth response has no ttl_seconds; 0 = never refresh",
    read: int(0, 2_147_483, "seconds", 60),
  }),
  "auth.forwarded_cookies": key<ReadonlyArray<string>>({
    fallback: [],
    shownDefault: "none",
    description: "cookie names forwarded to the auth backend; no other cookie leaves Walera",
    read: list(cookieName, "cookie name"),
  }),
  "auth.forwarded_headers": key<ReadonlyArray<string>>({
    fallback: [],
    shownDefault: "none",
    description: "request header names forwarded to the auth backend (reserved names are refused)",
    read: list(headerName, "header name"),
  }),
  "auth.breaker.window": key<number>({
    fallback: 30_000,
    shownDefault: "30s",
    description: "sliding window over which the auth circuit breaker counts calls",
    read: duration("30s"),
  }),
  "auth.breaker.min_samples": key<number>({
    fallback: 20,
    shownDefault: "20",
    description: "calls needed in the window before the breaker may open, so a few failures do not trip it",
    read: int(1, 1_000_000, "calls", 20),
  }),
  "auth.breaker.failure_ratio": key<number>({
    fallback: 0.5,
    shownDefault: "0.5",
    description: "the breaker opens when the share of failed calls in the window is above this",
    read: ratio,
  }),
  "auth.breaker.cooldown": key<number>({
    fallback: 30_000,
    shownDefault: "30s",
    description: "how long the breaker stays open before one probe call is let through",
    read: duration("30s"),
  }),
  "shutdown.deadline": key<number>({
    fallback: 10_000,
    shownDefault: "10s",
    description: "longest a graceful shutdown may take before the process exits anyway",
    read: duration("10s"),
  }),
  "log.level": key<LogLevel>({
    fallback: "info",
    shownDefault: "info",
    description: "lowest log level written: debug, info, warn or error",
    read: oneOf<LogLevel>(["debug", "info", "warn", "error"]),
  }),
  "http.addr": key<Addr>({
    fallback: { host: "0.0.0.0", port: 8080 },
    shownDefault: "0.0.0.0:8080",
    description: 'listen address host:port (":8080" = all IPv4 interfaces, "[::1]:8080" for IPv6, port 0 = any free)',
    read: addr,
  }),
  "http.cors_origins": key<ReadonlyArray<string>>({
    fallback: [],
    shownDefault: "none",
    description: "browser origins allowed to open streams (scheme://host[:port]); none = no CORS headers",
    read: list(corsOrigin, "origin"),
  }),
  "http.max_payload_bytes": key<number>({
    fallback: 10_485_760,
    shownDefault: "10485760",
    description: "largest single event (transaction or initial_data) in bytes; bigger ones are not sent whole",
    read: int(1, Number.MAX_SAFE_INTEGER, "bytes", 10_485_760),
  }),
  "http.max_buffered_bytes_per_subscriber": key<number>({
    fallback: 1_048_576,
    shownDefault: "1048576",
    description: "unsent bytes a subscriber may hold before it is dropped as slow_consumer; bounds memory per client",
    read: int(1, Number.MAX_SAFE_INTEGER, "bytes", 1_048_576),
  }),
  "http.write_timeout": key<number>({
    fallback: 5_000,
    shownDefault: "5s",
    description: "how long a socket may accept nothing before the subscriber is dropped as slow_consumer",
    read: duration("5s"),
  }),
  "router.heartbeat_interval": key<number>({
    fallback: 15_000,
    shownDefault: "15s",
    description: "idle time after which a heartbeat is sent, keeping proxies from closing quiet streams",
    read: duration("15s"),
  }),
  "router.max_changes_per_tx": key<number>({
    fallback: 10_000,
    shownDefault: "10000",
    description: "most changes of one transaction sent to one subscriber; beyond it the subscriber must resync",
    read: int(1, Number.MAX_SAFE_INTEGER, "changes", 10_000),
  }),
  "limits.global_concurrent": key<number>({
    fallback: 50_000,
    shownDefault: "50000",
    description: "most concurrent streams (and handshakes) on this instance; more get 503",
    read: int(1, Number.MAX_SAFE_INTEGER, "streams", 50_000),
  }),
  "limits.per_user_concurrent": key<number>({
    fallback: 10,
    shownDefault: "10",
    description: "most concurrent streams per user_id; more get 429",
    read: int(1, Number.MAX_SAFE_INTEGER, "streams", 10),
  }),
  "wal.publication_name": key<string>({
    fallback: "walera_pub",
    shownDefault: "walera_pub",
    description: "PostgreSQL publication Walera reads",
    read: identifier(63, "(a PostgreSQL identifier)"),
  }),
  "wal.slot_name_prefix": key<string>({
    fallback: "walera",
    shownDefault: "walera",
    description: "prefix of the replication slot name; short so the generated suffix fits in 63 characters",
    read: identifier(30, "(room is left for the slot suffix)"),
  }),
  "wal.bootstrap": key<BootstrapMode>({
    fallback: "auto",
    shownDefault: "auto",
    description: "auto = create the publication if missing, verify = only check it, off = check nothing",
    read: oneOf<BootstrapMode>(["auto", "verify", "off"], " (tables go in wal.bootstrap_tables)"),
  }),
  "wal.bootstrap_tables": key<ReadonlyArray<string>>({
    fallback: [],
    shownDefault: "none (= all tables)",
    description: "tables the bootstrapped publication covers; none = all tables",
    read: list(tableName, "table name"),
  }),
}

type KeyName = keyof typeof KEYS
type Values = { -readonly [K in KeyName]: (typeof KEYS)[K] extends KeySpec<infer T> ? T : never }

const KEY_NAMES = Object.keys(KEYS) as Array<KeyName>

const envName = (key: string): string => "WALERA_" + key.toUpperCase().replaceAll(".", "_")

// Every dotted prefix of a key is a YAML mapping ("auth", "auth.breaker", ...).
const SECTIONS: ReadonlySet<string> = new Set(
  KEY_NAMES.flatMap((name) =>
    name
      .split(".")
      .slice(0, -1)
      .map((_, i, parts) => parts.slice(0, i + 1).join(".")),
  ),
)

/** Every key with its env var, default and reason — for docs/operations.md and --help. */
export const CONFIG_KEYS: ReadonlyArray<{ key: string; env: string; default: string; description: string }> =
  KEY_NAMES.map((name) => ({
    key: name,
    env: envName(name),
    default: KEYS[name].shownDefault,
    description: KEYS[name].description,
  }))

// ---------------------------------------------------------------------------------------------------------------------
// Redaction

const SECRET_KEY = /secret|password|passwd|token|credential|api_?key/i
// Long mixed letter/digit strings (JWTs, API keys, session ids).
const TOKEN_LIKE = /[A-Za-z0-9._~+/=-]{20,}/g

/** Whatever might be printed for `key`, with credentials hidden; over-redaction is preferred to a leak. */
const redactFor = (key: string, text: string): string => {
  if (SECRET_KEY.test(key.slice(key.lastIndexOf(".") + 1))) return "***"
  let out = text
    .split(/(\s+)/)
    .map((piece) => (piece.includes("://") ? redactUrl(piece) : piece))
    .join("")
    .replace(SECRET_PARAM, "$1***")
    .replace(/(bearer\s+)\S+/gi, "$1***")
  if (key === "auth" || key.startsWith("auth.")) {
    out = out
      .split(/(\s+|,)/)
      .map((piece) =>
        piece.includes("://")
          ? piece
          : piece.replace(TOKEN_LIKE, (token) => (/\d/.test(token) && /[A-Za-z]/.test(token) ? "***" : token)),
      )
      .join("")
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------------
// YAML structure: flatten known keys, report everything else.

const isMapping = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

// Names used by the Go implementation that are not close in spelling to their replacement.
const RENAMED: Readonly<Record<string, string>> = {
  "auth.breaker.failure_rate_threshold": "auth.breaker.failure_ratio",
  "auth.breaker.debounce_floor": "auth.breaker.min_samples",
}

const normalise = (path: string): string =>
  path
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replaceAll("-", "_")

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (the commonest typo). */
const editDistance = (a: string, b: string): number => {
  const rows: Array<Array<number>> = []
  for (let i = 0; i <= a.length; i++) {
    const row: Array<number> = [i]
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j)
        continue
      }
      const above = rows[i - 1]!
      let best = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      row.push(best)
    }
    rows.push(row)
  }
  return rows[a.length]![b.length]!
}

const KNOWN_PATHS: ReadonlyArray<string> = [...SECTIONS, ...KEY_NAMES]

const closestKey = (path: string): string | undefined => {
  const renamed = RENAMED[path]
  if (renamed !== undefined) return renamed
  const normalised = normalise(path)
  if (KNOWN_PATHS.includes(normalised)) return normalised
  // The right leaf in the wrong section ("http.heartbeat_interval").
  const leaf = normalised.slice(normalised.lastIndexOf(".") + 1)
  const sameLeaf = KEY_NAMES.filter((name) => name.endsWith("." + leaf))
  if (sameLeaf.length === 1) return sameLeaf[0]
  let best: string | undefined
  let bestDistance = 3
  let tied = false
  for (const known of KNOWN_PATHS) {
    const distance = editDistance(normalised, known)
    if (distance < bestDistance) {
      best = known
      bestDistance = distance
      tied = false
    } else if (distance === bestDistance) tied = true
  }
  return tied ? undefined : best
}

const unknownKeyFix = (path: string): string => {
  if (KNOWN_PATHS.includes(path)) {
    const dot = path.lastIndexOf(".")
    return `nest it instead of writing a dotted key: "${path.slice(0, dot)}:" then "  ${path.slice(dot + 1)}: ..."`
  }
  const closest = closestKey(path)
  return closest === undefined
    ? "remove it; every key is listed in docs/operations.md"
    : `did you mean ${closest}? (every key is listed in docs/operations.md)`
}

const flattenYaml = (
  mapping: Record<string, unknown>,
  prefix: string,
  source: string,
  into: Map<string, unknown>,
  problems: Array<ConfigProblem>,
): void => {
  for (const [name, value] of Object.entries(mapping)) {
    const path = prefix === "" ? name : `${prefix}.${name}`
    // A dotted name ("log.level: debug") is not matched, so each key has exactly one spelling in YAML.
    const dotted = name.includes(".")
    if (!dotted && Object.hasOwn(KEYS, path)) into.set(path, value)
    else if (!dotted && SECTIONS.has(path)) {
      if (isMapping(value)) flattenYaml(value, path, source, into, problems)
      else if (value !== null) {
        problems.push({
          key: path,
          env: envName(path),
          value: redactFor(path, display(value)),
          problem: `must be a mapping of keys, got a YAML ${yamlKind(value)} (in ${source})`,
          fix: `put its keys under "${path.slice(path.lastIndexOf(".") + 1)}:", see docs/operations.md`,
        })
      }
    } else {
      problems.push({
        key: path,
        env: envName(path),
        value: redactFor(path, display(value)),
        problem: `is an unknown key (in ${source})`,
        fix: unknownKeyFix(path),
      })
    }
  }
}

const readYaml = (text: string, source: string, into: Map<string, unknown>, problems: Array<ConfigProblem>): void => {
  let document: unknown
  try {
    document = parse(text)
  } catch (error) {
    // Only the first line: the rest is a code frame that may quote a password from the file.
    const message = error instanceof Error ? (error.message.split("\n")[0] ?? "").replace(/:$/, "") : String(error)
    problems.push({
      key: "(file)",
      env: "",
      value: source,
      problem: `is not valid YAML: ${redactFor("(file)", message)}`,
      fix: `correct the YAML syntax in ${source}`,
    })
    return
  }
  if (document === null || document === undefined) return
  if (!isMapping(document)) {
    problems.push({
      key: "(file)",
      env: "",
      value: source,
      problem: `must be a YAML mapping of keys, got a ${yamlKind(document)}`,
      fix: 'start the file with top-level keys such as "database:" and "auth:"',
    })
    return
  }
  flattenYaml(document, "", source, into, problems)
}

// ---------------------------------------------------------------------------------------------------------------------
// Loading

/** yamlText: contents of the YAML file or undefined when there is none. */
export const loadConfig = (input: {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly yamlText?: string | undefined
  readonly yamlSource?: string
}): ConfigResult => {
  const source = input.yamlSource ?? "the config file"
  const problems: Array<ConfigProblem> = []
  const yamlValues = new Map<string, unknown>()
  if (input.yamlText !== undefined) readYaml(input.yamlText, source, yamlValues, problems)

  const values: Partial<Record<KeyName, unknown>> = {}
  const fromYaml = new Set<KeyName>()
  for (const name of KEY_NAMES) {
    const spec: KeySpec<unknown> = KEYS[name]
    const env = envName(name)
    const envText = input.env[env]?.trim()
    const yamlValue = yamlValues.get(name)
    // An empty env var or a YAML null means "not set", so a template can leave a key blank.
    const raw: Raw | undefined =
      envText !== undefined && envText !== ""
        ? { from: "env", text: envText }
        : yamlValue !== undefined && yamlValue !== null
          ? { from: "yaml", value: yamlValue }
          : undefined
    if (raw === undefined) {
      if (spec.fallback !== undefined) values[name] = spec.fallback
      else problems.push({ key: name, env, value: "(not set)", problem: "is required", fix: spec.requiredFix ?? "" })
      continue
    }
    if (raw.from === "yaml") fromYaml.add(name)
    const read = spec.read(raw)
    if (read.ok) values[name] = read.value
    else {
      for (const issue of read.issues) {
        problems.push({
          key: name,
          env,
          value: redactFor(name, issue.value ?? rawDisplay(raw)),
          problem: raw.from === "yaml" ? `${issue.problem} (in ${source})` : issue.problem,
          fix: issue.fix,
        })
      }
    }
  }

  // Checked only when both values are known, so one mistake is not reported twice.
  const backend = values["auth.backend_url"]
  const plaintext = values["auth.allow_plaintext"]
  if (typeof backend === "string" && plaintext === false && backend.startsWith("http:")) {
    problems.push({
      key: "auth.backend_url",
      env: envName("auth.backend_url"),
      value: redactFor("auth.backend_url", backend),
      problem: `uses http:// without auth.allow_plaintext${fromYaml.has("auth.backend_url") ? ` (in ${source})` : ""}`,
      fix: "use https:// or set WALERA_AUTH_ALLOW_PLAINTEXT=true (only on a trusted network)",
    })
  }

  if (problems.length > 0) return { ok: false, problems }
  const v = values as Values
  return {
    ok: true,
    config: {
      database: { url: v["database.url"] },
      auth: {
        backendUrl: v["auth.backend_url"],
        allowPlaintext: v["auth.allow_plaintext"],
        requestTimeoutMs: v["auth.request_timeout"],
        defaultTtlSeconds: v["auth.default_ttl_seconds"],
        forwardedCookies: v["auth.forwarded_cookies"],
        forwardedHeaders: v["auth.forwarded_headers"],
        breaker: {
          windowMs: v["auth.breaker.window"],
          minSamples: v["auth.breaker.min_samples"],
          failureRatio: v["auth.breaker.failure_ratio"],
          cooldownMs: v["auth.breaker.cooldown"],
        },
      },
      http: {
        host: v["http.addr"].host,
        port: v["http.addr"].port,
        corsOrigins: v["http.cors_origins"],
        maxPayloadBytes: v["http.max_payload_bytes"],
        maxBufferedBytesPerSubscriber: v["http.max_buffered_bytes_per_subscriber"],
        writeTimeoutMs: v["http.write_timeout"],
      },
      router: {
        heartbeatIntervalMs: v["router.heartbeat_interval"],
        maxChangesPerTx: v["router.max_changes_per_tx"],
      },
      limits: {
        globalConcurrent: v["limits.global_concurrent"],
        perUserConcurrent: v["limits.per_user_concurrent"],
      },
      wal: {
        publicationName: v["wal.publication_name"],
        slotNamePrefix: v["wal.slot_name_prefix"],
        bootstrap: v["wal.bootstrap"],
        bootstrapTables: v["wal.bootstrap_tables"],
      },
      shutdown: { deadlineMs: v["shutdown.deadline"] },
      log: { level: v["log.level"] },
    },
  }
}

/** One line per problem, for the startup failure message. */
export const formatProblems = (problems: ReadonlyArray<ConfigProblem>): string => {
  const header = `invalid configuration: ${problems.length} problem${problems.length === 1 ? "" : "s"}`
  const lines = problems.map(
    (p) => `  - ${p.key}${p.env === "" ? "" : ` (${p.env})`} = ${p.value}: ${p.problem}. Fix: ${p.fix}`,
  )
  return [header, ...lines].join("\n")
}
