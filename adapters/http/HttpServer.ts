// The HTTP edge on plain node:http: SSE streams, CORS, health, readiness and metrics.
// node:http keeps a stream at a few tens of KiB; the handshake runs as an Effect through
// the StreamGateway port, and after it a stream is just bytes written to a socket.
import http from "node:http"
import { Context, Effect, Exit, Layer } from "effect"
import { SSE_PREFIX } from "../../domain/Channel.ts"
import { type Accept, type Reject, type StreamSink, StreamGateway } from "../../domain/ports/StreamGateway.ts"
import { Log } from "../telemetry/Log.ts"

export interface HttpConfig {
  readonly host: string
  readonly port: number
  readonly allowOrigin: (origin: string) => boolean
  readonly forwardedHeaders: ReadonlyArray<string>
  readonly shutdownDeadlineMs: number
}

export interface HttpServerInfo {
  readonly port: number
}

const BASE_HEADERS = { "x-content-type-options": "nosniff", vary: "Origin" }
const SSE_HEADERS = {
  ...BASE_HEADERS,
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
}

const corsHeaders = (req: http.IncomingMessage, config: HttpConfig): Record<string, string> => {
  const origin = req.headers.origin
  if (origin === undefined || !config.allowOrigin(origin)) return {}
  return { "access-control-allow-origin": origin, "access-control-allow-credentials": "true" }
}

/**
 * Writes go straight to the socket: the response is sent without chunked encoding and ends
 * with the connection (SSE needs no framing from HTTP), which saves a chunk header per event.
 * A class, not closures, so an idle stream costs one small object.
 */
class SocketSink implements StreamSink {
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
    // A client that stopped reading never lets the last bytes out; do not wait for it forever.
    setTimeout(() => socket.destroy(), 2000).unref()
  }
}

/** Where the server listens (the port matters when http.addr asks for port 0). */
export class HttpServerInfoService extends Context.Service<HttpServerInfoService, HttpServerInfo>()(
  "walera/HttpServerInfo",
) {}

export const layer = (config: HttpConfig) =>
  Layer.effect(
    HttpServerInfoService,
    Effect.gen(function* () {
      const gateway = yield* StreamGateway
      const log = yield* Log
      const context = yield* Effect.context<never>()
      const runFork = Effect.runForkWith(context)
      const allowHeaders = ["Authorization", "X-Request-ID", "Last-Event-ID", ...config.forwardedHeaders].join(", ")

      const send = (
        req: http.IncomingMessage,
        res: http.ServerResponse,
        r: Reject | { status: number; body: string; headers?: Record<string, string> },
      ) => {
        res.writeHead(r.status, { ...BASE_HEADERS, ...corsHeaders(req, config), ...(r.headers ?? {}) })
        res.end(r.body)
      }
      const json = (req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string, extra = {}) =>
        send(req, res, { status, body, headers: { "content-type": "application/json", ...extra } })

      const stream = (req: http.IncomingMessage, res: http.ServerResponse, path: string) => {
        const fiber = runFork(gateway.open({ path, headers: req.headers }))
        const abandon = () => fiber.interruptUnsafe()
        res.once("close", abandon)
        fiber.addObserver((exit) => {
          res.off("close", abandon)
          if (res.destroyed || res.writableEnded) {
            if (Exit.isSuccess(exit) && exit.value._tag === "Accept") exit.value.cancel()
            return
          }
          if (Exit.isFailure(exit)) {
            log.error("stream open failed unexpectedly", { cause: String(exit.cause) })
            json(req, res, 500, '{"error":"internal"}')
            return
          }
          const decision: Reject | Accept = exit.value
          if (decision._tag === "Reject") return send(req, res, decision)
          res.useChunkedEncodingByDefault = false
          res.shouldKeepAlive = false
          res.writeHead(200, { ...SSE_HEADERS, ...corsHeaders(req, config) })
          res.socket?.setNoDelay(true)
          // Headers and the prelude leave together; from here on the sink writes to the socket.
          res.write(decision.prelude)
          const attached = decision.attach(new SocketSink(res))
          res.once("close", attached.detach)
        })
      }

      const server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => {
        const url = req.url ?? "/"
        const q = url.indexOf("?")
        const path = q < 0 ? url : url.slice(0, q)
        const method = req.method ?? "GET"
        if (path.startsWith(SSE_PREFIX)) {
          if (method === "GET") return stream(req, res, path.slice(SSE_PREFIX.length))
          if (method === "OPTIONS") {
            res.writeHead(204, {
              ...BASE_HEADERS,
              ...corsHeaders(req, config),
              "access-control-allow-methods": "GET, OPTIONS",
              "access-control-allow-headers": allowHeaders,
              "access-control-max-age": "86400",
            })
            return res.end()
          }
          return json(req, res, 405, '{"error":"method_not_allowed"}', { allow: "GET, OPTIONS" })
        }
        if (method !== "GET" && method !== "HEAD")
          return json(req, res, 405, '{"error":"method_not_allowed"}', { allow: "GET" })
        if (path === "/healthz") {
          const p = gateway.healthz()
          return json(req, res, p.status, p.body)
        }
        if (path === "/readyz") {
          const p = gateway.readyz()
          return json(req, res, p.status, p.body)
        }
        if (path === "/metrics") {
          gateway.metrics().then(
            (m) => send(req, res, { status: 200, body: m.body, headers: { "content-type": m.contentType } }),
            () => json(req, res, 500, '{"error":"metrics_unavailable"}'),
          )
          return
        }
        json(req, res, 404, '{"error":"not_found"}')
      })
      server.on("clientError", (_err, socket) => {
        if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        else socket.destroy()
      })

      const port = yield* Effect.callback<number, Error>((resume) => {
        const onError = (e: Error) => resume(Effect.fail(e))
        server.once("error", onError)
        server.listen(config.port, config.host, () => {
          server.off("error", onError)
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : config.port))
        })
      }).pipe(Effect.orDie)
      log.info("listening", { addr: `${config.host}:${port}` })

      yield* Effect.addFinalizer(() =>
        Effect.callback<void>((resume) => {
          const streams = gateway.activeStreams()
          server.close(() => resume(Effect.void))
          gateway.shutdown()
          server.closeIdleConnections()
          const hardStop = setTimeout(
            () => {
              server.closeAllConnections()
              resume(Effect.void)
            },
            Math.max(500, config.shutdownDeadlineMs - 2000),
          )
          hardStop.unref()
          log.info("http server stopping", { streams })
        }),
      )
      return { port }
    }),
  )
