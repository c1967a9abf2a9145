// Enforces the dependency rule of the house: domain → (effect only), adapters → domain,
// src → domain (and adapters from the composition root only), and nothing outside testbench/ imports testbench/.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const root = resolve(import.meta.dirname, "..")
// `import x from "…"`, `export … from "…"`, a bare `import "…"`, and `import("…")`.
const importRe =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return name === "node_modules" ? [] : walk(path)
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : []
  })

const topOf = (absPath: string): string => relative(root, absPath).split("/")[0] ?? ""

const problems: string[] = []
for (const layer of ["domain", "adapters", "src", "test", "scripts", "client"]) {
  for (const file of walk(join(root, layer))) {
    const text = readFileSync(file, "utf8")
    for (const match of text.matchAll(importRe)) {
      const spec = match[1] ?? match[2] ?? match[3] ?? ""
      const where = `${relative(root, file)} imports "${spec}"`
      const isRelative = spec.startsWith(".")
      const target = isRelative ? topOf(resolve(dirname(file), spec)) : undefined
      // The demo's browser test drives testbench/ itself, and test/testbench/ unit-tests the soak's checker;
      // everything else stays independent of it.
      const from = relative(root, file)
      const testsTestbench = from.startsWith("test/e2e/") || from.startsWith("test/testbench/")
      if (target === "testbench" && !testsTestbench)
        problems.push(`${where}: nothing outside testbench/ may import testbench/`)
      if (layer === "domain") {
        const ok = isRelative ? target === "domain" : spec === "effect" || spec.startsWith("effect/")
        if (!ok) problems.push(`${where}: domain/ may import only "effect" and domain/ itself`)
      }
      if (layer === "client" && !(isRelative && target === "client")) {
        problems.push(`${where}: client/ must stay dependency-free (it may import only client/ itself)`)
      }
      if (layer === "adapters" && target === "src") {
        problems.push(`${where}: adapters/ may not import src/ (depend on a port in domain/ports instead)`)
      }
      // The application speaks to adapters through ports; only the composition root picks them.
      const compositionRoot = ["src/App.ts", "src/main.ts"].includes(relative(root, file))
      if (layer === "src" && target === "adapters" && !compositionRoot) {
        problems.push(`${where}: only src/App.ts and src/main.ts may import adapters/ (use a port in domain/ports)`)
      }
    }
  }
}

if (problems.length > 0) {
  console.error(`deps-check: ${problems.length} violation(s) of the dependency rule\n  ${problems.join("\n  ")}`)
  process.exit(1)
}
console.log("deps-check: dependency rule holds")
