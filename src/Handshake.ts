// The gateway's implementation: the handshake in the order of docs/operations.md ("The handshake"), and what a
// new subscriber receives first — initial_data or a resume, then the transactions decoded while the backend
// answered (gapless open), then live frames. Every slot it reserves lives in the open's scope until `attach`
// hands it to the subscriber, so a refusal or a client that goes away gives it back.
import { Effect, Layer, Random, type Scope } from "effect"
import { checkChannel } from "../domain/Grant.ts"
import { initialDataFrame, RETRY_FRAME, resumedFrame } from "../domain/Frames.ts"
import { type Accept, type Decision, Gateway, type OpenRequest, type Refusal } from "../domain/ports/Gateway.ts"
import { Observability } from "../domain/ports/Observability.ts"
import { Admission } from "./Admission.ts"
import { AuthGate } from "./AuthGate.ts"
import { Grants } from "./Grants.ts"
import { HubService, type Replay } from "./Hub.ts"
import { Replication } from "./Replication.ts"

export interface HandshakeConfig {
  /** router.resume_window > 0: Last-Event-ID is looked up in the replay window. */
  readonly resume: boolean
  readonly maxBufferedBytes: number
  readonly maxPayloadBytes: number
  readonly reconnectSpreadMs: number
}

const refuse = (tag: Exclude<Refusal["_tag"], "AuthBreakerOpen" | "Denied">): Refusal => ({ _tag: tag }) as Refusal

/** A Last-Event-ID names a transaction id: digits only, within the 32-bit xid range. */
export const parseEventId = (id: string): number | undefined => {
  if (!/^\d{1,10}$/.test(id)) return undefined
  const n = Number(id)
  return n <= 0xffff_ffff ? n : undefined
}

export const layer = (config: HandshakeConfig) =>
  Layer.effect(
    Gateway,
    Effect.gen(function* () {
      const hub = yield* HubService
      const admission = yield* Admission
      const gate = yield* AuthGate
      const grants = yield* Grants
      const replication = yield* Replication
      const obs = yield* Observability
      const random = yield* Random.Random
      let shuttingDown = false

      const open = Effect.fn("Subscriber.open")(function* (request: OpenRequest) {
        // 1. path syntax
        const channel = request.channel
        if (channel === undefined) return refuse("InvalidChannel")
        yield* Effect.annotateCurrentSpan({ "walera.channel": channel.name })
        // 2. the WAL streams; from here on everything decoded reaches this subscriber (gapless open)
        if (shuttingDown) return refuse("ShuttingDown")
        const began = replication.status()
        if (!began.streaming) return refuse("WalNotStreaming")
        // Everything decoded from now on is held for this open until it attaches or gives up (scoped).
        const { position } = yield* Effect.acquireRelease(
          Effect.sync(() => hub.holdWindow()),
          (held) => Effect.sync(held.release),
        )
        const newestXid = hub.window.newestXid()
        // 3. global cap (handshakes in flight hold a slot too)
        const global = yield* admission.reserveGlobal
        if (global === undefined) {
          obs.limitRejected("global_concurrent")
          return refuse("TooManyStreams")
        }
        // 4. credentials
        const credentials = request.credentials
        if (credentials === undefined) return refuse("MissingCredentials")
        // 5. request id
        const requestId = request.requestId
        if (requestId === undefined) return refuse("InvalidRequestId")
        yield* Effect.annotateCurrentSpan({ "walera.request_id": requestId })
        // 6 + 7. call slots and breaker, then the backend
        const outcome = yield* gate.open({ channel, requestId, credentials })
        switch (outcome._tag) {
          case "BreakerOpen":
            obs.limitRejected("auth_breaker_open")
            return { _tag: "AuthBreakerOpen", retryAfterSeconds: outcome.retryAfterSeconds } satisfies Refusal
          case "Busy":
            obs.limitRejected("auth_concurrency")
            return refuse("AuthBusy")
          case "Unavailable":
            return refuse("AuthUnavailable")
        }
        const answer = outcome.answer
        if (answer._tag === "Denied") {
          return {
            _tag: "Denied",
            status: answer.status,
            body: answer.body,
            retryAfterSeconds: answer.retryAfterSeconds,
          } satisfies Refusal
        }
        const grant = answer.grant
        // 8. per-user cap
        const user = yield* admission.reserveUser(grant.userId)
        if (user === undefined) {
          obs.limitRejected("per_user_concurrent")
          return refuse("TooManyStreamsForUser")
        }
        // 9. roots and tables
        const check = checkChannel(grant, channel.table)
        if (check === "not_a_root") return refuse("NotARoot")
        if (check === "not_allowed") return refuse("NotAllowed")

        let initialData = ""
        if (grant.initialData !== undefined) {
          const frame = initialDataFrame(grant.initialData, config.resume ? newestXid : undefined)
          if (Buffer.byteLength(frame) <= config.maxPayloadBytes) initialData = frame
          else
            yield* Effect.logWarning("initial_data larger than http.max_payload_bytes, not sent").pipe(
              Effect.annotateLogs({ request_id: requestId }),
            )
        }
        yield* Effect.logInfo("subscriber accepted").pipe(
          Effect.annotateLogs({ channel: channel.name, user_id: grant.userId, request_id: requestId }),
        )

        const accept: Accept = {
          _tag: "Accept",
          attach: (sink) => {
            // The session that streamed when the handshake began must still be the one streaming.
            if (shuttingDown) return refuse("ShuttingDown")
            const now = replication.status()
            if (!now.streaming || now.epoch !== began.epoch) return refuse("WalNotStreaming")
            let head = RETRY_FRAME
            let replay: Extract<Replay, { _tag: "Frames" }> | undefined
            let kind: "initial_data" | "resumed" | undefined = initialData === "" ? undefined : "initial_data"
            const lastEventId = request.lastEventId
            if (config.resume && lastEventId !== undefined) {
              const xid = parseEventId(lastEventId)
              const from = xid === undefined ? undefined : hub.window.after(xid)
              const resumed = from === undefined ? undefined : hub.replay(channel.table, channel.pk, grant.tables, from)
              if (resumed === undefined || resumed._tag === "Unavailable") obs.resumed("miss")
              else if (resumed.bytes > config.maxBufferedBytes) obs.resumed("over_budget")
              else {
                obs.resumed("hit")
                replay = resumed
                head += resumedFrame(lastEventId)
                kind = "resumed"
              }
            }
            if (replay === undefined) {
              const gapless = hub.replay(channel.table, channel.pk, grant.tables, position)
              if (gapless._tag === "Unavailable") return refuse("ReplayUnavailable")
              replay = gapless
              head += initialData
            }
            const preface = Buffer.from(head + replay.frames)
            global.handOver()
            user.handOver()
            const subscriber = hub.attach({
              table: channel.table,
              pk: channel.pk,
              channel: channel.name,
              userId: grant.userId,
              requestId,
              tables: grant.tables,
              sink,
              // Written with the headers, so the stall detection counts it as handed to the connection.
              prefaceBytes: preface.length,
            })
            grants.track(subscriber, { channel, credentials, userId: grant.userId, ttlSeconds: grant.ttlSeconds })
            if (kind !== undefined) obs.framesSent(kind, 1)
            if (replay.count > 0) obs.framesSent("tx", replay.count)
            return { _tag: "Attached", preface, detach: hub.detacher(subscriber) }
          },
        }
        return accept
      })

      return Gateway.of({
        open: (request): Effect.Effect<Decision, never, Scope.Scope> => open(request),
        health: () => {
          const view = gate.view()
          return {
            replicationStreaming: replication.status().streaming,
            breaker: view.status,
            authProbeError: view.probeError,
            shuttingDown,
          }
        },
        shutdown: Effect.sync(() => {
          shuttingDown = true
          hub.shutdown(config.reconnectSpreadMs, () => random.nextDoubleUnsafe())
        }),
        subscriberCount: () => hub.size,
      })
    }),
  )
