// `npm start` as an operator meets it: flags, configuration errors listed all at once with
// their fix and secrets redacted, and the container health check.
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import http from "node:http"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../..")

const run = (args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, ["src/main.ts", ...args], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", ...env },
    encoding: "utf8",
    timeout: 20_000,
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const runAsync = (args: string[], env: Record<string, string>) =>
  new Promise<number | null>((done) => {
    import("node:child_process").then(({ spawn }) => {
      const child = spawn(process.execPath, ["src/main.ts", ...args], {
        cwd: root,
        env: { PATH: process.env["PATH"] ?? "", ...env },
        stdio: "ignore",
      })
      child.on("exit", (code) => done(code))
    })
  })

describe("flags", () => {
  it("--help lists the flags and every WALERA_ variable", () => {
    const r = run(["--help"])
    expect(r.code).toBe(0)
    for (const s of [
      "--config",
      "--dev-log",
      "--healthcheck",
      "WALERA_DATABASE_URL",
      "WALERA_AUTH_BREAKER_MIN_SAMPLES",
    ]) {
      expect(r.out).toContain(s)
    }
  })

  it("--version prints the version", () => {
    const r = run(["--version"])
    expect(r.code).toBe(0)
    expect(r.out.trim()).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it("an unknown flag is refused", () => {
    expect(run(["--nope"]).code).not.toBe(0)
  })
})

describe("configuration errors", () => {
  it("without the two required variables it exits non-zero naming both and how to set them", () => {
    const r = run([])
    expect(r.code).toBe(2)
    expect(r.err).toContain("WALERA_DATABASE_URL")
    expect(r.err).toContain("WALERA_AUTH_BACKEND_URL")
    expect(r.err).toMatch(/set WALERA_DATABASE_URL=postgres:\/\//)
  })

  it("lists every problem at once, with key, value and fix, and redacts the DSN password", () => {
    const r = run([], {
      WALERA_DATABASE_URL: "postgres://walera:hunter2secret@db:5432/app",
      WALERA_AUTH_BACKEND_URL: "http://auth.internal",
      WALERA_HTTP_WRITE_TIMEOUT: "5",
      WALERA_LIMITS_GLOBAL_CONCURRENT: "lots",
      WALERA_WAL_BOOTSTRAP: "sometimes",
      WALERA_AUTH_FORWARDED_HEADERS: "Authorization",
    })
    expect(r.code).toBe(2)
    expect(r.err).not.toContain("hunter2secret")
    for (const key of [
      "http.write_timeout",
      "limits.global_concurrent",
      "wal.bootstrap",
      "auth.forwarded_headers",
      "auth.backend_url",
    ]) {
      expect(r.err).toContain(key)
    }
    expect(r.err).toMatch(/5 problems/)
    expect(r.err).toContain("WALERA_AUTH_ALLOW_PLAINTEXT")
  })

  it("reads --config YAML, overlaid by the environment", () => {
    const dir = mkdtempSync(join(tmpdir(), "walera-cfg-"))
    const file = join(dir, "config.yaml")
    writeFileSync(file, "http:\n  write_timeout: 5\nlimits:\n  per_user_concurrent: -3\n")
    const r = run(["--config", file], { WALERA_DATABASE_URL: "postgres://u@h/d", WALERA_AUTH_BACKEND_URL: "https://a" })
    expect(r.code).toBe(2)
    expect(r.err).toContain("http.write_timeout")
    expect(r.err).toContain("limits.per_user_concurrent")
    const missing = run(["--config", join(dir, "absent.yaml")])
    expect(missing.code).toBe(2)
    expect(missing.err).toContain("absent.yaml")
  })
})

describe("--healthcheck", () => {
  const serve = (status: number) =>
    new Promise<{ port: number; close: () => void }>((done) => {
      const server = http.createServer((_req, res) => {
        res.writeHead(status)
        res.end()
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        done({ port: typeof address === "object" && address ? address.port : 0, close: () => server.close() })
      })
    })

  it("exits 0 when the local /healthz answers 200 and 1 otherwise", async () => {
    const env = (port: number) => ({
      WALERA_DATABASE_URL: "postgres://u@h/d",
      WALERA_AUTH_BACKEND_URL: "https://a",
      WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
    })
    const up = await serve(200)
    const down = await serve(503)
    try {
      expect(await runAsync(["--healthcheck"], env(up.port))).toBe(0)
      expect(await runAsync(["--healthcheck"], env(down.port))).toBe(1)
    } finally {
      up.close()
      down.close()
    }
    expect(await runAsync(["--healthcheck"], env(1))).toBe(1)
  })
})
