import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { TestClock } from "effect/testing"
import { acquire, type BreakerConfig, initialBreaker, record, view } from "../../domain/Breaker.ts"

const config: BreakerConfig = { windowMs: 30_000, minSamples: 20, failureRatio: 0.5, cooldownMs: 30_000 }

describe("Breaker driven by the Effect clock", () => {
  it.effect("opens on failures and half-opens after the cooldown on TestClock time", () =>
    Effect.gen(function* () {
      let state = initialBreaker(config)
      const start = yield* Clock.currentTimeMillis
      for (let i = 0; i < 20; i++) state = record(state, config, start, false)
      assert.strictEqual(state.status, "open")

      yield* TestClock.adjust("10 seconds")
      const early = acquire(state, config, yield* Clock.currentTimeMillis)
      assert.isFalse(early.allowed)
      assert.strictEqual(early.retryAfterMs, 20_000)

      yield* TestClock.adjust("21 seconds")
      const now = yield* Clock.currentTimeMillis
      assert.strictEqual(now - start, 31_000)
      assert.deepStrictEqual(view(state, config, now), { status: "open", retryAfterMs: 0 })
      const probe = acquire(state, config, now)
      assert.isTrue(probe.allowed)
      assert.strictEqual(probe.state.status, "half_open")
      assert.isFalse(acquire(probe.state, config, now).allowed)

      state = record(probe.state, config, yield* Clock.currentTimeMillis, true)
      assert.strictEqual(state.status, "closed")
    }),
  )
})
