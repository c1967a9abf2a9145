// The byte sinks the fan-out writes to: one per subscriber, a small object each (no closures), so an idle
// subscriber costs little. HTTP/1.1 writes straight to the socket (no chunked framing: the response ends with the
// connection); HTTP/2 writes to its stream, whose buffered bytes include what flow control holds back.
import type http from "node:http"
import http2 from "node:http2"
import type { SubscriberSink } from "../../domain/ports/Gateway.ts"

/** A client that stopped reading never lets the last bytes out; it is cut after this long. */
const CLOSE_GRACE_MS = 2000

export class SocketSink implements SubscriberSink {
  private readonly res: http.ServerResponse
  constructor(res: http.ServerResponse) {
    this.res = res
  }
  write(bytes: Uint8Array): void {
    this.res.socket?.write(bytes)
  }
  pending(): number {
    return this.res.socket?.writableLength ?? 0
  }
  cork(): void {
    this.res.socket?.cork()
  }
  uncork(): void {
    this.res.socket?.uncork()
  }
  close(last?: Uint8Array): void {
    const socket = this.res.socket
    if (socket === null || socket.destroyed) return
    if (last === undefined) socket.end()
    else socket.end(last)
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref()
  }
}

export class StreamSink implements SubscriberSink {
  private readonly stream: http2.ServerHttp2Stream
  constructor(stream: http2.ServerHttp2Stream) {
    this.stream = stream
  }
  write(bytes: Uint8Array): void {
    if (!this.stream.destroyed) this.stream.write(bytes)
  }
  pending(): number {
    return this.stream.writableLength
  }
  get connection(): object | undefined {
    return this.stream.session
  }
  cork(): void {
    this.stream.cork()
  }
  uncork(): void {
    this.stream.uncork()
  }
  close(last?: Uint8Array): void {
    const stream = this.stream
    if (stream.destroyed || stream.closed) return
    if (last === undefined) stream.end()
    else stream.end(last)
    setTimeout(() => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL)
    }, CLOSE_GRACE_MS).unref()
  }
}
