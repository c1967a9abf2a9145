// Reads vitest JSON reports (WALERA_TEST_REPORT, see vitest.config.ts) for .ci/run and prints "<passed> <failed>".
// The counts are vitest's own; a test file that failed without a failing test (it did not load, or its hooks
// failed) counts as one failed test, and so does a run marked unsuccessful with no failure counted, so a broken run
// never reads as "0 failed". Skipped and todo tests count as failed: the house rule is that no test is skipped.
// Unhandled errors show only in vitest's exit status, not in this report: .ci/run counts that exit on its own.
import { readFileSync } from "node:fs"

interface Report {
  readonly numPassedTests: number
  readonly numFailedTests: number
  readonly numPendingTests: number
  readonly numTodoTests: number
  readonly success: boolean
  readonly testResults: ReadonlyArray<{
    readonly name: string
    readonly status: string
    readonly assertionResults: ReadonlyArray<{ readonly status: string }>
  }>
}

export const totals = (report: Report): { passed: number; failed: number } => {
  const brokenFiles = report.testResults.filter(
    (file) => file.status === "failed" && !file.assertionResults.some((test) => test.status === "failed"),
  ).length
  let failed = report.numFailedTests + brokenFiles + report.numPendingTests + report.numTodoTests
  if (!report.success && failed === 0) failed = 1
  return { passed: report.numPassedTests, failed }
}

if (import.meta.main) {
  let passed = 0
  let failed = 0
  for (const path of process.argv.slice(2)) {
    const t = totals(JSON.parse(readFileSync(path, "utf8")) as Report)
    passed += t.passed
    failed += t.failed
  }
  console.log(`${passed} ${failed}`)
}
