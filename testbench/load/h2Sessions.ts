// The load generator's HTTP/2 connections: a fixed set of prior-knowledge h2c sessions, each carrying many SSE
// streams, spread over source addresses. A session that closed is replaced on the next stream that needs it, so a
// reconnecting stream lands on a live connection like a browser's would.
import http2 from "node:http2"
import net from "node:net"

/**
 * Receive windows of a browser (Chromium uses 6 MiB per stream and 15 MiB per connection): the client reads
 * everything at once, so a small window would only add WINDOW_UPDATE frames, not back-pressure.
 */
const STREAM_WINDOW = 6 * 1024 * 1024
const SESSION_WINDOW = 15 * 1024 * 1024

interface Slot {
  readonly local: string | undefined
  session: http2.ClientHttp2Session | null
  /** the current session received GOAWAY: its streams end with reason "goaway" */
  goaway: boolean
}

export class H2Sessions {
  private readonly slots: Slot[]
  private readonly authority: string
  private readonly log: (line: string) => void
  private readonly streamsPerSession: number
  /** sessions opened so far (replacements included) */
  opened = 0
  /** session-level errors by code (ECONNREFUSED, ERR_HTTP2_ERROR, …) */
  readonly errors: Record<string, number> = {}
  private warnedLimit = false

  constructor(
    authority: string,
    count: number,
    addresses: ReadonlyArray<string>,
    streamsPerSession: number,
    log: (line: string) => void,
  ) {
    this.authority = authority
    this.streamsPerSession = streamsPerSession
    this.log = log
    const per = addresses.length === 0 ? 0 : Math.ceil(count / addresses.length)
    this.slots = Array.from({ length: count }, (_, i) => ({
      local: addresses.length === 0 ? undefined : addresses[Math.floor(i / per)],
      session: null,
      goaway: false,
    }))
  }

  get count(): number {
    return this.slots.length
  }

  /** The live session of slot i, connecting a new one when there is none. */
  session(i: number): http2.ClientHttp2Session {
    const slot = this.slots[i]!
    const current = slot.session
    if (current !== null && !current.closed && !current.destroyed && !slot.goaway) return current
    const local = slot.local
    const s = http2.connect(this.authority, {
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
      ...(local === undefined
        ? {}
        : {
            createConnection: (url: URL) =>
              net.connect({ host: url.hostname, port: Number(url.port || 80), localAddress: local }),
          }),
    })
    slot.session = s
    slot.goaway = false
    this.opened++
    s.on("connect", () => s.setLocalWindowSize(SESSION_WINDOW))
    s.on("remoteSettings", (settings) => {
      const max = settings.maxConcurrentStreams
      if (max !== undefined && max < this.streamsPerSession && !this.warnedLimit) {
        this.warnedLimit = true
        this.log(
          `[loadgen] the server allows ${max} streams per connection, ${this.streamsPerSession} are assigned: the rest wait`,
        )
      }
    })
    s.on("goaway", () => {
      if (slot.session === s) slot.goaway = true
    })
    s.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message
      this.errors[code] = (this.errors[code] ?? 0) + 1
    })
    s.on("close", () => {
      if (slot.session === s) slot.session = null
    })
    return s
  }

  /** Why a stream of slot i that was open ended without a terminal frame. */
  endReason(i: number, session: http2.ClientHttp2Session, rstCode: number | undefined): string {
    if (this.slots[i]!.session === session && this.slots[i]!.goaway) return "goaway"
    if (session.destroyed || session.closed) return "session_close"
    if (rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR) return `rst_${rstCode}`
    return "stream_end"
  }

  openSessions(): number {
    let n = 0
    for (const s of this.slots) if (s.session !== null && !s.session.destroyed) n++
    return n
  }

  close(): void {
    for (const s of this.slots) s.session?.destroy()
  }
}
