// Every configuration key with its default (written once: what --help, the docs check and error messages show is
// derived from it), the reason for it and its reader — in the order they are documented and reported. --help
// prints this table, and a test checks that docs/operations.md names every key with the same default.
import {
  type Reader,
  bool,
  int,
  duration,
  formatDuration,
  ratio,
  oneOf,
  identifier,
  list,
  cookieName,
  headerName,
  corsOrigin,
  tableName,
  databaseUrl,
  backendUrl,
  filePath,
  type Addr,
  addr,
} from "./Readers.ts"

export type BootstrapMode = "auto" | "verify" | "off"
export type LogLevel = "debug" | "info" | "warn" | "error"

// ---------------------------------------------------------------------------------------------------------------------
// Every key, in the order they are documented and reported.

export interface KeySpec<T> {
  /** undefined = required, or optional without a default when `optional` is set */
  readonly fallback: T | undefined
  readonly description: string
  readonly read: Reader<T>
  /** How the default is shown, when the value's own text would not say it (lists, optional keys). */
  readonly shown?: string
  /** Set for keys that may stay unset (their feature is off). */
  readonly optional?: true
  readonly requiredFix?: string
}

export const key = <T>(spec: KeySpec<T>): KeySpec<T> => spec

/** The default as an operator writes it: "2s", "10000", "none". */
export const shownDefault = (spec: KeySpec<unknown>): string => {
  if (spec.shown !== undefined) return spec.shown
  const v = spec.fallback
  if (v === undefined) return spec.optional === true ? "none" : "required"
  if (Array.isArray(v)) return v.length === 0 ? "none" : v.join(",")
  if (typeof v === "object" && v !== null && "host" in v && "port" in v)
    return `${(v as Addr).host}:${(v as Addr).port}`
  if (spec.read === (DURATION as Reader<unknown>) || spec.read === (DURATION_OR_OFF as Reader<unknown>))
    return formatDuration(v as number)
  return String(v)
}

const DURATION = duration()
const DURATION_OR_OFF = duration(true)

export const KEYS = {
  "database.url": key<string>({
    fallback: undefined,
    description: "PostgreSQL connection URL; the role needs REPLICATION to stream the WAL",
    read: databaseUrl,
    requiredFix: "set WALERA_DATABASE_URL=postgres://user:password@host:5432/dbname",
  }),
  "auth.backend_url": key<string>({
    fallback: undefined,
    description: "base URL of the auth backend; Walera POSTs {backend_url}/auth/sessions on every open and refresh",
    read: backendUrl,
    requiredFix: "set WALERA_AUTH_BACKEND_URL=https://auth.example.com",
  }),
  "auth.allow_plaintext": key<boolean>({
    fallback: false,
    description: "allow an http:// auth backend; user credentials then cross the network unencrypted",
    read: bool,
  }),
  "auth.request_timeout": key<number>({
    fallback: 2_000,
    description: "timeout of one auth backend call; a timeout counts as a breaker failure",
    read: DURATION,
  }),
  "auth.max_concurrent_calls": key<number>({
    fallback: 256,
    description:
      "auth backend calls in flight at once; an open beyond it gets 503 Retry-After: 1 without a call (never a breaker sample)",
    read: int(1, 100_000, "calls"),
  }),
  "auth.default_ttl_seconds": key<number>({
    fallback: 60,
    description: "grant lifetime when the auth response has no ttl_seconds; 0 = never refresh",
    read: int(0, 2_147_483, "seconds"),
  }),
  "auth.forwarded_cookies": key<ReadonlyArray<string>>({
    fallback: [],
    description: "cookie names forwarded to the auth backend; no other cookie leaves Walera",
    read: list(cookieName, "cookie name"),
  }),
  "auth.forwarded_headers": key<ReadonlyArray<string>>({
    fallback: [],
    description: "request header names forwarded to the auth backend (reserved names are refused)",
    read: list(headerName, "header name"),
  }),
  "auth.breaker.window": key<number>({
    fallback: 30_000,
    description: "sliding window over which the auth circuit breaker counts calls",
    read: DURATION,
  }),
  "auth.breaker.min_samples": key<number>({
    fallback: 20,
    description: "calls needed in the window before the breaker may open, so a few failures do not trip it",
    read: int(1, 1_000_000, "calls"),
  }),
  "auth.breaker.failure_ratio": key<number>({
    fallback: 0.5,
    description: "the breaker opens when the share of failed calls in the window is above this",
    read: ratio,
  }),
  "auth.breaker.cooldown": key<number>({
    fallback: 30_000,
    description: "how long the breaker stays open before one probe call is let through",
    read: DURATION,
  }),
  "shutdown.deadline": key<number>({
    fallback: 10_000,
    description: "longest a graceful shutdown may take before the process exits anyway",
    read: DURATION,
  }),
  "shutdown.reconnect_spread": key<number>({
    fallback: 30_000,
    description:
      "at shutdown each stream gets its own random retry: delay in [1s, this], so clients come back spread out",
    read: DURATION,
  }),
  "log.level": key<LogLevel>({
    fallback: "info",
    description: "lowest log level written: debug, info, warn or error",
    read: oneOf<LogLevel>(["debug", "info", "warn", "error"]),
  }),
  "http.addr": key<Addr>({
    fallback: { host: "0.0.0.0", port: 8080 },
    description: 'listen address host:port (":8080" = all IPv4 interfaces, "[::1]:8080" for IPv6, port 0 = any free)',
    read: addr,
  }),
  "http.admin_addr": key<Addr | undefined>({
    fallback: undefined,
    optional: true,
    shown: "none (same as http.addr)",
    description:
      "serve /livez, /healthz, /readyz and /metrics on this host:port only; http.addr then serves streams only",
    read: addr,
  }),
  "http.tls_cert_file": key<string | undefined>({
    fallback: undefined,
    optional: true,
    description: "PEM certificate chain; with http.tls_key_file, http.addr speaks TLS with ALPN h2 and http/1.1",
    read: filePath,
  }),
  "http.tls_key_file": key<string | undefined>({
    fallback: undefined,
    optional: true,
    description: "PEM private key for http.tls_cert_file",
    read: filePath,
  }),
  "http.headers_timeout": key<number>({
    fallback: 10_000,
    description: "a connection that has not sent complete request headers by then is closed",
    read: DURATION,
  }),
  "http.max_connections": key<number>({
    fallback: 60_000,
    description: "most client connections held at once; more are closed at once and counted",
    read: int(1, 10_000_000, "connections"),
  }),
  "http.h2_max_concurrent_streams": key<number>({
    fallback: 1_000,
    description: "SETTINGS_MAX_CONCURRENT_STREAMS of each HTTP/2 connection",
    read: int(1, 1_000_000, "streams"),
  }),
  "http.cors_origins": key<ReadonlyArray<string>>({
    fallback: [],
    description: "browser origins allowed to open streams (scheme://host[:port]); none = no CORS headers",
    read: list(corsOrigin, "origin"),
  }),
  "http.max_payload_bytes": key<number>({
    fallback: 10_485_760,
    description: "largest single event (transaction or initial_data) in bytes; bigger ones are not sent whole",
    read: int(1, Number.MAX_SAFE_INTEGER, "bytes"),
  }),
  "http.max_buffered_bytes_per_subscriber": key<number>({
    fallback: 1_048_576,
    description: "unsent bytes a subscriber may hold before it is dropped as slow_consumer; bounds memory per client",
    read: int(1, Number.MAX_SAFE_INTEGER, "bytes"),
  }),
  "http.write_timeout": key<number>({
    fallback: 5_000,
    description: "how long a socket may accept nothing before the subscriber is dropped as slow_consumer",
    read: DURATION,
  }),
  "router.heartbeat_interval": key<number>({
    fallback: 15_000,
    description: "idle time after which a heartbeat is sent, keeping proxies from closing quiet streams",
    read: DURATION,
  }),
  "router.max_changes_per_tx": key<number>({
    fallback: 10_000,
    description:
      "most changes of one transaction held in memory (all tables); a larger one ends the streams it touches with tx_too_large",
    read: int(1, Number.MAX_SAFE_INTEGER, "changes"),
  }),
  "router.max_tx_bytes": key<number>({
    fallback: 67_108_864,
    description:
      "most decoded bytes of one transaction held in memory; a larger one ends the streams it touches with tx_too_large",
    read: int(1024, 1_073_741_824, "bytes"),
  }),
  "router.replay_max_bytes": key<number>({
    fallback: 67_108_864,
    description: "most bytes the replay window holds (gapless opens and resume)",
    read: int(1024, 4_294_967_296, "bytes"),
  }),
  "router.resume_window": key<number>({
    fallback: 0,
    description:
      "how far back Last-Event-ID resume reaches; 0 = off (reconnects then resync from initial_data or the product's API)",
    read: DURATION_OR_OFF,
  }),
  "limits.global_concurrent": key<number>({
    fallback: 50_000,
    description: "most concurrent streams (and handshakes) on this instance; more get 503",
    read: int(1, Number.MAX_SAFE_INTEGER, "streams"),
  }),
  "limits.per_user_concurrent": key<number>({
    fallback: 10,
    description: "most concurrent streams per user_id; more get 429",
    read: int(1, Number.MAX_SAFE_INTEGER, "streams"),
  }),
  "wal.publication_name": key<string>({
    fallback: "walera_pub",
    description: "PostgreSQL publication Walera reads",
    read: identifier(63, "(a PostgreSQL identifier)"),
  }),
  "wal.slot_name_prefix": key<string>({
    fallback: "walera",
    description: "prefix of the replication slot name; short so the generated suffix fits in 63 characters",
    read: identifier(30, "(room is left for the slot suffix)"),
  }),
  "wal.bootstrap": key<BootstrapMode>({
    fallback: "auto",
    description: "auto = create the publication if missing, verify = only check it, off = check nothing",
    read: oneOf<BootstrapMode>(["auto", "verify", "off"], " (tables go in wal.bootstrap_tables)"),
  }),
  "wal.bootstrap_tables": key<ReadonlyArray<string>>({
    fallback: [],
    shown: "none (= all tables)",
    description: "tables the bootstrapped publication covers; none = all tables",
    read: list(tableName, "table name"),
  }),
}

export type KeyName = keyof typeof KEYS
export type Values = { -readonly [K in KeyName]: (typeof KEYS)[K] extends KeySpec<infer T> ? T : never }

export const KEY_NAMES = Object.keys(KEYS) as Array<KeyName>

export const envName = (key: string): string => "WALERA_" + key.toUpperCase().replaceAll(".", "_")

// Every dotted prefix of a key is a YAML mapping ("auth", "auth.breaker", ...).
export const SECTIONS: ReadonlySet<string> = new Set(
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
    default: shownDefault(KEYS[name] as KeySpec<unknown>),
    description: KEYS[name].description,
  }))
