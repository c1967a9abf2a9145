// What the transport reads from a stream request, for HTTP/1.1 and HTTP/2 alike: the channel, the credentials to
// forward (bearer, allow-listed cookies and headers), the request id, Last-Event-ID and an incoming traceparent.
// Header values stay here; the gateway receives the parsed request only.
import { randomUUID } from "node:crypto"
import { type Channel, isValidRequestId, parseChannel } from "../../domain/Channel.ts"
import type { Credentials } from "../../domain/ports/AuthBackend.ts"
import type { OpenRequest } from "../../domain/ports/Gateway.ts"

export type Headers = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

export interface ForwardingConfig {
  readonly forwardedCookies: ReadonlyArray<string>
  readonly forwardedHeaders: ReadonlyArray<string>
}

export const header = (headers: Headers, name: string): string | undefined => {
  const v = headers[name]
  return typeof v === "string" ? v : v?.[0]
}

const parseCookies = (raw: string | undefined, allowed: ReadonlyArray<string>): string | undefined => {
  if (raw === undefined || allowed.length === 0) return undefined
  const kept: string[] = []
  for (const part of raw.split(";")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    if (allowed.includes(name)) kept.push(`${name}=${part.slice(eq + 1).trim()}`)
  }
  return kept.length === 0 ? undefined : kept.join("; ")
}

const NO_HEADERS: ReadonlyArray<readonly [string, string]> = []

export const credentialsOf = (headers: Headers, config: ForwardingConfig): Credentials | undefined => {
  const auth = header(headers, "authorization")
  const bearer = auth !== undefined && /^bearer\s+\S/i.test(auth) ? auth : undefined
  const cookie = parseCookies(header(headers, "cookie"), config.forwardedCookies)
  let forwarded: Array<readonly [string, string]> | undefined
  for (const name of config.forwardedHeaders) {
    const v = header(headers, name)
    if (v !== undefined) (forwarded ??= []).push([name, v])
  }
  if (bearer === undefined && cookie === undefined && forwarded === undefined) return undefined
  // Kept for the subscriber's lifetime (refresh), so no empty array per subscriber.
  return { authorization: bearer, cookie, headers: forwarded ?? NO_HEADERS }
}

/** Splits a request target into its path and the value of one query parameter. */
const queryParam = (query: string, name: string): string | undefined => {
  for (const part of query.split("&")) {
    const eq = part.indexOf("=")
    const key = eq < 0 ? part : part.slice(0, eq)
    if (key !== name) continue
    try {
      return decodeURIComponent((eq < 0 ? "" : part.slice(eq + 1)).replace(/\+/g, " "))
    } catch {
      return undefined
    }
  }
  return undefined
}

export interface ParsedTarget {
  readonly path: string
  readonly query: string
}

export const splitTarget = (target: string): ParsedTarget => {
  const q = target.indexOf("?")
  return q < 0 ? { path: target, query: "" } : { path: target.slice(0, q), query: target.slice(q + 1) }
}

/** The open request for `/sse/v1/<rest>`; an absent X-Request-ID is generated here, a malformed one is not. */
export const openRequestOf = (rest: string, query: string, headers: Headers, config: ForwardingConfig): OpenRequest => {
  const channel: Channel | undefined = parseChannel(rest)
  const given = header(headers, "x-request-id")
  const requestId = given === undefined ? randomUUID() : isValidRequestId(given) ? given : undefined
  const lastEventId =
    header(headers, "last-event-id") ?? (query === "" ? undefined : queryParam(query, "last_event_id"))
  return { channel, credentials: credentialsOf(headers, config), requestId, lastEventId }
}

export interface TraceParent {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** W3C trace context: a valid `traceparent` continues the client's trace; anything else is ignored. */
export const traceParentOf = (headers: Headers): TraceParent | undefined => {
  const value = header(headers, "traceparent")
  if (value === undefined) return undefined
  const m = TRACEPARENT.exec(value.trim().toLowerCase())
  if (m === null || m[1] === "ff" || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined
  return { traceId: m[2]!, spanId: m[3]!, sampled: (Number.parseInt(m[4]!, 16) & 1) === 1 }
}
