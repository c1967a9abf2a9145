// Every configuration key with its default, the reason for it and its reader — in the order they are documented
// and reported. --help prints this table, and a test checks that docs/operations.md names every key.
import {
  type Raw,
  type Read,
  bool,
  int,
  duration,
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
  type Addr,
  addr,
} from "./Readers.ts"

export type BootstrapMode = "auto" | "verify" | "off"
export type LogLevel = "debug" | "info" | "warn" | "error"

// ---------------------------------------------------------------------------------------------------------------------
// Every key, in the order they are documented and reported.

export interface KeySpec<T> {
  /** undefined = required */
  readonly fallback: T | undefined
  readonly shownDefault: string
  readonly description: string
  readonly read: (raw: Raw) => Read<T>
  readonly requiredFix?: string
}

export const key = <T>(spec: KeySpec<T>): KeySpec<T> => spec

export const KEYS = {
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
    default: KEYS[name].shownDefault,
    description: KEYS[name].description,
  }))
