// Entry point of `npm start`: flags, configuration (YAML + WALERA_* env), then the
// application layer until SIGTERM/SIGINT, which shut down in order and exit 0.
import { existsSync, readFileSync } from "node:fs"
import http from "node:http"
import { parseArgs } from "node:util"
import { getHeapStatistics } from "node:v8"
import { CONFIG_KEYS, formatProblems, loadConfig } from "./Config.ts"

import { VERSION } from "./Version.ts"

// Flags and the health check answer without loading Effect and the adapters (it takes a second).

const HELP = `walera ${VERSION} — streams PostgreSQL row changes to authenticated SSE subscribers

Usage: npm start -- [--config path] [--dev-log] [--healthcheck] [--help] [--version]

  --config path   YAML configuration file (default ./config.yaml; a missing file is fine)
  --dev-log       human-readable logs instead of JSON lines
  --healthcheck   exit 0 if the local /healthz answers 200 (on http.admin_addr when set), else 1
  --version       print the version

Two environment variables are enough to start:
  WALERA_DATABASE_URL=postgres://user:password@host:5432/db
  WALERA_AUTH_BACKEND_URL=https://auth.example.com

Every key (env = WALERA_ + key upper-cased, "." → "_"):
${CONFIG_KEYS.map((k) => `  ${k.env.padEnd(46)} default ${k.default}`).join("\n")}

See docs/operations.md for what each key does.
`

const parsed = (() => {
  try {
    return parseArgs({
      options: {
        config: { type: "string" },
        "dev-log": { type: "boolean", default: false },
        healthcheck: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
        version: { type: "boolean", default: false },
      },
      strict: true,
    })
  } catch (e) {
    process.stderr.write(`walera: ${(e as Error).message}\nRun with --help for usage.\n`)
    process.exit(2)
  }
})()
const values = parsed.values

if (values.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
if (values.version) {
  process.stdout.write(`${VERSION}\n`)
  process.exit(0)
}

const configPath = values.config ?? "./config.yaml"
if (values.config !== undefined && !existsSync(configPath)) {
  process.stderr.write(`walera: config file ${configPath} does not exist\n`)
  process.exit(2)
}
const yamlText = existsSync(configPath) ? readFileSync(configPath, "utf8") : undefined
const loaded = loadConfig({ env: process.env, yamlText, yamlSource: configPath })

if (values.healthcheck) {
  const http_ = loaded._tag === "Loaded" ? loaded.config.http : undefined
  const addr = http_?.admin ?? http_ ?? { host: "127.0.0.1", port: 8080 }
  const host = addr.host === "0.0.0.0" || addr.host === "::" ? "127.0.0.1" : addr.host
  const req = http.get({ host, port: addr.port, path: "/healthz", timeout: 2000 }, (res) => {
    res.resume()
    process.exit(res.statusCode === 200 ? 0 : 1)
  })
  req.on("timeout", () => req.destroy())
  req.on("error", () => process.exit(1))
} else if (loaded._tag === "Invalid") {
  process.stderr.write(`walera: ${formatProblems(loaded.problems)}\n`)
  process.exit(2)
} else {
  const [NodeRuntime, { Cause, Deferred, Effect, Exit }, { makeLog }, App, { Fatal }] = await Promise.all([
    import("@effect/platform-node/NodeRuntime"),
    import("effect"),
    import("../adapters/telemetry/Log.ts"),
    import("./App.ts"),
    import("./Replication.ts"),
  ])
  const config = loaded.config
  const log = makeLog({ level: config.log.level, pretty: values["dev-log"] })
  // V8's heap limit (old + young generation) shows whether the cap npm start sets, or the operator's own, took effect.
  log.info("starting", {
    version: VERSION,
    node: process.version,
    heap_limit_mib: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
  })
  const main = Effect.gen(function* () {
    const fatal = yield* Fatal
    const error = yield* Deferred.await(fatal).pipe(Effect.flip)
    log.error("cannot stream from PostgreSQL", { error: error.message })
    return yield* Effect.fail(error)
  })
  const onSignal = () => {
    log.info("shutting down", { deadline_ms: config.shutdown.deadlineMs })
    setTimeout(() => {
      log.error("shutdown deadline passed, exiting")
      process.exit(1)
    }, config.shutdown.deadlineMs).unref()
  }
  process.once("SIGTERM", onSignal)
  process.once("SIGINT", onSignal)
  NodeRuntime.runMain(main.pipe(Effect.provide(App.layer({ config, log, env: process.env }))), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      const ok = Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
      if (ok) log.info("stopped")
      // Log lines still queued on a pipe would be lost by process.exit: exit once they are written.
      process.stdout.write("", () => onExit(ok ? 0 : 1))
    },
  })
}
