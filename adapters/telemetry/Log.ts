// Structured logs: one JSON object per line on stdout (or a readable line with --dev-log).
// Callers pass identifiers only (stream id, channel, user id, request id); row values,
// tokens, cookies and initial_data never reach a log call.
import { Context, Effect, Layer } from "effect"

export type Level = "debug" | "info" | "warn" | "error"
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Fields = Readonly<Record<string, string | number | boolean | null | undefined>>

export interface LogShape {
  readonly enabled: (level: Level) => boolean
  readonly log: (level: Level, msg: string, fields?: Fields) => void
  readonly debug: (msg: string, fields?: Fields) => void
  readonly info: (msg: string, fields?: Fields) => void
  readonly warn: (msg: string, fields?: Fields) => void
  readonly error: (msg: string, fields?: Fields) => void
}

export interface LogOptions {
  readonly level: Level
  readonly pretty: boolean
  readonly write?: (line: string) => void
}

export const makeLog = (options: LogOptions): LogShape => {
  const min = rank[options.level]
  const write = options.write ?? ((line: string) => process.stdout.write(line))
  const log = (level: Level, msg: string, fields?: Fields) => {
    if (rank[level] < min) return
    const time = new Date().toISOString()
    if (options.pretty) {
      let extra = ""
      if (fields !== undefined) for (const [k, v] of Object.entries(fields)) if (v !== undefined) extra += ` ${k}=${v}`
      write(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${extra}\n`)
    } else {
      write(`${JSON.stringify({ time, level, msg, ...fields })}\n`)
    }
  }
  return {
    enabled: (level) => rank[level] >= min,
    log,
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  }
}

export class Log extends Context.Service<Log, LogShape>()("walera/Log") {
  static readonly layer = (options: LogOptions) =>
    Layer.effect(
      Log,
      Effect.sync(() => makeLog(options)),
    )
}
