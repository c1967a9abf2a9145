// Every call to the auth backend goes through here: at most auth.max_concurrent_calls at once, under the circuit
// breaker, which samples only the backend's own behaviour (docs/auth.md, "Circuit breaker"). The only writer of
// the breaker state; its cooldown is a timer fiber owned by this layer, so TestClock drives it in tests.
import { Clock, Context, Duration, Effect, Exit, FiberHandle, Layer, Schedule, Semaphore } from "effect"
import {
  abandon,
  acquire,
  type BreakerConfig,
  type BreakerState,
  type BreakerStatus,
  halfOpen,
  initialBreaker,
  record,
  view,
} from "../domain/Breaker.ts"
import { LogThrottle } from "../domain/LogThrottle.ts"
import {
  AuthBackend,
  type AuthUnavailable,
  type SessionAnswer,
  type SessionRequest,
} from "../domain/ports/AuthBackend.ts"
import { Observability, type AuthResult } from "../domain/ports/Observability.ts"

export interface AuthGateConfig {
  readonly breaker: BreakerConfig
  readonly maxConcurrentCalls: number
  readonly probeIntervalMs?: number
}

export type GateOutcome =
  | { readonly _tag: "Answer"; readonly answer: SessionAnswer }
  | { readonly _tag: "Unavailable"; readonly reason: AuthUnavailable["reason"] | "defect"; readonly message: string }
  | { readonly _tag: "BreakerOpen"; readonly retryAfterSeconds: number }
  /** Every call slot is taken: Walera's own queue, never the backend's fault. */
  | { readonly _tag: "Busy" }

export interface GateView {
  readonly status: BreakerStatus
  readonly retryAfterMs: number
  /** undefined: the last readiness probe was answered. */
  readonly probeError: string | undefined
}

const resultOf = (answer: SessionAnswer): AuthResult => {
  if (answer._tag === "Granted") return "ok"
  switch (answer.status) {
    case 401:
      return "unauthorized"
    case 403:
      return "forbidden"
    case 404:
      return "not_found"
    case 429:
      return "rate_limited"
  }
}

export class AuthGate extends Context.Service<
  AuthGate,
  {
    /**
     * One backend call for an open: refused at once (Busy) when every call slot is taken. Interrupting it abandons
     * the call, which is then no sample for the breaker.
     */
    readonly open: (request: SessionRequest) => Effect.Effect<GateOutcome>
    /** One backend call for a refresh: waits for a call slot instead of being refused. */
    readonly refresh: (request: SessionRequest) => Effect.Effect<GateOutcome>
    readonly view: () => GateView
  }
>()("walera/AuthGate") {
  static readonly layer = (config: AuthGateConfig) =>
    Layer.effect(
      AuthGate,
      Effect.gen(function* () {
        const backend = yield* AuthBackend
        const obs = yield* Observability
        const clock = yield* Clock.Clock
        const now = () => clock.currentTimeMillisUnsafe()
        const slots = yield* Semaphore.make(config.maxConcurrentCalls)
        const cooldown = yield* FiberHandle.make<void, never>()
        const throttle = new LogThrottle(10_000)
        let breaker: BreakerState = initialBreaker(config.breaker)
        let probeError: string | undefined = "auth backend not probed yet"

        const set = (next: BreakerState) => {
          const was = breaker.status
          breaker = next
          if (next.status !== was) {
            obs.breakerChanged(next.status)
            if (next.status === "open") return true
          }
          return false
        }
        const afterCooldown = Effect.sleep(Duration.millis(config.breaker.cooldownMs)).pipe(
          Effect.andThen(Effect.sync(() => void set(halfOpen(breaker)))),
        )

        /** Acquire the breaker, call, record — with the breaker step and the call's start in one uninterruptible go. */
        const guarded = (request: SessionRequest): Effect.Effect<GateOutcome> =>
          Effect.uninterruptibleMask((restore) =>
            Effect.suspend(() => {
              const gate = acquire(breaker, config.breaker, now())
              if (!gate.allowed) {
                const seconds = Math.max(1, Math.ceil(gate.retryAfterMs / 1000))
                return Effect.succeed<GateOutcome>({ _tag: "BreakerOpen", retryAfterSeconds: seconds })
              }
              set(gate.state)
              const started = now()
              return restore(backend.openSession(request)).pipe(
                Effect.exit,
                Effect.flatMap((exit): Effect.Effect<GateOutcome> => {
                  if (Exit.isFailure(exit) && exit.cause.reasons.every((r) => r._tag === "Interrupt")) {
                    // The client went away: nothing was learnt about the backend.
                    set(abandon(breaker, gate.probe))
                    return Effect.interrupt
                  }
                  const seconds = (now() - started) / 1000
                  if (Exit.isSuccess(exit)) {
                    obs.authCall(resultOf(exit.value), seconds)
                    set(record(breaker, config.breaker, now(), true, gate.probe))
                    return Effect.succeed({ _tag: "Answer", answer: exit.value })
                  }
                  const error = Exit.isFailure(exit)
                    ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error
                    : undefined
                  obs.authCall("unavailable", seconds)
                  const opened = set(record(breaker, config.breaker, now(), false, gate.probe))
                  const suppressed = throttle.admit(error?.reason ?? "defect", now())
                  const logged =
                    suppressed === undefined
                      ? Effect.void
                      : Effect.logWarning("auth backend unavailable").pipe(
                          Effect.annotateLogs({
                            request_id: request.requestId,
                            channel: request.channel.name,
                            error: error?.message ?? "unexpected failure",
                            similar_suppressed: suppressed,
                          }),
                        )
                  const outcome: GateOutcome = {
                    _tag: "Unavailable",
                    reason: error?.reason ?? "defect",
                    message: error?.message ?? "unexpected failure",
                  }
                  return Effect.andThen(
                    opened ? Effect.andThen(logged, FiberHandle.run(cooldown, afterCooldown)) : logged,
                    Effect.succeed(outcome),
                  )
                }),
              )
            }),
          )

        // The breaker answers first (its Retry-After says when the backend may be asked again), then the call slots.
        const open = (request: SessionRequest) =>
          Effect.suspend((): Effect.Effect<GateOutcome> => {
            const v = view(breaker, config.breaker, now())
            if (v.status === "open")
              return Effect.succeed({
                _tag: "BreakerOpen",
                retryAfterSeconds: Math.max(1, Math.ceil(v.retryAfterMs / 1000)),
              })
            return slots
              .withPermitsIfAvailable(1)(guarded(request))
              .pipe(Effect.map((o) => (o._tag === "None" ? ({ _tag: "Busy" } as const) : o.value)))
          })
        const refresh = (request: SessionRequest) => slots.withPermits(1)(guarded(request))

        const probe = backend.probe.pipe(
          Effect.match({
            onSuccess: () => {
              probeError = undefined
            },
            onFailure: (e) => {
              probeError = `auth backend probe failed: ${e.message}`
            },
          }),
        )
        yield* Effect.forkScoped(Effect.repeat(probe, Schedule.spaced(Duration.millis(config.probeIntervalMs ?? 5000))))

        return AuthGate.of({
          open,
          refresh,
          view: () => ({ ...view(breaker, config.breaker, now()), probeError }),
        })
      }),
    )
}
