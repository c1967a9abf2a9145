// The Observability port in memory, for tests: every call is counted under "<event>" and "<event>:<label>", so a
// test reads what happened without a Prometheus registry.
import { Layer } from "effect"
import { Observability, type ObservabilityShape } from "../../domain/ports/Observability.ts"

export interface MemoryObservability extends ObservabilityShape {
  /** Sum of the counts recorded under a key ("txDropped:multi_root", "subscriberOpened:exact", …). */
  readonly count: (key: string) => number
  /** The last value set for a gauge-like event ("breaker", "replayWindow.transactions", …). */
  readonly last: (key: string) => number | string | undefined
}

export const makeMemoryObservability = (): MemoryObservability => {
  const counts = new Map<string, number>()
  const lasts = new Map<string, number | string>()
  const add = (key: string, n = 1) => counts.set(key, (counts.get(key) ?? 0) + n)
  const both = (event: string, label: string, n = 1) => {
    add(event, n)
    add(`${event}:${label}`, n)
  }
  return {
    count: (key) => counts.get(key) ?? 0,
    last: (key) => lasts.get(key),
    subscriberOpened: (kind) => both("subscriberOpened", kind),
    subscriberClosed: (kind, reason) => {
      both("subscriberClosed", reason)
      add(`subscriberClosed:${kind}`)
    },
    framesSent: (type, n) => both("framesSent", type, n),
    txDecoded: () => add("txDecoded"),
    txDelivered: (n) => add("txDelivered", n),
    txDropped: (reason, n) => both("txDropped", reason, n),
    valuesSentAsText: (n) => add("valuesSentAsText", n),
    authCall: (result) => both("authCall", result),
    breakerChanged: (status) => {
      lasts.set("breaker", status)
      both("breakerChanged", status)
    },
    limitRejected: (kind) => both("limitRejected", kind),
    openAnswered: (status) => both("openAnswered", String(status)),
    connectionRejected: (reason) => both("connectionRejected", reason),
    replicationStreaming: (streaming) => {
      lasts.set("replicationStreaming", streaming ? 1 : 0)
      both("replicationStreaming", String(streaming))
    },
    replicationRetried: () => add("replicationRetried"),
    slotLag: (bytes) => lasts.set("slotLag", bytes),
    decodeError: (kind) => both("decodeError", kind),
    relationSkipped: () => add("relationSkipped"),
    resumed: (result) => both("resumed", result),
    replayWindow: (transactions, bytes) => {
      lasts.set("replayWindow.transactions", transactions)
      lasts.set("replayWindow.bytes", bytes)
    },
  }
}

export const layerMemory = (obs: MemoryObservability = makeMemoryObservability()) => Layer.succeed(Observability, obs)
