// The HTTP edge on Node's own http and http2 modules: HTTP/1.1 and HTTP/2 on one port (prior-knowledge h2c in
// cleartext, ALPN h2/http/1.1 with TLS), the probes and /metrics (on http.admin_addr when set), and the
// protections of docs/security.md: a connection cap, a headers timeout, no pipelining. A handshake runs as a
// fiber owned by this layer's scope; after it a subscriber is just bytes written to a socket or an HTTP/2 stream.
import { readFileSync } from "node:fs"
import http from "node:http"
import http2 from "node:http2"
import net from "node:net"
import tls from "node:tls"
import { Context, Effect, type Fiber, FiberSet, Layer, Tracer } from "effect"
import { SSE_PREFIX } from "../../domain/Channel.ts"
import { type Decision, Gateway, type OpenRequest, type SubscriberSink } from "../../domain/ports/Gateway.ts"
import { Log } from "../../domain/ports/Log.ts"
import { MetricsExposition, Observability } from "../../domain/ports/Observability.ts"
import { type ForwardingConfig, type Headers, openRequestOf, splitTarget, traceParentOf } from "./Requests.ts"
import {
  type Answer,
  BASE_HEADERS,
  healthz,
  internalError,
  livez,
  methodNotAllowed,
  notFound,
  pipelined,
  preflightHeaders,
  readyz,
  refusalAnswer,
  SSE_HEADERS,
} from "./Responses.ts"
import { releaseHttpParser } from "./ParserRelease.ts"
import { SocketSink, StreamSink } from "./Sinks.ts"

export interface Address {
  readonly host: string
  readonly port: number
}

export interface HttpConfig {
  readonly listen: Address
  /** Probes and /metrics here only; the public address then serves /sse/v1/ only. */
  readonly admin: Address | undefined
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined
  readonly allowOrigin: (origin: string) => boolean
  readonly forwarding: ForwardingConfig
  readonly headersTimeoutMs: number
  readonly maxConnections: number
  readonly h2MaxConcurrentStreams: number
  readonly shutdownDeadlineMs: number
  /** Continue an incoming traceparent (tracing on). */
  readonly continueTraces: boolean
}

export interface HttpServerInfo {
  readonly port: number
  readonly adminPort: number | undefined
}

export class HttpServerInfoService extends Context.Service<HttpServerInfoService, HttpServerInfo>()(
  "walera/HttpServerInfo",
) {}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n")
const ignore = (): void => {}
const KEEP_ALIVE_MS = 5000

/** How a decided handshake is answered on one transport. */
interface Responder {
  /** The client went away before the answer. */
  readonly gone: () => boolean
  readonly answer: (a: Answer) => void
  /** Starts the event stream: headers and preface in one write; `detach` when the client goes away. */
  readonly start: (preface: Uint8Array, detach: () => void) => void
  readonly sink: () => SubscriberSink
}

/** Per HTTP/1.1 connection: the exchange in progress, so a pipelined request is noticed. */
interface Exchange {
  readonly res: http.ServerResponse
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  streaming: boolean
  detach: (() => void) | undefined
}

const listen = (server: net.Server, address: Address) =>
  Effect.callback<number, Error>((resume) => {
    const onError = (e: Error) => resume(Effect.fail(e))
    server.once("error", onError)
    server.listen(address.port, address.host, () => {
      server.off("error", onError)
      const bound = server.address()
      resume(Effect.succeed(typeof bound === "object" && bound !== null ? bound.port : address.port))
    })
  })

export const layer = (config: HttpConfig) =>
  Layer.effect(
    HttpServerInfoService,
    Effect.gen(function* () {
      const gateway = yield* Gateway
      const exposition = yield* MetricsExposition
      const obs = yield* Observability
      const log = yield* Log
      const run = yield* FiberSet.makeRuntime<never>()
      const allowHeaders = [
        "Authorization",
        "X-Request-ID",
        "Last-Event-ID",
        ...config.forwarding.forwardedHeaders,
      ].join(", ")
      const probesHere = config.admin === undefined

      const cors = (headers: Headers): Record<string, string> => {
        const origin = headers["origin"]
        if (typeof origin !== "string" || !config.allowOrigin(origin)) return {}
        // Retry-After exposed: a browser client on another origin must see how long to wait after a 503 or 429.
        return {
          "access-control-allow-origin": origin,
          "access-control-allow-credentials": "true",
          "access-control-expose-headers": "Retry-After",
        }
      }

      // ---------------------------------------------------------------------------------------------------------
      // Routing shared by both protocols

      type Route =
        | { readonly _tag: "Open"; readonly request: OpenRequest; readonly headers: Headers }
        | { readonly _tag: "Answer"; readonly answer: Answer }
        | { readonly _tag: "Metrics" }

      const probe = (path: string): Answer | undefined => {
        switch (path) {
          case "/livez":
            return livez()
          case "/healthz":
            return healthz(gateway.health())
          case "/readyz":
            return readyz(gateway.health())
        }
        return undefined
      }

      const route = (method: string, target: string, headers: Headers, probes: boolean, streams: boolean): Route => {
        const { path, query } = splitTarget(target)
        if (streams && path.startsWith(SSE_PREFIX)) {
          if (method === "GET") {
            return {
              _tag: "Open",
              request: openRequestOf(path.slice(SSE_PREFIX.length), query, headers, config.forwarding),
              headers,
            }
          }
          if (method === "OPTIONS") {
            return {
              _tag: "Answer",
              answer: { status: 204, body: "", headers: { ...cors(headers), ...preflightHeaders(allowHeaders) } },
            }
          }
          return { _tag: "Answer", answer: methodNotAllowed("GET, OPTIONS") }
        }
        if (!probes) return { _tag: "Answer", answer: notFound }
        if (method !== "GET" && method !== "HEAD") return { _tag: "Answer", answer: methodNotAllowed("GET") }
        if (path === "/metrics") return { _tag: "Metrics" }
        return { _tag: "Answer", answer: probe(path) ?? notFound }
      }

      /** Runs a handshake as a fiber of this layer; the responder answers once it is decided. */
      const startOpen = (request: OpenRequest, headers: Headers, respond: Responder): Fiber.Fiber<unknown, unknown> => {
        const decide = (decision: Decision) =>
          Effect.sync(() => {
            if (respond.gone()) return
            if (decision._tag !== "Accept") {
              const a = refusalAnswer(decision)
              obs.openAnswered(a.status)
              return respond.answer(a)
            }
            const attached = decision.attach(respond.sink())
            if (attached._tag !== "Attached") {
              const a = refusalAnswer(attached)
              obs.openAnswered(a.status)
              return respond.answer(a)
            }
            obs.openAnswered(200)
            respond.start(attached.preface, attached.detach)
          })
        const handshake = Effect.scoped(Effect.flatMap(gateway.open(request), decide))
        const trace = config.continueTraces ? traceParentOf(headers) : undefined
        const fiber = run(
          trace === undefined ? handshake : handshake.pipe(Effect.withParentSpan(Tracer.externalSpan(trace))),
        )
        fiber.addObserver((exit) => {
          if (exit._tag === "Failure" && !respond.gone() && !exit.cause.reasons.every((r) => r._tag === "Interrupt")) {
            log.error("stream open failed unexpectedly", { cause: String(exit.cause) })
            obs.openAnswered(500)
            respond.answer(internalError)
          }
        })
        return fiber
      }

      const metricsText = (reply: (a: Answer) => void) =>
        run(exposition.render).addObserver((exit) =>
          reply(
            exit._tag === "Success"
              ? { status: 200, body: exit.value.body, headers: { "content-type": exit.value.contentType } }
              : { ...internalError, body: '{"error":"metrics_unavailable"}' },
          ),
        )

      // ---------------------------------------------------------------------------------------------------------
      // HTTP/1.1

      const exchanges = new WeakMap<net.Socket, Exchange>()

      const answer1 = (req: http.IncomingMessage, res: http.ServerResponse, a: Answer) => {
        const current = exchanges.get(req.socket)
        if (current?.res === res) exchanges.delete(req.socket)
        if (res.headersSent || res.destroyed) return
        res.writeHead(a.status, { ...BASE_HEADERS, ...cors(req.headers), ...a.headers })
        res.end(a.body)
      }

      /** A request before the previous response finished: no auth call for it; 400 and the connection closes. */
      const refusePipelined = (socket: net.Socket, current: Exchange) => {
        obs.connectionRejected("pipelining")
        if (current.streaming) {
          current.detach?.()
          socket.destroy()
          return
        }
        current.fiber?.interruptUnsafe()
        const res = current.res
        if (!res.headersSent && !res.destroyed) {
          res.shouldKeepAlive = false
          res.writeHead(pipelined.status, { ...BASE_HEADERS, ...pipelined.headers })
          res.end(pipelined.body, () => socket.destroy())
        } else socket.destroy()
        setTimeout(() => socket.destroy(), 1000).unref()
      }

      const onRequest =
        (probes: boolean, streams: boolean) => (req: http.IncomingMessage, res: http.ServerResponse) => {
          const socket = req.socket
          const current = exchanges.get(socket)
          if (current !== undefined) return refusePipelined(socket, current)
          const r = route(req.method ?? "GET", req.url ?? "/", req.headers, probes, streams)
          if (r._tag === "Answer") return answer1(req, res, r.answer)
          const exchange: Exchange = { res, fiber: undefined, streaming: false, detach: undefined }
          exchanges.set(socket, exchange)
          if (r._tag === "Metrics") {
            metricsText((a) => answer1(req, res, a))
            return
          }
          const abandon = () => {
            exchanges.delete(socket)
            exchange.fiber?.interruptUnsafe()
          }
          res.once("close", abandon)
          exchange.fiber = startOpen(r.request, r.headers, {
            gone: () => res.destroyed || res.writableEnded || socket.destroyed,
            answer: (a) => {
              res.off("close", abandon)
              answer1(req, res, a)
            },
            sink: () => new SocketSink(res),
            start: (preface, detach) => {
              res.off("close", abandon)
              exchange.streaming = true
              exchange.detach = detach
              res.useChunkedEncodingByDefault = false
              res.shouldKeepAlive = false
              res.writeHead(200, { ...SSE_HEADERS, ...cors(req.headers) })
              socket.setNoDelay(true)
              socket.setKeepAlive(true, 30_000)
              // Headers and preface leave together; from here on the sink writes to the socket.
              res.write(preface)
              res.once("close", detach)
              // No other request will be read from this connection: the parser's memory goes back now, and a client
              // that stops reading and then leaves (or sends anything) is noticed at once, not at the next write.
              if (releaseHttpParser(req, socket)) exchanges.delete(socket)
              else socket.once("end", () => socket.destroy())
              socket.resume()
            },
          })
        }

      const h1Options = (): http.ServerOptions => ({
        keepAliveTimeout: KEEP_ALIVE_MS,
        headersTimeout: config.headersTimeoutMs,
        requestTimeout: config.headersTimeoutMs + 1000,
        connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(config.headersTimeoutMs / 2))),
      })

      const onClientError = (err: NodeJS.ErrnoException, socket: net.Socket) => {
        const timedOut = err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        obs.connectionRejected(timedOut ? "headers_timeout" : "malformed")
        const current = exchanges.get(socket)
        // After an event stream started, raw bytes would corrupt it: just close.
        if (current !== undefined || !socket.writable) {
          current?.detach?.()
          socket.destroy()
          return
        }
        socket.end(
          timedOut
            ? "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            : "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        setTimeout(() => socket.destroy(), 1000).unref()
      }

      const h1 = http.createServer(h1Options(), onRequest(probesHere, true))
      h1.on("clientError", onClientError)
      // node:http enforces headersTimeout from a timer it starts on "listening"; this server never listens itself
      // (connections are handed to it), so it is told it does, or half-sent headers would be held forever.
      h1.emit("listening")

      // ---------------------------------------------------------------------------------------------------------
      // HTTP/2

      const sessions = new Set<http2.ServerHttp2Session>()

      const answer2 = (stream: http2.ServerHttp2Stream, headers: Headers, a: Answer) => {
        if (stream.destroyed || stream.headersSent) return
        stream.respond({ ":status": a.status, ...BASE_HEADERS, ...cors(headers), ...withoutConnection(a.headers) })
        // respond() already ends a bodiless answer (204, 304, HEAD): a second end would be an unhandled stream error.
        if (!stream.writableEnded) stream.end(a.body)
      }

      const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        // An unhandled stream error would stop the process; "close" follows anyway. A module-level function: a closure
        // made here would keep this handler's whole scope (request headers, the handshake's fiber) for the stream's life.
        stream.on("error", ignore)
        const method = String(headers[":method"] ?? "GET")
        const target = String(headers[":path"] ?? "/")
        const h = headers as Headers
        const r = route(method, target, h, probesHere, true)
        if (r._tag === "Answer") return answer2(stream, h, r.answer)
        if (r._tag === "Metrics") {
          metricsText((a) => answer2(stream, h, a))
          return
        }
        let fiber: Fiber.Fiber<unknown, unknown> | undefined
        const abandon = () => fiber?.interruptUnsafe()
        stream.once("close", abandon)
        fiber = startOpen(r.request, h, {
          gone: () => stream.destroyed || stream.closed,
          answer: (a) => {
            stream.off("close", abandon)
            answer2(stream, h, a)
          },
          sink: () => new StreamSink(stream),
          start: (preface, detach) => {
            stream.off("close", abandon)
            stream.respond({ ":status": 200, ...SSE_HEADERS, ...cors(h) })
            stream.write(preface)
            // A reset stream closes at once: the subscriber is freed without waiting for a write.
            stream.once("close", detach)
          },
        })
      }

      const h2 = http2.createServer({
        settings: { maxConcurrentStreams: config.h2MaxConcurrentStreams },
        maxSessionMemory: 64,
      })
      h2.on("stream", onStream)
      h2.on("session", (session) => {
        sessions.add(session)
        session.on("error", ignore)
        session.once("close", () => sessions.delete(session))
        // A session that holds no stream for headers_timeout is closed, like an idle HTTP/1.1 connection.
        let idle: NodeJS.Timeout | undefined
        const watchIdle = () => {
          clearTimeout(idle)
          idle = setTimeout(() => {
            if (!session.closed && !session.destroyed) {
              obs.connectionRejected("headers_timeout")
              session.close()
            }
          }, config.headersTimeoutMs)
          idle.unref()
        }
        let open = 0
        watchIdle()
        session.on("stream", (stream: http2.ServerHttp2Stream) => {
          open++
          clearTimeout(idle)
          stream.once("close", () => {
            if (--open === 0) watchIdle()
          })
        })
        session.once("close", () => clearTimeout(idle))
      })

      // ---------------------------------------------------------------------------------------------------------
      // The public listener: one port, both protocols

      /** Hands a connection to HTTP/2 or HTTP/1.1 by its first bytes (prior-knowledge h2c starts with the preface). */
      const sniff = (socket: net.Socket) => {
        const timer = setTimeout(() => {
          obs.connectionRejected("headers_timeout")
          socket.destroy()
        }, config.headersTimeoutMs)
        timer.unref()
        socket.once("close", () => clearTimeout(timer))
        socket.on("error", ignore)
        socket.once("data", (chunk: Buffer) => {
          clearTimeout(timer)
          socket.pause()
          socket.unshift(chunk)
          const n = Math.min(chunk.length, H2_PREFACE.length)
          if (n >= 3 && chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) h2.emit("connection", socket)
          else handOverHttp1(socket)
        })
        socket.resume()
      }

      /**
       * node:http normally reads a new connection straight from its handle, which would skip the bytes already
       * read to tell the protocols apart; marked as consumed, it reads through the socket's stream instead.
       */
      const handOverHttp1 = (socket: net.Socket) => {
        const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle
        if (handle !== undefined && handle !== null) handle._consumed = true
        h1.emit("connection", socket)
        socket.resume()
      }

      let listener: net.Server
      if (config.tls === undefined) {
        listener = net.createServer({ pauseOnConnect: true }, sniff)
      } else {
        const secure = tls.createServer({
          cert: readFileSync(config.tls.certFile),
          key: readFileSync(config.tls.keyFile),
          ALPNProtocols: ["h2", "http/1.1"],
          handshakeTimeout: config.headersTimeoutMs,
        })
        secure.on("secureConnection", (socket: tls.TLSSocket) => {
          socket.on("error", ignore)
          if (socket.alpnProtocol === "h2") h2.emit("connection", socket)
          else h1.emit("connection", socket)
        })
        secure.on("tlsClientError", () => obs.connectionRejected("malformed"))
        listener = secure
      }
      listener.maxConnections = config.maxConnections
      listener.on("drop", () => obs.connectionRejected("max_connections"))
      listener.on("error", (e) => log.error("listener error", { error: e.message }))

      const port = yield* listen(listener, config.listen).pipe(Effect.orDie)
      yield* Effect.logInfo("listening").pipe(
        Effect.annotateLogs({
          addr: `${config.listen.host}:${port}`,
          protocols: config.tls === undefined ? "http/1.1, h2c" : "https (h2, http/1.1)",
        }),
      )

      let admin: http.Server | undefined
      let adminPort: number | undefined
      if (config.admin !== undefined) {
        admin = http.createServer(h1Options(), onRequest(true, false))
        admin.on("clientError", onClientError)
        admin.maxConnections = 1024
        adminPort = yield* listen(admin, config.admin).pipe(Effect.orDie)
        yield* Effect.logInfo("admin listening").pipe(
          Effect.annotateLogs({ addr: `${config.admin.host}:${adminPort}` }),
        )
      }

      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          const subscribers = gateway.subscriberCount()
          yield* gateway.shutdown
          yield* Effect.logInfo("http server stopping").pipe(Effect.annotateLogs({ subscribers }))
          yield* Effect.callback<void>((resume) => {
            let pending = admin === undefined ? 1 : 2
            const done = () => {
              if (--pending === 0) resume(Effect.void)
            }
            listener.close(done)
            h1.close()
            admin?.close(done)
            for (const session of sessions) {
              session.goaway(http2.constants.NGHTTP2_NO_ERROR)
              session.close()
            }
            h1.closeIdleConnections()
            admin?.closeIdleConnections()
            const hardStop = setTimeout(
              () => {
                h1.closeAllConnections()
                admin?.closeAllConnections()
                for (const session of sessions) session.destroy()
                resume(Effect.void)
              },
              Math.max(500, config.shutdownDeadlineMs - 2000),
            )
            hardStop.unref()
          })
        }),
      )
      return { port, adminPort }
    }),
  )

/** HTTP/2 forbids connection-specific headers. */
const withoutConnection = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const { connection: _, ...rest } = headers
  return rest
}
