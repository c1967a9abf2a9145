import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  CONFIG_KEYS,
  type ConfigProblem,
  type ConfigResult,
  canonicalOrigin,
  formatProblems,
  loadConfig,
  parseDuration,
  redactUrl,
  type WaleraConfig,
} from "../../src/Config.ts"

const REQUIRED = {
  WALERA_DATABASE_URL: "postgres://walera:s3cret-pw@db.internal:5432/app",
  WALERA_AUTH_BACKEND_URL: "https://auth.example.com/",
}

const load = (env: Record<string, string | undefined>, yamlText?: string): ConfigResult =>
  loadConfig({ env, yamlText, yamlSource: "config.yaml" })

const config = (env: Record<string, string | undefined>, yamlText?: string): WaleraConfig => {
  const result = load(env, yamlText)
  if (result._tag === "Invalid") throw new Error(formatProblems(result.problems))
  return result.config
}

const problems = (env: Record<string, string | undefined>, yamlText?: string): ReadonlyArray<ConfigProblem> => {
  const result = load(env, yamlText)
  if (result._tag === "Loaded") throw new Error("expected configuration problems")
  return result.problems
}

const only = (env: Record<string, string | undefined>, yamlText?: string): ConfigProblem => {
  const found = problems(env, yamlText)
  expect(found, formatProblems(found)).toHaveLength(1)
  return found[0]!
}

describe("loadConfig", () => {
  it("starts with only the two required variables and applies every default", () => {
    expect(config(REQUIRED)).toEqual({
      database: { url: "postgres://walera:s3cret-pw@db.internal:5432/app" },
      auth: {
        backendUrl: "https://auth.example.com",
        allowPlaintext: false,
        requestTimeoutMs: 2_000,
        maxConcurrentCalls: 256,
        defaultTtlSeconds: 60,
        forwardedCookies: [],
        forwardedHeaders: [],
        breaker: { windowMs: 30_000, minSamples: 20, failureRatio: 0.5, cooldownMs: 30_000 },
      },
      http: {
        host: "0.0.0.0",
        port: 8080,
        admin: undefined,
        tls: undefined,
        headersTimeoutMs: 10_000,
        maxConnections: 60_000,
        h2MaxConcurrentStreams: 1_000,
        corsOrigins: [],
        maxPayloadBytes: 10_485_760,
        maxBufferedBytesPerSubscriber: 1_048_576,
        writeTimeoutMs: 5_000,
      },
      router: {
        heartbeatIntervalMs: 15_000,
        maxChangesPerTx: 10_000,
        maxTxBytes: 67_108_864,
        replayMaxBytes: 67_108_864,
        resumeWindowMs: 0,
      },
      limits: { globalConcurrent: 50_000, perUserConcurrent: 10 },
      wal: { publicationName: "walera_pub", slotNamePrefix: "walera", bootstrap: "auto", bootstrapTables: [] },
      shutdown: { deadlineMs: 10_000, reconnectSpreadMs: 30_000 },
      log: { level: "info" },
    })
  })

  it("reads the admin address, TLS files and resume window, and refuses half a TLS pair or a shared port", () => {
    const c = config({
      ...REQUIRED,
      WALERA_HTTP_ADMIN_ADDR: "127.0.0.1:9090",
      WALERA_HTTP_TLS_CERT_FILE: "/etc/walera/tls.crt",
      WALERA_HTTP_TLS_KEY_FILE: "/etc/walera/tls.key",
      WALERA_ROUTER_RESUME_WINDOW: "60s",
    })
    expect(c.http.admin).toEqual({ host: "127.0.0.1", port: 9090 })
    expect(c.http.tls).toEqual({ certFile: "/etc/walera/tls.crt", keyFile: "/etc/walera/tls.key" })
    expect(c.router.resumeWindowMs).toBe(60_000)
    expect(config({ ...REQUIRED, WALERA_ROUTER_RESUME_WINDOW: "0" }).router.resumeWindowMs).toBe(0)
    expect(only({ ...REQUIRED, WALERA_HTTP_TLS_CERT_FILE: "/x.crt" }).key).toBe("http.tls_key_file")
    expect(only({ ...REQUIRED, WALERA_HTTP_ADMIN_ADDR: ":8080" }).key).toBe("http.admin_addr")
  })

  it("refuses hop-by-hop and trace headers in auth.forwarded_headers", () => {
    for (const name of ["Connection", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Authorization", "traceparent"]) {
      const p = only({ ...REQUIRED, WALERA_AUTH_FORWARDED_HEADERS: `x-tenant,${name}` })
      expect(p.key).toBe("auth.forwarded_headers")
      expect(p.problem).toContain("reserved")
    }
  })

  it("reads nested YAML keys", () => {
    const yaml = `
database:
  url: postgres://u:p@localhost/db
auth:
  backend_url: https://auth.example.com/base/
  request_timeout: 500ms
  breaker:
    min_samples: 5
    failure_ratio: 0.25
    window: 1m
http:
  addr: "[::1]:9000"
  cors_origins:
    - HTTPS://App.Example.com/
    - http://localhost:3000
wal:
  bootstrap: verify
  bootstrap_tables: [orders, line_items]
log:
  level: DEBUG
`
    const c = config({}, yaml)
    expect(c.database.url).toBe("postgres://u:p@localhost/db")
    expect(c.auth.backendUrl).toBe("https://auth.example.com/base")
    expect(c.auth.requestTimeoutMs).toBe(500)
    expect(c.auth.breaker).toEqual({ windowMs: 60_000, minSamples: 5, failureRatio: 0.25, cooldownMs: 30_000 })
    expect(c.http.host).toBe("::1")
    expect(c.http.port).toBe(9000)
    expect(c.http.corsOrigins).toEqual(["https://app.example.com", "http://localhost:3000"])
    expect(c.wal.bootstrap).toBe("verify")
    expect(c.wal.bootstrapTables).toEqual(["orders", "line_items"])
    expect(c.log.level).toBe("debug")
  })

  it("lets env override YAML, and treats an empty env value as unset", () => {
    const yaml = "router:\n  heartbeat_interval: 20s\n  max_changes_per_tx: 500\nlimits:\n  per_user_concurrent: 3\n"
    const c = config(
      {
        ...REQUIRED,
        WALERA_ROUTER_HEARTBEAT_INTERVAL: "2m",
        WALERA_LIMITS_PER_USER_CONCURRENT: "",
        WALERA_ROUTER_MAX_CHANGES_PER_TX: "  ",
      },
      yaml,
    )
    expect(c.router.heartbeatIntervalMs).toBe(120_000)
    expect(c.router.maxChangesPerTx).toBe(500)
    expect(c.limits.perUserConcurrent).toBe(3)
  })

  it("ignores an overridden invalid YAML value and unknown env vars", () => {
    const c = config(
      { ...REQUIRED, WALERA_HTTP_WRITE_TIMEOUT: "1s", WALERA_TEST_DATABASE_URL: "x", WALERA_NOPE: "y" },
      "http:\n  write_timeout: nonsense\n",
    )
    expect(c.http.writeTimeoutMs).toBe(1_000)
  })

  it("accepts an empty or comment-only YAML file", () => {
    expect(config(REQUIRED, "").log.level).toBe("info")
    expect(config(REQUIRED, "# nothing yet\n").log.level).toBe("info")
    expect(config(REQUIRED, "auth:\nhttp:\n  addr:\n").http.port).toBe(8080)
  })

  it("parses booleans in every accepted spelling", () => {
    for (const text of ["true", "TRUE", "1", "yes", "Yes"]) {
      const c = config({ ...REQUIRED, WALERA_AUTH_BACKEND_URL: "http://auth", WALERA_AUTH_ALLOW_PLAINTEXT: text })
      expect(c.auth.allowPlaintext).toBe(true)
    }
    for (const text of ["false", "0", "no", "NO"]) {
      expect(config({ ...REQUIRED, WALERA_AUTH_ALLOW_PLAINTEXT: text }).auth.allowPlaintext).toBe(false)
    }
    expect(config(REQUIRED, "auth:\n  allow_plaintext: true\n").auth.allowPlaintext).toBe(true)
  })

  it("parses lists from env and YAML, trimming blanks and duplicates", () => {
    const c = config({
      ...REQUIRED,
      WALERA_AUTH_FORWARDED_COOKIES: " session , csrf,,session ",
      WALERA_AUTH_FORWARDED_HEADERS: "X-Tenant-Id, x-trace",
    })
    expect(c.auth.forwardedCookies).toEqual(["session", "csrf"])
    expect(c.auth.forwardedHeaders).toEqual(["x-tenant-id", "x-trace"])
    const y = config(REQUIRED, "auth:\n  forwarded_cookies: [sid]\n  forwarded_headers: 'X-A, X-B'\n")
    expect(y.auth.forwardedCookies).toEqual(["sid"])
    expect(y.auth.forwardedHeaders).toEqual(["x-a", "x-b"])
  })

  it("parses http.addr forms", () => {
    const addr = (text: string) => {
      const c = config({ ...REQUIRED, WALERA_HTTP_ADDR: text })
      return [c.http.host, c.http.port]
    }
    expect(addr(":8080")).toEqual(["0.0.0.0", 8080])
    expect(addr("127.0.0.1:0")).toEqual(["127.0.0.1", 0])
    expect(addr("[::1]:8080")).toEqual(["::1", 8080])
    expect(addr("localhost:65535")).toEqual(["localhost", 65535])
    expect(config(REQUIRED, 'http:\n  addr: ":9090"\n').http.port).toBe(9090)
  })

  it("accepts a unix-socket database URL with a host parameter", () => {
    const url = "postgresql:///app?host=/var/run/postgresql"
    expect(config({ ...REQUIRED, WALERA_DATABASE_URL: url }).database.url).toBe(url)
  })
})

describe("loadConfig problems", () => {
  it("names both required keys with a fix when nothing is set", () => {
    const found = problems({})
    expect(found.map((p) => [p.key, p.env, p.value, p.fix])).toEqual([
      [
        "database.url",
        "WALERA_DATABASE_URL",
        "(not set)",
        "set WALERA_DATABASE_URL=postgres://user:password@host:5432/dbname",
      ],
      [
        "auth.backend_url",
        "WALERA_AUTH_BACKEND_URL",
        "(not set)",
        "set WALERA_AUTH_BACKEND_URL=https://auth.example.com",
      ],
    ])
  })

  it.each([
    ["WALERA_DATABASE_URL", "mysql://u:pw@h/db", "database.url", /postgres/],
    ["WALERA_DATABASE_URL", "postgres://u:p#w@h/db", "database.url", /percent-encode/],
    ["WALERA_DATABASE_URL", "postgres:///db", "database.url", /postgres:\/\/user/],
    ["WALERA_AUTH_BACKEND_URL", "ftp://auth.example.com", "auth.backend_url", /https:\/\/auth\.example\.com/],
    ["WALERA_AUTH_BACKEND_URL", "https://auth.example.com?x=1", "auth.backend_url", /auth backend/],
    ["WALERA_AUTH_BACKEND_URL", "https://u:p@auth.example.com", "auth.backend_url", /remove user:password@/],
    [
      "WALERA_AUTH_BACKEND_URL",
      "http://auth.internal",
      "auth.backend_url",
      /^use https:\/\/ or set WALERA_AUTH_ALLOW_PLAINTEXT=true \(only on a trusted network\)$/,
    ],
    ["WALERA_AUTH_ALLOW_PLAINTEXT", "maybe", "auth.allow_plaintext", /true or false/],
    ["WALERA_AUTH_REQUEST_TIMEOUT", "2", "auth.request_timeout", /"2s"/],
    ["WALERA_AUTH_REQUEST_TIMEOUT", "soon", "auth.request_timeout", /"2s"/],
    ["WALERA_AUTH_REQUEST_TIMEOUT", "0s", "auth.request_timeout", /unit/],
    ["WALERA_AUTH_REQUEST_TIMEOUT", "1000h", "auth.request_timeout", /596h/],
    ["WALERA_AUTH_DEFAULT_TTL_SECONDS", "-1", "auth.default_ttl_seconds", /whole number/],
    ["WALERA_AUTH_DEFAULT_TTL_SECONDS", "1.5", "auth.default_ttl_seconds", /whole number/],
    ["WALERA_AUTH_FORWARDED_COOKIES", "bad cookie", "auth.forwarded_cookies", /cookie's exact name/],
    ["WALERA_AUTH_FORWARDED_HEADERS", "X Bad", "auth.forwarded_headers", /header's name/],
    ["WALERA_AUTH_BREAKER_WINDOW", "-5s", "auth.breaker.window", /"30s"/],
    ["WALERA_AUTH_BREAKER_MIN_SAMPLES", "0", "auth.breaker.min_samples", /from 1/],
    ["WALERA_AUTH_BREAKER_FAILURE_RATIO", "1", "auth.breaker.failure_ratio", /between 0 and 1/],
    ["WALERA_AUTH_BREAKER_FAILURE_RATIO", "0", "auth.breaker.failure_ratio", /between 0 and 1/],
    ["WALERA_AUTH_BREAKER_COOLDOWN", "30", "auth.breaker.cooldown", /"30s"/],
    ["WALERA_SHUTDOWN_DEADLINE", "10x", "shutdown.deadline", /"10s"/],
    ["WALERA_LOG_LEVEL", "verbose", "log.level", /debug, info, warn, error/],
    ["WALERA_HTTP_ADDR", "8080", "http.addr", /":8080"/],
    ["WALERA_HTTP_ADDR", "::1:8080", "http.addr", /\[::1\]:8080/],
    ["WALERA_HTTP_ADDR", "host:70000", "http.addr", /host:port/],
    ["WALERA_HTTP_CORS_ORIGINS", "https://a.com/app", "http.cors_origins", /scheme:\/\/host/],
    ["WALERA_HTTP_CORS_ORIGINS", "*", "http.cors_origins", /wildcards/],
    ["WALERA_HTTP_MAX_PAYLOAD_BYTES", "10MB", "http.max_payload_bytes", /whole number of bytes/],
    ["WALERA_HTTP_MAX_BUFFERED_BYTES_PER_SUBSCRIBER", "0", "http.max_buffered_bytes_per_subscriber", /bytes/],
    ["WALERA_HTTP_WRITE_TIMEOUT", "5", "http.write_timeout", /"5s"/],
    ["WALERA_ROUTER_HEARTBEAT_INTERVAL", "15", "router.heartbeat_interval", /"15s"/],
    ["WALERA_ROUTER_MAX_CHANGES_PER_TX", "lots", "router.max_changes_per_tx", /whole number/],
    ["WALERA_LIMITS_GLOBAL_CONCURRENT", "0", "limits.global_concurrent", /from 1/],
    ["WALERA_LIMITS_PER_USER_CONCURRENT", "-3", "limits.per_user_concurrent", /from 1/],
    ["WALERA_WAL_PUBLICATION_NAME", "Walera_Pub", "wal.publication_name", /"walera_pub"/],
    ["WALERA_WAL_PUBLICATION_NAME", "9pub", "wal.publication_name", /lower-case letters/],
    ["WALERA_WAL_SLOT_NAME_PREFIX", "a".repeat(31), "wal.slot_name_prefix", /30 characters/],
    ["WALERA_WAL_BOOTSTRAP", "always", "wal.bootstrap", /auto, verify, off/],
    ["WALERA_WAL_BOOTSTRAP_TABLES", "public.orders", "wal.bootstrap_tables", /"orders"/],
  ])("%s=%s is a problem of %s", (env, value, key, fix) => {
    const problem = only({ ...REQUIRED, [env]: value })
    expect(problem.key).toBe(key)
    expect(problem.env).toBe(env)
    expect(problem.problem).not.toBe("")
    expect(problem.fix).toMatch(fix)
  })

  it.each([
    "Authorization",
    "cookie",
    "HOST",
    "Content-Length",
    "content-type",
    "Connection",
    "Transfer-Encoding",
    "x-request-id",
  ])("refuses the reserved header %s and says why", (name) => {
    const problem = only({ ...REQUIRED, WALERA_AUTH_FORWARDED_HEADERS: `x-tenant, ${name}` })
    expect(problem.key).toBe("auth.forwarded_headers")
    expect(problem.value).toBe(name)
    expect(problem.problem).toMatch(/reserved/)
    expect(problem.fix).toMatch(/^remove it: \S+/)
  })

  it("allows an http backend with allow_plaintext", () => {
    const c = config({ ...REQUIRED, WALERA_AUTH_BACKEND_URL: "http://auth:8081", WALERA_AUTH_ALLOW_PLAINTEXT: "1" })
    expect(c.auth.backendUrl).toBe("http://auth:8081")
  })

  it("lists every problem at once", () => {
    const found = problems({
      ...REQUIRED,
      WALERA_HTTP_WRITE_TIMEOUT: "5",
      WALERA_LOG_LEVEL: "loud",
      WALERA_LIMITS_GLOBAL_CONCURRENT: "many",
      WALERA_WAL_BOOTSTRAP: "sometimes",
      WALERA_AUTH_BREAKER_FAILURE_RATIO: "2",
    })
    expect(found.map((p) => p.key).sort()).toEqual([
      "auth.breaker.failure_ratio",
      "http.write_timeout",
      "limits.global_concurrent",
      "log.level",
      "wal.bootstrap",
    ])
  })

  it("reports each bad list item on its own", () => {
    const found = problems({ ...REQUIRED, WALERA_HTTP_CORS_ORIGINS: "https://ok.com, nope, ftp://x.com/path" })
    expect(found.map((p) => p.value)).toEqual(["nope", "ftp://x.com/path"])
  })

  it("refuses a YAML number for a duration with a fix that shows the unit", () => {
    const problem = only(REQUIRED, "http:\n  write_timeout: 5\n")
    expect(problem.key).toBe("http.write_timeout")
    expect(problem.problem).toMatch(/config\.yaml/)
    expect(problem.fix).toMatch(/"5s"/)
  })

  it("refuses YAML values of the wrong shape", () => {
    expect(only(REQUIRED, "log:\n  level: [debug]\n").key).toBe("log.level")
    expect(only(REQUIRED, "auth:\n  forwarded_cookies: {a: 1}\n").fix).toMatch(/list/)
    expect(only(REQUIRED, "auth: https://auth.example.com\n").key).toBe("auth")
    expect(only(REQUIRED, "http:\n  addr: 8080\n").fix).toMatch(/":8080"/)
  })

  it("reports unknown YAML keys with the closest known key", () => {
    const found = problems(
      REQUIRED,
      `
databse:
  url: postgres://u:hunter2@h/db
auth:
  breaker:
    windw: 10s
    failure_rate_threshold: 0.4
  backendUrl: https://auth.example.com
http:
  heartbeat_interval: 5s
frobnicate: true
`,
    )
    expect(found.map((p) => [p.key, p.fix])).toEqual([
      ["databse", "did you mean database? (every key is listed in docs/operations.md)"],
      ["auth.breaker.windw", "did you mean auth.breaker.window? (every key is listed in docs/operations.md)"],
      [
        "auth.breaker.failure_rate_threshold",
        "did you mean auth.breaker.failure_ratio? (every key is listed in docs/operations.md)",
      ],
      ["auth.backendUrl", "did you mean auth.backend_url? (every key is listed in docs/operations.md)"],
      [
        "http.heartbeat_interval",
        "did you mean router.heartbeat_interval? (every key is listed in docs/operations.md)",
      ],
      ["frobnicate", "remove it; every key is listed in docs/operations.md"],
    ])
    expect(found.every((p) => p.problem.startsWith("is an unknown key"))).toBe(true)
    expect(found[1]!.env).toBe("WALERA_AUTH_BREAKER_WINDW")
  })

  it("reports a dotted YAML key with a fix to nest it", () => {
    expect(only(REQUIRED, "log.level: debug\n").fix).toMatch(/nest it/)
  })

  it("reports a YAML syntax error as one (file) problem and still checks env", () => {
    const found = problems({}, "database:\n  url: postgres://u:hunter2@h/db\n  x: y: z\n")
    expect(found[0]!.key).toBe("(file)")
    expect(found[0]!.value).toBe("config.yaml")
    expect(found[0]!.problem).toMatch(/^is not valid YAML: .*line 3/)
    expect(found.map((p) => p.key)).toEqual(["(file)", "database.url", "auth.backend_url"])
    expect(formatProblems(found)).not.toContain("hunter2")
  })

  it("refuses a YAML file that is not a mapping", () => {
    expect(only(REQUIRED, "- a\n- b\n").key).toBe("(file)")
  })

  it("never prints the database password", () => {
    const found = problems({
      WALERA_DATABASE_URL: "mysql://walera:hunter2@db/app?password=hunter2",
      WALERA_AUTH_BACKEND_URL: "http://svc:tok3n@auth",
    })
    const text = formatProblems(found)
    expect(text).not.toContain("hunter2")
    expect(text).not.toContain("tok3n")
    expect(text).toContain("mysql://walera:***@db/app?password=***")
  })

  it("never prints the password of a database.url too malformed to parse as a URL", () => {
    for (const url of [
      "postgresql:/walera:Sup3rS3cret@db/app",
      "postgres//walera:Sup3rS3cret@db/app",
      "walera:Sup3rS3cret@db",
    ]) {
      const text = formatProblems(problems({ ...REQUIRED, WALERA_DATABASE_URL: url }))
      expect(text, url).not.toContain("Sup3rS3cret")
      expect(text).toContain("database.url")
    }
  })

  it("hides token-looking values under auth", () => {
    const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.abc123"
    const found = problems(REQUIRED, `auth:\n  token: ${token}\n  forwarded_headers: ["Bearer ${token}"]\n`)
    expect(formatProblems(found)).not.toContain("eyJ")
  })

  it("formats one line per problem under a header", () => {
    const text = formatProblems(problems({ WALERA_DATABASE_URL: "postgres://u:pw@h/db" }))
    expect(text.split("\n")).toEqual([
      "invalid configuration: 1 problem",
      "  - auth.backend_url (WALERA_AUTH_BACKEND_URL) = (not set): is required. Fix: set WALERA_AUTH_BACKEND_URL=https://auth.example.com",
    ])
    expect(formatProblems(problems({}))).toMatch(/^invalid configuration: 2 problems\n {2}- database\.url/)
  })
})

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["15s", 15_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1.5s", 1_500],
    ["2.3s", 2_300],
    ["1m30s", 90_000],
    ["0s", 0],
  ])("%s → %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each(["", "15", "1.5", "s", "15 s", "-5s", "15sec", "1d", "5S", "1e3s"])("refuses %j", (text) => {
    expect(parseDuration(text)).toBeUndefined()
  })

  it("reads n ms and n s for any whole n", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000_000 }), (n) => {
        expect(parseDuration(`${n}ms`)).toBe(n)
        expect(parseDuration(`${n}s`)).toBe(n * 1000)
      }),
    )
  })
})

describe("redactUrl", () => {
  it.each([
    ["postgres://user:secret@h/db", "postgres://user:***@h/db"],
    ["postgres://user@h/db", "postgres://user@h/db"],
    ["postgres://h/db?user=u&password=secret&sslmode=require", "postgres://h/db?user=u&password=***&sslmode=require"],
    ["postgres://user:p%40ss@h:5432/db", "postgres://user:***@h:5432/db"],
    ["postgres://user:p@ss@h/db", "postgres://user:***@h/db"],
    ["postgres://user:pa#ss@h/db", "postgres://user:***@h/db"],
  ])("%s → %s", (url, redacted) => {
    expect(redactUrl(url)).toBe(redacted)
  })
})

describe("canonicalOrigin", () => {
  it.each([
    ["HTTPS://App.Example.com/", "https://app.example.com"],
    ["https://app.example.com", "https://app.example.com"],
    ["http://localhost:3000", "http://localhost:3000"],
    ["https://a.com:443", "https://a.com:443"],
    ["http://[::1]:8080", "http://[::1]:8080"],
    ["https://bücher.de", "https://xn--bcher-kva.de"],
  ])("%s → %s", (origin, canonical) => {
    expect(canonicalOrigin(origin)).toBe(canonical)
  })

  it.each([
    "app.example.com",
    "https://",
    "https://a.com/path",
    "https://a.com?x=1",
    "https://user@a.com",
    "https://a.com:0",
    "https://a.com:99999",
    "*",
    "null",
  ])("refuses %j", (origin) => {
    expect(canonicalOrigin(origin)).toBeUndefined()
  })
})

describe("CONFIG_KEYS", () => {
  it("lists every key with its env var, a default and a reason", () => {
    expect(CONFIG_KEYS).toHaveLength(37)
    for (const entry of CONFIG_KEYS) {
      expect(entry.env).toBe("WALERA_" + entry.key.toUpperCase().replaceAll(".", "_"))
      expect(entry.default).not.toBe("")
      expect(entry.description).not.toBe("")
    }
    expect(CONFIG_KEYS.find((k) => k.key === "auth.breaker.min_samples")?.env).toBe("WALERA_AUTH_BREAKER_MIN_SAMPLES")
  })
})
