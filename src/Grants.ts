// Grant lifecycle (docs/auth.md, "Refresh"): when each subscriber's grant is refreshed, what a refresh answer
// does to it (narrowing, revocation), and the bounded fail-open while the backend cannot answer. The only owner
// of the grant timings; refresh calls run as fibers keyed by subscriber in this layer's scope, so they end with
// the subscriber or at shutdown.
import { Clock, Context, Duration, Effect, FiberMap, Layer, Random, Schedule } from "effect"
import type { Channel } from "../domain/Channel.ts"
import { checkChannel } from "../domain/Grant.ts"
import { jitteredRefreshDelayMs } from "../domain/Jitter.ts"
import type { Credentials } from "../domain/ports/AuthBackend.ts"
import { AuthGate } from "./AuthGate.ts"
import { HubService, monotonicMillis, type Subscriber } from "./Hub.ts"
import { randomUUID } from "node:crypto"

export interface GrantsConfig {
  readonly defaultTtlSeconds: number
  /** How often due grants are looked for. */
  readonly checkIntervalMs?: number
}

interface Entry {
  readonly subscriber: Subscriber
  readonly channel: Channel
  readonly credentials: Credentials
  readonly userId: string
  /** ms since epoch; Infinity = never. */
  refreshAt: number
  expiresAt: number
}

/** When a grant of `ttlSeconds` taken at `now` is refreshed and when it expires (ttl 0 = never). */
export const grantTimes = (
  ttlSeconds: number,
  now: number,
  random: number,
): { readonly refreshAt: number; readonly expiresAt: number } =>
  ttlSeconds === 0
    ? { refreshAt: Number.POSITIVE_INFINITY, expiresAt: Number.POSITIVE_INFINITY }
    : { refreshAt: now + jitteredRefreshDelayMs(ttlSeconds, random), expiresAt: now + ttlSeconds * 1000 }

export class Grants extends Context.Service<
  Grants,
  {
    /** Starts refreshing an attached subscriber's grant; ttlSeconds null = the configured default. */
    readonly track: (
      subscriber: Subscriber,
      grant: {
        readonly channel: Channel
        readonly credentials: Credentials
        readonly userId: string
        readonly ttlSeconds: number | null
      },
    ) => void
    readonly tracked: () => number
  }
>()("walera/Grants") {
  static readonly layer = (config: GrantsConfig) =>
    Layer.effect(
      Grants,
      Effect.gen(function* () {
        const gate = yield* AuthGate
        const hub = yield* HubService
        const clock = yield* Clock.Clock
        const random = yield* Random.Random
        const now = monotonicMillis(clock)
        const entries = new Map<number, Entry>()
        const inFlight = yield* FiberMap.make<number>()
        const ttlOf = (ttl: number | null) => ttl ?? config.defaultTtlSeconds

        const refresh = Effect.fn("Subscriber.refresh")(function* (e: Entry) {
          const s = e.subscriber
          yield* Effect.annotateCurrentSpan({ "walera.channel": s.channel, "walera.subscriber_id": s.id })
          const outcome = yield* gate.refresh({
            channel: e.channel,
            requestId: randomUUID(),
            credentials: e.credentials,
          })
          const at = now()
          if (!s.open) return
          if (outcome._tag === "Answer" && outcome.answer._tag === "Granted") {
            const grant = outcome.answer.grant
            if (checkChannel(grant, e.channel.table) !== "ok" || grant.userId !== e.userId) {
              entries.delete(s.id)
              hub.end(s, "auth_revoked")
              return
            }
            hub.replaceWhitelist(s, grant.tables)
            const times = grantTimes(ttlOf(grant.ttlSeconds), at, random.nextDoubleUnsafe())
            e.refreshAt = times.refreshAt
            e.expiresAt = times.expiresAt
            if (times.refreshAt === Number.POSITIVE_INFINITY) entries.delete(s.id)
            return
          }
          if (outcome._tag === "Answer" && outcome.answer._tag === "Denied" && outcome.answer.status !== 429) {
            entries.delete(s.id)
            hub.end(s, "auth_revoked")
            return
          }
          // Bounded fail-open: keep the last grant until it expires, try again meanwhile.
          if (at >= e.expiresAt) {
            entries.delete(s.id)
            hub.end(s, "auth_unavailable")
            return
          }
          const retryIn = Math.min(5000, Math.max(250, (e.expiresAt - at) / 2))
          e.refreshAt = at + retryIn * (0.75 + random.nextDoubleUnsafe() * 0.5)
        })

        // An expired grant gets one last refresh attempt; its failure ends the subscriber (auth_unavailable).
        const check = Effect.gen(function* () {
          const at = now()
          for (const [id, e] of entries) {
            if (!e.subscriber.open) {
              entries.delete(id)
              yield* FiberMap.remove(inFlight, id)
              continue
            }
            if ((e.refreshAt <= at || e.expiresAt <= at) && !FiberMap.hasUnsafe(inFlight, id)) {
              yield* FiberMap.run(inFlight, id, refresh(e))
            }
          }
        })
        yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced(Duration.millis(config.checkIntervalMs ?? 1000))))

        return Grants.of({
          track: (subscriber, grant) => {
            const times = grantTimes(ttlOf(grant.ttlSeconds), now(), random.nextDoubleUnsafe())
            if (times.refreshAt === Number.POSITIVE_INFINITY) return
            entries.set(subscriber.id, {
              subscriber,
              channel: grant.channel,
              credentials: grant.credentials,
              userId: grant.userId,
              refreshAt: times.refreshAt,
              expiresAt: times.expiresAt,
            })
          },
          tracked: () => entries.size,
        })
      }),
    )
}
