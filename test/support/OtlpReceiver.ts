// A local OTLP trace receiver for tests: OTLP/HTTP (JSON or protobuf, on /v1/traces) and OTLP/gRPC (HTTP/2 on the
// TraceService/Export method). It keeps every request's body; JSON ones are decoded into spans.
import http from "node:http"
import http2 from "node:http2"

export interface ReceivedSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string
  readonly serviceName: string | undefined
  readonly resource: Record<string, unknown>
}

export interface Export {
  readonly path: string
  readonly contentType: string
  readonly body: Buffer
}

export interface OtlpReceiver {
  readonly url: string
  readonly exports: Export[]
  readonly spans: () => ReceivedSpan[]
  readonly close: () => Promise<void>
}

const attrs = (list: ReadonlyArray<{ key: string; value: Record<string, unknown> }> | undefined) => {
  const out: Record<string, unknown> = {}
  for (const a of list ?? []) out[a.key] = Object.values(a.value)[0]
  return out
}

const jsonSpans = (body: Buffer): ReceivedSpan[] => {
  const doc = JSON.parse(body.toString("utf8")) as {
    resourceSpans?: Array<{
      resource?: { attributes?: Array<{ key: string; value: Record<string, unknown> }> }
      scopeSpans?: Array<{ spans?: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }> }>
    }>
  }
  return (doc.resourceSpans ?? []).flatMap((rs) => {
    const resource = attrs(rs.resource?.attributes)
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        name: s.name,
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? "",
        serviceName: resource["service.name"] as string | undefined,
        resource,
      })),
    )
  })
}

export const startOtlpHttpReceiver = async (): Promise<OtlpReceiver> => {
  const exports: Export[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", body: Buffer.concat(chunks) })
      res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/json" })
      res.end(req.headers["content-type"]?.includes("json") ? "{}" : "")
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    spans: () => exports.filter((e) => e.contentType.includes("json")).flatMap((e) => jsonSpans(e.body)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

export const startOtlpGrpcReceiver = async (): Promise<OtlpReceiver> => {
  const exports: Export[] = []
  const server = http2.createServer()
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = []
    stream.on("data", (c: Buffer) => chunks.push(c))
    stream.on("end", () => {
      exports.push({
        path: String(headers[":path"]),
        contentType: String(headers["content-type"]),
        body: Buffer.concat(chunks),
      })
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true })
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }))
      // An empty ExportTraceServiceResponse: the gRPC frame header of a zero-length message.
      stream.end(Buffer.from([0, 0, 0, 0, 0]))
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    spans: () => [],
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}
