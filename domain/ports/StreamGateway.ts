// Port: what the HTTP adapter asks of the application. The adapter owns sockets and bytes;
// the gateway decides who may stream and what they receive (SPEC §1.2 handshake order).
import { Context, type Effect } from "effect"

export type Headers = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

export interface OpenRequest {
  /** The path after `/sse/v1/`, still URL-encoded, without the query string. */
  readonly path: string
  /** Lower-case header names as Node gives them. */
  readonly headers: Headers
}

/** One SSE response as the hub sees it: a byte sink with back-pressure information. */
export interface StreamSink {
  /** Queues bytes on the socket. */
  readonly write: (bytes: Uint8Array) => void
  /** Bytes queued but not yet accepted by the kernel. */
  readonly pending: () => number
  /** Holds writes back until `uncork`, so events decoded together leave in one system call. */
  readonly cork: () => void
  readonly uncork: () => void
  /** Writes the last bytes (if any) and closes the response. */
  readonly close: (last?: Uint8Array) => void
}

export interface Reject {
  readonly _tag: "Reject"
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface Accept {
  readonly _tag: "Accept"
  /** `retry:` line and the optional initial_data frame. */
  readonly prelude: Uint8Array
  /** Registers the stream; from now on it receives every transaction decoded after this call. */
  readonly attach: (sink: StreamSink) => Attached
  /** The client left before the stream could start: release what the handshake reserved. */
  readonly cancel: () => void
}

export interface Attached {
  /** The client went away: free the stream's state now. */
  readonly detach: () => void
}

export interface Probe {
  readonly status: number
  readonly body: string
}

export class StreamGateway extends Context.Service<
  StreamGateway,
  {
    readonly open: (request: OpenRequest) => Effect.Effect<Reject | Accept>
    readonly healthz: () => Probe
    readonly readyz: () => Probe
    readonly metrics: () => Promise<{ readonly contentType: string; readonly body: string }>
    /** Sends the shutdown frame to every stream and closes them; new opens are refused from now on. */
    readonly shutdown: () => void
    /** Streams still attached (for the shutdown wait). */
    readonly activeStreams: () => number
  }
>()("walera/StreamGateway") {}
