// The tests' wait helpers measure their timeouts on the monotonic clock: a virtual machine restored from a snapshot
// steps the wall clock forward, and a deadline on Date.now() then expires at once (it failed a CI run that way).
import { afterEach, describe, expect, it, vi } from "vitest"
import { waitUntil } from "./SseClient.ts"

describe("waitUntil", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("keeps waiting when the wall clock jumps an hour forward", async () => {
    let polls = 0
    const start = Date.now()
    vi.spyOn(Date, "now").mockImplementation(() => start + (polls > 0 ? 3_600_000 : 0))
    await waitUntil(() => ++polls >= 3, 5000, "three polls")
    expect(polls).toBe(3)
  })

  it("still gives up after its timeout", async () => {
    await expect(waitUntil(() => false, 100, "a condition that never holds")).rejects.toThrow(
      "timed out waiting for a condition that never holds",
    )
  })
})
