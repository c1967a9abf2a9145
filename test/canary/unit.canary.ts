// Fails on purpose. .ci/run runs it (WALERA_CANARY=1, see vitest.config.ts) through the unit project and fails the
// build unless the run exits non-zero: the proof that a failing unit test fails `npm test`.
import { expect, it } from "vitest"
import { parseDuration } from "../../src/Config.ts"

it("canary: a unit test that must fail", () => {
  expect(parseDuration("15s")).toBe(16_000)
})
