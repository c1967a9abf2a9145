// Structured logs: one JSON object per line on stdout (or a readable line with --dev-log). Both the Log port
// (plain code) and Effect's own logger (Effect.log*) write through here, so every line has one shape, and a line
// written inside a traced operation carries its trace_id and span_id. Callers pass identifiers only; the readable
// form escapes control characters so no client input can forge a line.
import { Context, Layer, Logger, References, Tracer } from "effect"
import { type Fields, type Level, Log, type LogShape } from "../../domain/ports/Log.ts"

const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface LogOptions {
  readonly level: Level
  readonly pretty: boolean
  readonly write?: (line: string) => void
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g
const escapeControl = (text: string): string =>
  text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

type Value = string | number | boolean | null | undefined

export interface LogWriter extends LogShape {
  readonly line: (level: Level, msg: string, fields: Readonly<Record<string, Value>> | undefined) => void
}

export const makeLog = (options: LogOptions): LogWriter => {
  const min = rank[options.level]
  const write = options.write ?? ((line: string) => process.stdout.write(line))
  const line = (level: Level, msg: string, fields?: Readonly<Record<string, Value>>) => {
    if (rank[level] < min) return
    const time = new Date().toISOString()
    if (options.pretty) {
      let extra = ""
      if (fields !== undefined)
        for (const [k, v] of Object.entries(fields))
          if (v !== undefined) extra += ` ${escapeControl(k)}=${escapeControl(String(v))}`
      write(`${time} ${level.toUpperCase().padEnd(5)} ${escapeControl(msg)}${extra}\n`)
    } else {
      write(`${JSON.stringify({ time, level, msg, ...fields })}\n`)
    }
  }
  const log = (level: Level, msg: string, fields?: Fields) => line(level, msg, fields)
  return {
    line,
    enabled: (level) => rank[level] >= min,
    log,
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  }
}

const levelOf = (effectLevel: string): Level => {
  switch (effectLevel) {
    case "Fatal":
    case "Error":
      return "error"
    case "Warn":
      return "warn"
    case "Info":
      return "info"
    default:
      return "debug"
  }
}

const toValue = (v: unknown): Value =>
  v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? v
    : v === undefined
      ? undefined
      : String(v)

const EFFECT_LEVEL: Record<Level, "Debug" | "Info" | "Warn" | "Error"> = {
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
}

const TRACE_ID = /^[0-9a-f]{32}$/

/** Effect's logger, writing the same lines, with the current span's ids. */
export const effectLogger = (writer: LogWriter) =>
  Logger.make(({ message, logLevel, fiber, cause }) => {
    const fields: Record<string, Value> = {}
    for (const [k, v] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) fields[k] = toValue(v)
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    // With tracing off, spans are not registered and carry no real ids.
    if (span?.sampled && TRACE_ID.test(span.traceId)) {
      fields["trace_id"] = span.traceId
      fields["span_id"] = span.spanId
    }
    if (cause.reasons.length > 0) fields["cause"] = String(cause)
    const parts = Array.isArray(message) ? message : [message]
    writer.line(levelOf(logLevel), parts.map((p) => (typeof p === "string" ? p : String(p))).join(" "), fields)
  })

/** The Log port, Effect's logger and its minimum level, all from one writer. */
export const layer = (options: LogOptions) => {
  const writer = makeLog(options)
  return Layer.mergeAll(
    Layer.succeed(Log, writer),
    Logger.layer([effectLogger(writer)]),
    Layer.succeed(References.MinimumLogLevel, EFFECT_LEVEL[options.level]),
  )
}

export const layerFrom = (writer: LogWriter, level: Level) =>
  Layer.mergeAll(
    Layer.succeed(Log, writer),
    Logger.layer([effectLogger(writer)]),
    Layer.succeed(References.MinimumLogLevel, EFFECT_LEVEL[level]),
  )
