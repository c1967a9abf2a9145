// Test projects. `npm test` runs unit + integration and needs nothing but Node and npm; `npm run test:system` runs
// the tests that need tools from the system (promtool, Chromium). Two switches for CI (.ci/run):
// WALERA_CANARY=1 replaces each project's files with one test that fails on purpose, so CI proves a failing test
// fails the run through this very configuration; WALERA_TEST_REPORT=<file> adds vitest's JSON report, whose
// totals CI prints.
import { defineConfig } from "vitest/config"

const canary = process.env["WALERA_CANARY"] === "1"
const report = process.env["WALERA_TEST_REPORT"]
const files = (normal: Array<string>, canaryFile: string): Array<string> => (canary ? [canaryFile] : normal)

export default defineConfig({
  test: {
    reporters: report === undefined || report === "" ? ["default"] : ["default", "json"],
    ...(report === undefined || report === "" ? {} : { outputFile: { json: report } }),
    projects: [
      {
        test: {
          name: "unit",
          include: files(
            [
              "test/domain/**/*.test.ts",
              "test/src/**/*.test.ts",
              "test/adapters/**/*.test.ts",
              "test/client/**/*.test.ts",
              "test/scripts/**/*.test.ts",
              "test/testbench/**/*.test.ts",
              "test/support/**/*.test.ts",
            ],
            "test/canary/unit.canary.ts",
          ),
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: files(["test/integration/**/*.test.ts"], "test/canary/integration.canary.ts"),
          globalSetup: ["test/support/globalSetup.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: true,
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: "system",
          include: files(["test/system/**/*.test.ts", "test/e2e/**/*.test.ts"], "test/canary/system.canary.ts"),
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
