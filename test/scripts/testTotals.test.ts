// scripts/test-totals.ts, which .ci/run uses for its closing "N passed, M failed" line: a broken run must never
// read as "0 failed".
import { describe, expect, it } from "vitest"
import { totals } from "../../scripts/test-totals.ts"

const report = (overrides: Partial<Parameters<typeof totals>[0]>) => ({
  numPassedTests: 0,
  numFailedTests: 0,
  numPendingTests: 0,
  numTodoTests: 0,
  success: true,
  testResults: [],
  ...overrides,
})

describe("CI test totals", () => {
  it("takes vitest's own counts", () => {
    expect(
      totals(
        report({
          numPassedTests: 7,
          numFailedTests: 2,
          success: false,
          testResults: [{ name: "a.test.ts", status: "failed", assertionResults: [{ status: "failed" }] }],
        }),
      ),
    ).toEqual({ passed: 7, failed: 2 })
  })

  it("counts a file that failed to load as a failure", () => {
    const broken = report({
      numPassedTests: 5,
      success: false,
      testResults: [
        { name: "ok.test.ts", status: "passed", assertionResults: [{ status: "passed" }] },
        { name: "syntax.test.ts", status: "failed", assertionResults: [] },
      ],
    })
    expect(totals(broken)).toEqual({ passed: 5, failed: 1 })
  })

  it("counts an unsuccessful run without a failed test as a failure", () => {
    expect(totals(report({ numPassedTests: 3, success: false }))).toEqual({ passed: 3, failed: 1 })
  })

  it("counts skipped and todo tests as failures", () => {
    expect(totals(report({ numPassedTests: 3, numPendingTests: 1, numTodoTests: 1 }))).toEqual({ passed: 3, failed: 2 })
  })
})
