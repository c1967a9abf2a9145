// The Walera an attack runs against: one this tool starts (`node src/main.ts` with WALERA_* env,
// a fresh process per attack so caps and RSS start clean) or one already running, given by URL.
// Either way it is read from the outside only: HTTP, /metrics and, when local, /proc.
import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { freePort } from "../../test/support/EmbeddedPg.ts"
import { rssBytes } from "../bench/proc.ts"

const repoRoot = resolve(import.meta.dirname, "../..")

/** Every child process the attack tool started, so Ctrl-C and errors leave none behind. */
export const children = new Set<ChildProcess>()
export const track = <C extends ChildProcess>(c: C): C => {
  children.add(c)
  c.once("exit", () => children.delete(c))
  return c
}
const KEEP_OUTPUT = 256 * 1024

export interface Target {
  readonly url: string
  readonly host: string
  readonly port: number
  /** Where /livez, /readyz and /metrics answer (the admin address when Walera serves one). */
  readonly adminUrl: string
  readonly alive: () => boolean
  readonly exitCode: () => number | null | undefined
  /** Log lines written so far (undefined for a Walera this tool did not start). */
  readonly logLines: () => number | undefined
  readonly outputTail: () => string
  readonly rss: () => Promise<number | undefined>
  readonly stop: () => Promise<void>
}

export const get = async (url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> => {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    return { status: res.status, body: await res.text() }
  } catch {
    return { status: 0, body: "" }
  }
}

/** Sum of every series of a metric (NaN when absent). */
export const metricTotal = (body: string, name: string): number => {
  let sum = 0
  let found = false
  for (const line of body.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1))
      found = true
    }
  }
  return found ? sum : Number.NaN
}

/** Every series of a metric, label set → value. */
export const metricSeries = (body: string, name: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const line of body.split("\n")) {
    if (line.startsWith(`${name}{`))
      out.set(line.slice(name.length, line.lastIndexOf(" ")), Number(line.slice(line.lastIndexOf(" ") + 1)))
    else if (line.startsWith(`${name} `)) out.set("", Number(line.slice(name.length + 1)))
  }
  return out
}

const rssFromMetrics = async (adminUrl: string): Promise<number | undefined> => {
  const m = await get(`${adminUrl}/metrics`)
  const v = metricTotal(m.body, "process_resident_memory_bytes")
  return Number.isNaN(v) ? undefined : v
}

export const attachTarget = async (url: string, adminUrl: string | undefined): Promise<Target> => {
  const u = new URL(url)
  const admin = adminUrl ?? url
  if ((await get(`${admin}/metrics`)).status !== 200) throw new Error(`no /metrics at ${admin}`)
  return {
    url: u.origin,
    host: u.hostname,
    port: Number(u.port || 80),
    adminUrl: admin,
    alive: () => true,
    exitCode: () => undefined,
    logLines: () => undefined,
    outputTail: () => "",
    rss: () => rssFromMetrics(admin),
    stop: async () => {},
  }
}

export interface OwnWaleraOptions {
  readonly databaseUrl: string
  readonly authUrl: string
  readonly env: Readonly<Record<string, string>>
  readonly nodeOptions?: string
}

/** Starts Walera with a public and an admin address; a Walera without admin support is probed on the public one. */
export const startOwnWalera = async (options: OwnWaleraOptions): Promise<Target> => {
  const port = await freePort()
  const adminPort = await freePort()
  const child: ChildProcess = track(
    spawn(process.execPath, ["src/main.ts"], {
      cwd: repoRoot,
      env: {
        PATH: process.env["PATH"] ?? "",
        WALERA_DATABASE_URL: options.databaseUrl,
        WALERA_AUTH_BACKEND_URL: options.authUrl,
        WALERA_AUTH_ALLOW_PLAINTEXT: "true",
        WALERA_HTTP_ADDR: `127.0.0.1:${port}`,
        WALERA_HTTP_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        WALERA_LOG_LEVEL: "info",
        ...(options.nodeOptions === undefined ? {} : { NODE_OPTIONS: options.nodeOptions }),
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  )
  let tail = ""
  let lines = 0
  const take = (c: Buffer) => {
    const text = c.toString("utf8")
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) lines++
    tail = (tail + text).slice(-KEEP_OUTPUT)
  }
  child.stdout?.on("data", take)
  child.stderr?.on("data", take)
  let code: number | null | undefined
  const exited = new Promise<void>((r) =>
    child.once("exit", (c, signal) => {
      code = c ?? (signal === null ? null : 128)
      r()
    }),
  )
  const url = `http://127.0.0.1:${port}`
  const admin = `http://127.0.0.1:${adminPort}`
  let adminUrl: string | undefined
  const deadline = performance.now() + 30_000
  while (adminUrl === undefined) {
    if (code !== undefined) throw new Error(`Walera exited during startup (code ${code}):\n${tail}`)
    if (performance.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`Walera did not stream within 30 s:\n${tail}`)
    }
    if ((await get(`${admin}/healthz`, 1000)).status === 200) adminUrl = admin
    else if ((await get(`${url}/healthz`, 1000)).status === 200) adminUrl = url
    else await new Promise((r) => setTimeout(r, 200))
  }
  const pid = child.pid
  return {
    url,
    host: "127.0.0.1",
    port,
    adminUrl,
    alive: () => code === undefined,
    exitCode: () => code,
    logLines: () => lines,
    outputTail: () => tail,
    rss: async () => (pid === undefined || code !== undefined ? undefined : rssBytes(pid)),
    stop: async () => {
      if (code === undefined) child.kill("SIGKILL")
      await exited
    },
  }
}
