// What hostile input can do to Walera's output (docs/security.md): a malformed database URL
// must not print its password, hop-by-hop headers must not be forwarded to the auth backend,
// client bytes must not forge --dev-log lines, and a flood of refused opens must not flood the log.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectWhole, legit, sleep, type Stack, startStack } from "../support/Hostile.ts"
import { metricValue } from "../support/Scrape.ts"
import { openSse } from "../support/SseClient.ts"
import { startWalera, type WaleraProcess } from "../support/Walera.ts"

/** Starts Walera with a configuration that must be refused; resolves with its exit code (null: still running). */
const startupExit = async (
  env: Record<string, string>,
  args: ReadonlyArray<string> = [],
): Promise<{ code: number | null; output: string }> => {
  const walera: WaleraProcess = await startWalera(
    {
      WALERA_DATABASE_URL: "postgres://walera:walera@127.0.0.1:1/app",
      WALERA_AUTH_BACKEND_URL: "http://127.0.0.1:1",
      ...env,
    },
    { waitReady: false, args },
  )
  const code = await Promise.race([walera.exited, sleep(15_000).then(() => null)])
  if (code === null) await walera.stop("SIGKILL")
  return { code, output: walera.logs() }
}

describe("a malformed database.url", () => {
  it.concurrent.each([
    "postgresql:/walera:Sup3rS3cret@db/app",
    "postgres//walera:Sup3rS3cret@db/app",
    "postgres:walera:Sup3rS3cret@db/app",
    "walera:Sup3rS3cret@db/app",
  ])("%s: exit 2 and the password is never printed", async (url) => {
    const { code, output } = await startupExit({ WALERA_DATABASE_URL: url })
    expect(output, "startup output").not.toContain("Sup3rS3cret")
    expect(code).toBe(2)
    expect(output).toContain("database.url")
  })

  it("in the YAML file: exit 2 and the password is never printed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "walera-hostile-"))
    try {
      const file = join(dir, "config.yaml")
      writeFileSync(file, 'database:\n  url: "postgresql:/walera:Sup3rS3cret@db/app"\n')
      const { code, output } = await startupExit({ WALERA_DATABASE_URL: "" }, ["--config", file])
      expect(output, "startup output").not.toContain("Sup3rS3cret")
      expect(code).toBe(2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("auth.forwarded_headers naming a hop-by-hop header", () => {
  it.concurrent.each(["keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"])(
    "%s is refused at startup with exit 2",
    async (name) => {
      const { code, output } = await startupExit({ WALERA_AUTH_FORWARDED_HEADERS: `X-Tenant,${name}` })
      expect(code, `exit code with auth.forwarded_headers=${name} (null: Walera started)`).toBe(2)
      expect(output).toContain("auth.forwarded_headers")
      expect(output.toLowerCase()).toContain(name)
    },
  )
})

describe("client bytes in --dev-log lines", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      args: ["--dev-log"],
      env: {
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
        WALERA_AUTH_BREAKER_MIN_SAMPLES: "1000",
      },
    })
    stack.auth.answers.set("broken-token", { status: 500, body: "down" })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("are escaped: no control character reaches the output and no line can be forged", async () => {
    const forged = (n: number) => `${n}\n2026-01-01T00:00:00.000Z ERROR FORGED-${n} user_id=admin\r\u001b[2K`
    // A granted stream (opened and closed lines) and a failed auth call (its warning) carry the channel.
    const s = await openSse(stack.url, `/sse/v1/orders/${encodeURIComponent(forged(1))}`, legit)
    expect(s.status).toBe(200)
    s.close()
    const failed = await fetch(`${stack.url}/sse/v1/orders/${encodeURIComponent(forged(2))}`, {
      headers: { authorization: "Bearer broken-token" },
    })
    expect(failed.status).toBe(503)
    await sleep(500)
    const output = stack.walera.logs()
    expect(output, "the channel reached the log").toContain("FORGED-1")
    const lines = output.split("\n")
    expect(
      lines.filter((l) => l.startsWith("2026-01-01T00:00:00.000Z")),
      "forged lines",
    ).toEqual([])
    expect(output.includes("\r") || output.includes("\u001b"), "a control character in the output").toBe(false)
    await expectWhole(stack, 6)
  })
})

describe("a flood of refused opens", () => {
  const N = 200
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      env: {
        WALERA_LOG_LEVEL: "info",
        WALERA_LIMITS_GLOBAL_CONCURRENT: "6",
        WALERA_LIMITS_PER_USER_CONCURRENT: "6",
        WALERA_AUTH_BREAKER_MIN_SAMPLES: "100000",
      },
    })
    stack.auth.answers.set("broken-token", { status: 500, body: "down" })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it("is counted in walera_stream_opens_total, not logged one line per request", async () => {
    const before = stack.walera.logs().split("\n").length
    // Five at a time: under limits.global_concurrent, so every open reaches the backend and is refused by it.
    for (let i = 0; i < N; i += 5) {
      await Promise.all(
        Array.from({ length: 5 }, async (_, j) => {
          const token = (i + j) % 2 === 0 ? "broken-token" : "unknown-token"
          const r = await fetch(`${stack.url}/sse/v1/orders/1`, { headers: { authorization: `Bearer ${token}` } })
          await r.text()
        }),
      )
    }
    await sleep(500)
    const written = stack.walera
      .logs()
      .split("\n")
      .slice(before - 1)
    expect(written.length, `log lines written for ${N} refused opens:\n${written.slice(0, 5).join("\n")}`).toBeLessThan(
      N / 5,
    )
    const metrics = await stack.metrics()
    expect(metricValue(metrics, 'walera_stream_opens_total{status="503"}')).toBeGreaterThanOrEqual(N / 2)
    expect(metricValue(metrics, 'walera_stream_opens_total{status="401"}')).toBeGreaterThanOrEqual(N / 2)
    await expectWhole(stack, 6)
  })
})
