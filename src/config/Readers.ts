// Readers for configuration values: one per kind of value (boolean, duration, list, URL, …), each turning a raw
// env string or YAML value into a typed value or a problem with its fix; plus the helpers the rest of Walera shares.

// ---------------------------------------------------------------------------------------------------------------------
// Public helpers

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
// "ms" before "m" so "5ms" is not read as five minutes followed by garbage. Compound values ("1m30s") are accepted
// because operators coming from the Go implementation write Go durations.
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/y

/** Milliseconds as the shortest duration text ("2s", "500ms", "1m30s"); 0 → "0". */
export const formatDuration = (ms: number): string => {
  if (ms === 0) return "0"
  let rest = ms
  let out = ""
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
  ] as const) {
    if (rest >= size && (rest % size === 0 || unit !== "s")) {
      const n = Math.floor(rest / size)
      out += `${n}${unit}`
      rest -= n * size
    }
  }
  return rest === 0 ? out : `${out}${rest}ms`
}

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
export const SECRET_PARAM =
  /((?:^|[?&;\s])[^=&#\s]*(?:pass|pwd|token|secret|key|sig)[^=&#\s]*\s*=\s*)('[^']*'|[^\s&#]*)/gi

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

export type Raw = { readonly from: "env"; readonly text: string } | { readonly from: "yaml"; readonly value: unknown }
interface Issue {
  readonly problem: string
  readonly fix: string
  readonly value?: string
}
export type Read<T> =
  | { readonly _tag: "Value"; readonly value: T }
  | { readonly _tag: "Issues"; readonly issues: ReadonlyArray<Issue> }

const ok = <T>(value: T): Read<T> => ({ _tag: "Value", value })
const fail = (problem: string, fix: string): Read<never> => ({ _tag: "Issues", issues: [{ problem, fix }] })

export const yamlKind = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "list" : typeof value === "object" ? "mapping" : typeof value

export const display = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(display).join(", ")}]`
    : value !== null && typeof value === "object"
      ? "(mapping)"
      : String(value)

export const rawDisplay = (raw: Raw): string => (raw.from === "env" ? raw.text : display(raw.value))

/** The raw value as text; YAML numbers and booleans are accepted where a string is expected. */
const scalarText = (raw: Raw, fix: string): Read<string> => {
  if (raw.from === "env") return ok(raw.text)
  const value = raw.value
  if (typeof value === "string") return ok(value.trim())
  if (typeof value === "number" || typeof value === "boolean") return ok(String(value))
  return fail(`expected a single value, got a YAML ${yamlKind(value)}`, fix)
}

const then = <A, B>(read: Read<A>, next: (value: A) => Read<B>): Read<B> =>
  read._tag === "Value" ? next(read.value) : read

export const bool = (raw: Raw): Read<boolean> => {
  if (raw.from === "yaml" && typeof raw.value === "boolean") return ok(raw.value)
  const fix = "write true or false (1/0 and yes/no also work)"
  return then(scalarText(raw, fix), (text) => {
    const lower = text.toLowerCase()
    if (lower === "true" || lower === "1" || lower === "yes") return ok(true)
    if (lower === "false" || lower === "0" || lower === "no") return ok(false)
    return fail("is not a boolean", fix)
  })
}

/** A reader: the raw value in, a typed value or issues out; `example` (the key's default) goes into fixes. */
export type Reader<T> = (raw: Raw, example: string) => Read<T>

export const int =
  (min: number, max: number, unit: string): Reader<number> =>
  (raw, example) => {
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

/** `allowZero`: 0 is accepted (a feature that is off), written "0". */
export const duration =
  (allowZero = false): Reader<number> =>
  (raw, example) => {
    const fix = `write a number with a unit (ms, s, m or h), e.g. "${example}"`
    if (raw.from === "yaml" && typeof raw.value === "number") {
      return fail(
        "is a bare number, so its unit is unknown",
        `write the unit too, e.g. "${raw.value}s" for seconds or "${raw.value}ms" for milliseconds`,
      )
    }
    return then(scalarText(raw, fix), (text) => {
      if (allowZero && /^0+(ms|s|m|h)?$/.test(text)) return ok(0)
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

export const ratio = (raw: Raw): Read<number> => {
  const fix = "write a fraction between 0 and 1, e.g. 0.5 (the breaker opens when more than half the calls fail)"
  return then(scalarText(raw, fix), (text) => {
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text)) return fail("is not a number", fix)
    const value = Number(text)
    return value > 0 && value < 1 ? ok(value) : fail("must be greater than 0 and less than 1", fix)
  })
}

export const oneOf =
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

export const identifier =
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
export const list =
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
      if (read._tag === "Issues") for (const issue of read.issues) issues.push({ ...issue, value: text })
      else if (!values.includes(read.value)) values.push(read.value)
    }
    return issues.length > 0 ? { _tag: "Issues", issues } : ok(values)
  }

// RFC 7230 token, which is also what RFC 6265 allows as a cookie name.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

const HOP_BY_HOP = "hop-by-hop headers are never forwarded (they describe one connection, not the request)"

const RESERVED_HEADERS: Readonly<Record<string, string>> = {
  authorization: "Walera already forwards the client's bearer token as Authorization",
  cookie: "cookies are forwarded one by one through auth.forwarded_cookies",
  host: "Walera sets Host for the auth backend itself",
  "content-length": "Walera sets Content-Length for its own request body",
  "content-type": "Walera sends its own JSON body and sets Content-Type for it",
  connection: HOP_BY_HOP,
  "transfer-encoding": HOP_BY_HOP,
  "keep-alive": HOP_BY_HOP,
  te: HOP_BY_HOP,
  trailer: HOP_BY_HOP,
  upgrade: HOP_BY_HOP,
  "proxy-authorization": HOP_BY_HOP,
  "proxy-authenticate": HOP_BY_HOP,
  "proxy-connection": HOP_BY_HOP,
  traceparent: "the trace context sent to the backend is Walera's own span's (with tracing on)",
  tracestate: "the trace context sent to the backend is Walera's own span's; a client's tracestate would not match it",
  "x-request-id": "Walera sends its own X-Request-ID so the auth call can be traced",
}

export const filePath = (raw: Raw): Read<string> => {
  const fix = "write the path of a readable PEM file"
  return then(scalarText(raw, fix), (text) => (text === "" ? fail("is empty", fix) : ok(text)))
}

export const cookieName = (text: string): Read<string> =>
  TOKEN.test(text)
    ? ok(text)
    : fail("is not a valid cookie name", "use the cookie's exact name (letters, digits and !#$%&'*+-.^_`|~)")

export const headerName = (text: string): Read<string> => {
  const lower = text.toLowerCase()
  if (!TOKEN.test(text)) {
    return fail("is not a valid header name", "use the header's name only (letters, digits and !#$%&'*+-.^_`|~)")
  }
  const reserved = RESERVED_HEADERS[lower]
  return reserved === undefined ? ok(lower) : fail("is a reserved header", `remove it: ${reserved}`)
}

export const corsOrigin = (text: string): Read<string> => {
  const canonical = canonicalOrigin(text)
  if (canonical !== undefined) return ok(canonical)
  return fail(
    "is not an origin",
    'write scheme://host[:port] with no path, e.g. "https://app.example.com" (wildcards are not supported)',
  )
}

export const tableName = (text: string): Read<string> => {
  if (IDENTIFIER.test(text)) return ok(text)
  const fix = text.includes(".")
    ? `give the bare table name, e.g. "${text.slice(text.lastIndexOf(".") + 1).toLowerCase()}"`
    : "use the table's lower-case name, e.g. orders"
  return fail("is not a table name", fix)
}

export const databaseUrl = (raw: Raw): Read<string> => {
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

export const backendUrl = (raw: Raw): Read<string> => {
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

export interface Addr {
  readonly host: string
  readonly port: number
}

export const addr = (raw: Raw): Read<Addr> => {
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
