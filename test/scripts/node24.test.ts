// scripts/node24.sh, which every npm script that runs a .ts file goes through: it must refuse a node older than 24
// with a message that says what to do, and otherwise exec node with the arguments unchanged (same process, so
// signals sent to `npm start` reach Walera).
import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const script = resolve(import.meta.dirname, "../../scripts/node24.sh")
const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** A directory with a fake `node` that reports `version` and prints its pid and arguments when run. */
const fakeNode = (version: string): string => {
  const dir = mkdtempSync(join(tmpdir(), "walera-node24-"))
  dirs.push(dir)
  const node = join(dir, "node")
  writeFileSync(
    node,
    `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "${version}"; exit 0; fi\necho "pid=$$ args=$*"\n`,
  )
  chmodSync(node, 0o755)
  return dir
}

const run = (pathDir: string, args: ReadonlyArray<string>) => {
  // `exec sh script` as npm's start script does: the pid printed by node must be the shell's own
  const result = spawnSync("/bin/sh", ["-c", `echo "shell=$$"; exec sh ${script} "$@"`, "sh", ...args], {
    encoding: "utf8",
    env: { PATH: `${pathDir}:/usr/bin:/bin` },
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("scripts/node24.sh", () => {
  it("execs a node >= 24 with the arguments unchanged, in the same process", () => {
    const result = run(fakeNode("v24.21.0"), ["src/main.ts", "--config", "a b.yaml"])
    expect(result.status).toBe(0)
    const shell = /shell=(\d+)/.exec(result.stdout)?.[1]
    expect(result.stdout).toContain(`pid=${shell} args=src/main.ts --config a b.yaml`)
  })

  it("accepts later majors", () => {
    expect(run(fakeNode("v26.10.0"), ["x.ts"]).stdout).toContain("args=x.ts")
  })

  it("refuses an older node and says how to get Node 24", () => {
    const result = run(fakeNode("v20.20.2"), ["src/main.ts"])
    expect(result.status).toBe(1)
    expect(result.stdout).not.toContain("args=")
    expect(result.stderr).toContain("Walera needs Node.js 24 or later; the node on PATH is v20.20.2")
    expect(result.stderr).toContain(".nvmrc")
  })

  it("--check only checks", () => {
    expect(run(fakeNode("v24.0.0"), ["--check"])).toMatchObject({
      status: 0,
      stdout: expect.not.stringContaining("args="),
    })
    expect(run(fakeNode("v22.19.0"), ["--check"]).status).toBe(1)
  })

  it("says so when there is no node at all", () => {
    const empty = mkdtempSync(join(tmpdir(), "walera-node24-"))
    dirs.push(empty)
    const result = spawnSync("/bin/sh", [script, "x.ts"], { encoding: "utf8", env: { PATH: empty } })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain("no node was found on PATH")
  })
})
