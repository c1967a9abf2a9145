// Port: structured log lines for code that runs outside Effect (the fan-out's hot path, socket callbacks).
// Effect code logs with Effect.log*; both reach the same JSON writer (adapters/telemetry/Log.ts). Callers pass
// identifiers only — never row values, tokens, cookies or initial_data.
import { Context } from "effect"

export type Level = "debug" | "info" | "warn" | "error"

export type Fields = Readonly<Record<string, string | number | boolean | null | undefined>>

export interface LogShape {
  readonly enabled: (level: Level) => boolean
  readonly log: (level: Level, msg: string, fields?: Fields) => void
  readonly debug: (msg: string, fields?: Fields) => void
  readonly info: (msg: string, fields?: Fields) => void
  readonly warn: (msg: string, fields?: Fields) => void
  readonly error: (msg: string, fields?: Fields) => void
}

export class Log extends Context.Service<Log, LogShape>()("walera/Log") {}
