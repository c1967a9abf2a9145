// Walera processes for the soak: two slots ("A", "B") on one database, each run as an operator
// would (`node src/main.ts` with WALERA_* variables). A slot's successive processes are
// incarnations (A1, A2, …) so the oracle knows which process served which stream.
import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { freePort } from "../../test/support/EmbeddedPg.ts"
import type { Incarnation } from "./types.ts"

const repoRoot = resolve(import.meta.dirname, "../..")

export interface LiveWalera {
  readonly inc: Incarnation
  readonly child: ChildProcess
  readonly url: string
  readonly port: number
  readonly exited: Promise<number | null>
  /** The last ~1 MiB of log lines. */
  readonly logs: () => string
  /** Log lines by message, for the report. */
  readonly messages: Map<string, number>
  /** A full garbage collection through the inspector; false when it could not be done. */
  readonly collectGarbage: () => Promise<boolean>
}

const collect = (url: string | null): Promise<boolean> =>
  new Promise((resolve) => {
    if (url === null) return resolve(false)
    const ws = new WebSocket(url)
    const timer = setTimeout(() => {
      ws.close()
      resolve(false)
    }, 10_000)
    ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }))
    ws.onmessage = (e) => {
      if (!String(e.data).includes('"id":1')) return
      clearTimeout(timer)
      ws.close()
      resolve(true)
    }
    ws.onerror = () => {
      clearTimeout(timer)
      resolve(false)
    }
  })

export const startWalera = async (options: {
  readonly id: string
  readonly slotPrefix: string
  readonly env: Readonly<Record<string, string>>
  readonly now: () => number
}): Promise<LiveWalera> => {
  const port = await freePort()
  const env = {
    WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
    WALERA_AUTH_ALLOW_PLAINTEXT: "true",
    WALERA_LOG_LEVEL: "warn",
    WALERA_WAL_SLOT_NAME_PREFIX: options.slotPrefix,
    WALERA_WAL_BOOTSTRAP: "verify",
    ...options.env,
  }
  // The inspector lets the soak force a full collection before it reads the idle heap (gc() is not exposed).
  const child = spawn(process.execPath, ["--inspect=127.0.0.1:0", "src/main.ts"], {
    cwd: repoRoot,
    env: { PATH: process.env["PATH"] ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  const inc: Incarnation = {
    id: options.id,
    slotPrefix: options.slotPrefix,
    startedAt: options.now(),
    readyAt: null,
    stopSignalAt: null,
    exitedAt: null,
    exitCode: null,
    env: Object.fromEntries(Object.entries(options.env).filter(([k]) => !k.includes("URL"))),
    multiRootScrapes: [],
  }
  let out = ""
  let inspector: string | null = null
  const messages = new Map<string, number>()
  let partial = ""
  const keep = (c: Buffer) => {
    const text = c.toString()
    out += text
    if (out.length > 2_000_000) out = out.slice(-1_000_000)
    inspector ??= /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(text)?.[0] ?? null
    partial += text
    const lines = partial.split("\n")
    partial = lines.pop() ?? ""
    for (const line of lines) {
      let key = line.slice(0, 80)
      try {
        const j = JSON.parse(line) as { level?: string; msg?: string; message?: string }
        key = `${j.level ?? "?"}: ${j.msg ?? j.message ?? "?"}`
      } catch {}
      messages.set(key, (messages.get(key) ?? 0) + 1)
    }
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const exited = new Promise<number | null>((r) =>
    child.once("exit", (code) => {
      inc.exitedAt ??= options.now()
      inc.exitCode = code
      r(code)
    }),
  )
  const url = `http://127.0.0.1:${port}`
  const deadline = options.now() + 90_000
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`Walera ${options.id} exited during startup (${child.exitCode}):\n${out}`)
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.status === 200)
      .catch(() => false)
    if (ok) break
    if (options.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`Walera ${options.id} not streaming after 90 s:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  inc.readyAt = options.now()
  return { inc, child, url, port, exited, logs: () => out, messages, collectGarbage: () => collect(inspector) }
}

/** SIGTERM, then wait for the exit (SIGKILL after `killAfterMs`). */
export const stopWalera = async (w: LiveWalera, now: () => number, killAfterMs = 20_000): Promise<number | null> => {
  if (w.child.exitCode !== null) return w.child.exitCode
  w.inc.stopSignalAt = now()
  w.child.kill("SIGTERM")
  const timer = setTimeout(() => w.child.kill("SIGKILL"), killAfterMs)
  const code = await w.exited
  clearTimeout(timer)
  return code
}
