// .ci/run runs exactly the commands the README's Develop section gives a developer, in that order, and the files a
// new developer relies on exist: .nvmrc (Node 24) and a LICENSE matching package.json.
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../..")
const read = (path: string) => readFileSync(resolve(root, path), "utf8")

/** The commands of the first code block under "## Develop". */
const developCommands = (): Array<string> => {
  const section = read("README.md").split(/^## Develop$/m)[1] ?? ""
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? ""
  return block
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
}

/** The commands .ci/run runs at the start of a line, without the environment variables set in front of them. */
const ciCommands = (): Array<string> =>
  read(".ci/run")
    .split("\n")
    .map((line) => line.trim().replace(/^(?:[A-Z_]+="[^"]*"\s+)+/, ""))
    .filter((line) => /^npm (?:ci|install|test|run )/.test(line))

describe(".ci/run and the README", () => {
  it("the README's Develop section names npm ci, npm test and npm run test:system", () => {
    expect(developCommands()).toEqual(["npm ci", "npm test", "npm run test:system"])
  })

  it(".ci/run runs the README's commands, in the README's order, before anything else it runs with npm", () => {
    const commands = ciCommands()
    expect(commands.slice(0, developCommands().length).map((line) => line.replace(/ \|\|.*$/, ""))).toEqual(
      developCommands(),
    )
  })

  it(".ci/run ends with the plain totals line and fails when anything failed", () => {
    const lines = read(".ci/run").trimEnd().split("\n")
    expect(lines.at(-2)).toBe('echo "$passed passed, $failed failed"')
    expect(lines.at(-1)).toBe('[ "$failed" -eq 0 ]')
  })

  it(".nvmrc asks for Node 24, as package.json's engines do", () => {
    expect(read(".nvmrc").trim()).toBe("24")
    expect((JSON.parse(read("package.json")) as { engines: { node: string } }).engines.node).toBe(">=24")
  })

  it("LICENSE is the license package.json names", () => {
    expect((JSON.parse(read("package.json")) as { license: string }).license).toBe("MIT")
    expect(read("LICENSE")).toMatch(/^MIT License\n/)
  })
})
