// Runs Walera the way an operator does — `node src/main.ts` with WALERA_* variables — and
// keeps its log lines so tests can assert on them (and on what they never contain).
import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { freePort } from "./EmbeddedPg.ts"
import { waitUntil } from "./SseClient.ts"

export interface WaleraProcess {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  readonly logs: () => string
  readonly logLines: () => Array<Record<string, unknown>>
  readonly get: (path: string) => Promise<{ status: number; body: string; headers: Headers }>
  /** SIGTERM and wait for exit; resolves with the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
  readonly exited: Promise<number | null>
}

const root = resolve(import.meta.dirname, "../..")

/**
 * Starts Walera on a free port: one from this test worker's own block (test/support/EmbeddedPg.ts), which no parallel
 * test file can take before Walera listens.
 */
export const startWalera = async (
  env: Record<string, string>,
  options: { readonly waitReady?: boolean; readonly args?: ReadonlyArray<string> } = {},
): Promise<WaleraProcess> => {
  const port = await freePort()
  const child = spawn(process.execPath, ["src/main.ts", ...(options.args ?? [])], {
    cwd: root,
    env: {
      PATH: process.env["PATH"] ?? "",
      WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
      WALERA_AUTH_ALLOW_PLAINTEXT: "true",
      WALERA_LOG_LEVEL: "debug",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  })
  let out = ""
  child.stdout?.on("data", (c) => {
    out += c
  })
  child.stderr?.on("data", (c) => {
    out += c
  })
  const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)))
  let exitCode: number | null | undefined
  void exited.then((c) => {
    exitCode = c
  })
  const url = `http://127.0.0.1:${port}`
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`)
    return { status: res.status, body: await res.text(), headers: res.headers }
  }
  const w: WaleraProcess = {
    url,
    port,
    child,
    logs: () => out,
    logLines: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    get,
    stop: async (signal = "SIGTERM") => {
      if (exitCode === undefined) child.kill(signal)
      return exited
    },
    exited,
  }
  if (options.waitReady !== false) {
    try {
      await waitUntil(
        async () => {
          if (exitCode !== undefined) throw new Error(`walera exited with ${exitCode}:\n${out}`)
          return (await get("/healthz").catch(() => ({ status: 0 }))).status === 200
        },
        30_000,
        "walera to stream",
      )
    } catch (e) {
      child.kill("SIGKILL")
      throw new Error(`${(e as Error).message}\n--- walera output ---\n${out}`)
    }
  }
  return w
}
