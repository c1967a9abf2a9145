// Fails on purpose. .ci/run runs it through the system project and fails the build unless the run exits non-zero.
import { expect, it } from "vitest"

it("canary: a system test that must fail", () => {
  expect(["promtool", "chromium"]).toContain("a tool nobody installed")
})
