// Configuration: the optional YAML file overlaid by WALERA_* environment variables, validated into one immutable
// value. Every problem is collected and reported together (key, env var, redacted value, fix) so an operator repairs
// a bad deployment in one pass instead of one restart per mistake.
import { parse } from "yaml"
import { SECRET_PARAM, redactUrl, type Raw, yamlKind, display, rawDisplay } from "./config/Readers.ts"
import {
  type KeySpec,
  KEYS,
  type KeyName,
  type Values,
  KEY_NAMES,
  shownDefault,
  envName,
  SECTIONS,
  type BootstrapMode,
  type LogLevel,
} from "./config/Keys.ts"

export interface WaleraConfig {
  readonly database: { readonly url: string }
  readonly auth: {
    readonly backendUrl: string
    readonly allowPlaintext: boolean
    readonly requestTimeoutMs: number
    readonly maxConcurrentCalls: number
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
    readonly admin: { readonly host: string; readonly port: number } | undefined
    readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined
    readonly headersTimeoutMs: number
    readonly maxConnections: number
    readonly h2MaxConcurrentStreams: number
    readonly corsOrigins: ReadonlyArray<string>
    readonly maxPayloadBytes: number
    readonly maxBufferedBytesPerSubscriber: number
    readonly writeTimeoutMs: number
  }
  readonly router: {
    readonly heartbeatIntervalMs: number
    readonly maxChangesPerTx: number
    readonly maxTxBytes: number
    readonly replayMaxBytes: number
    /** 0 = resume off. */
    readonly resumeWindowMs: number
  }
  readonly limits: { readonly globalConcurrent: number; readonly perUserConcurrent: number }
  readonly wal: {
    readonly publicationName: string
    readonly slotNamePrefix: string
    readonly bootstrap: BootstrapMode
    readonly bootstrapTables: ReadonlyArray<string>
  }
  readonly shutdown: { readonly deadlineMs: number; readonly reconnectSpreadMs: number }
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
  | { readonly _tag: "Loaded"; readonly config: WaleraConfig }
  | { readonly _tag: "Invalid"; readonly problems: ReadonlyArray<ConfigProblem> }

export { canonicalOrigin, parseDuration, redactUrl } from "./config/Readers.ts"
export { type BootstrapMode, CONFIG_KEYS, type LogLevel } from "./config/Keys.ts"

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
    // user:password@ even where the URL is too malformed to be recognised as one ("postgresql:/u:pw@db/app").
    .map((piece) => (piece.includes("://") ? redactUrl(piece) : piece.replace(/:[^\s@]*@/g, ":***@")))
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
      if (spec.fallback !== undefined || spec.optional === true) values[name] = spec.fallback
      else problems.push({ key: name, env, value: "(not set)", problem: "is required", fix: spec.requiredFix ?? "" })
      continue
    }
    if (raw.from === "yaml") fromYaml.add(name)
    const read = spec.read(raw, shownDefault(spec))
    if (read._tag === "Value") values[name] = read.value
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

  const cert = values["http.tls_cert_file"]
  const keyFile = values["http.tls_key_file"]
  if ((cert === undefined) !== (keyFile === undefined)) {
    const missing = cert === undefined ? "http.tls_cert_file" : "http.tls_key_file"
    problems.push({
      key: missing,
      env: envName(missing),
      value: "(not set)",
      problem: "is needed when the other of http.tls_cert_file and http.tls_key_file is set",
      fix: `set ${envName(missing)} to the PEM file, or unset both to serve cleartext (HTTP/1.1 and h2c)`,
    })
  }
  const admin = values["http.admin_addr"] as { host: string; port: number } | undefined
  const listen = values["http.addr"] as { host: string; port: number } | undefined
  if (admin !== undefined && listen !== undefined && admin.port !== 0 && admin.port === listen.port) {
    problems.push({
      key: "http.admin_addr",
      env: envName("http.admin_addr"),
      value: `${admin.host}:${admin.port}`,
      problem: "uses the same port as http.addr",
      fix: "give the probes and /metrics a port of their own, e.g. :9090",
    })
  }

  if (problems.length > 0) return { _tag: "Invalid", problems }
  const v = values as Values
  return {
    _tag: "Loaded",
    config: {
      database: { url: v["database.url"] },
      auth: {
        backendUrl: v["auth.backend_url"],
        allowPlaintext: v["auth.allow_plaintext"],
        requestTimeoutMs: v["auth.request_timeout"],
        maxConcurrentCalls: v["auth.max_concurrent_calls"],
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
        admin: v["http.admin_addr"],
        tls:
          v["http.tls_cert_file"] === undefined || v["http.tls_key_file"] === undefined
            ? undefined
            : { certFile: v["http.tls_cert_file"], keyFile: v["http.tls_key_file"] },
        headersTimeoutMs: v["http.headers_timeout"],
        maxConnections: v["http.max_connections"],
        h2MaxConcurrentStreams: v["http.h2_max_concurrent_streams"],
        corsOrigins: v["http.cors_origins"],
        maxPayloadBytes: v["http.max_payload_bytes"],
        maxBufferedBytesPerSubscriber: v["http.max_buffered_bytes_per_subscriber"],
        writeTimeoutMs: v["http.write_timeout"],
      },
      router: {
        heartbeatIntervalMs: v["router.heartbeat_interval"],
        maxChangesPerTx: v["router.max_changes_per_tx"],
        maxTxBytes: v["router.max_tx_bytes"],
        replayMaxBytes: v["router.replay_max_bytes"],
        resumeWindowMs: v["router.resume_window"],
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
      shutdown: { deadlineMs: v["shutdown.deadline"], reconnectSpreadMs: v["shutdown.reconnect_spread"] },
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
