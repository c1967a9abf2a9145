// Static server for the demo UI (testbench/web) plus, under /vendor/, Dexie's browser build and our own client package
// built from client/ (so the demo runs the client exactly as it is in the tree), and /config.json telling the page
// where Walera and the product API listen.
import { execFile } from "node:child_process"
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises"
import { createServer, type RequestListener, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { extname, join, normalize, resolve, sep } from "node:path"
import { promisify } from "node:util"

export interface WebServerOptions {
  readonly port?: number
  readonly waleraUrl: string
  readonly apiUrl: string
  /** Build client/dist before serving (default true). */
  readonly buildClient?: boolean
}

export interface WebServer {
  readonly port: number
  readonly stop: () => Promise<void>
}

const REPO_ROOT = resolve(import.meta.dirname, "..", "..")
const WEB_ROOT = join(REPO_ROOT, "testbench", "web")
const CLIENT_ROOT = join(REPO_ROOT, "client")

/** URL prefix → directory. The whole client/ is mounted so its source maps find client/src in the browser. */
const MOUNTS: ReadonlyArray<readonly [string, string]> = [
  ["/vendor/dexie/", join(REPO_ROOT, "node_modules", "dexie", "dist")],
  ["/vendor/walera-client/", CLIENT_ROOT],
  ["/", WEB_ROOT],
]

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms))

/** The newest modification time among `paths` (files, or the files directly in a directory), 0 if none. */
const mtimes = async (paths: ReadonlyArray<string>): Promise<Array<number>> => {
  const out: Array<number> = []
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (info === undefined) continue
    if (!info.isDirectory()) out.push(info.mtimeMs)
    else for (const name of await readdir(path)) out.push(...(await mtimes([join(path, name)])))
  }
  return out
}

/**
 * Builds client/dist with the repository's tsc (what `npm pack` in client/ does first; about a second), unless it is
 * newer than client/src. A lock directory serialises concurrent callers (two browser test files start together), so
 * no page loads a dist/ that another build is replacing.
 */
export const buildClient = async (): Promise<void> => {
  const lock = join(CLIENT_ROOT, ".build-lock")
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      await mkdir(lock)
      break
    } catch {
      const held = await stat(lock).catch(() => undefined)
      if (held !== undefined && Date.now() - held.mtimeMs > 60_000) await rm(lock, { recursive: true, force: true })
      if (Date.now() > deadline) throw new Error(`building client/: ${lock} is still held after 60 s`)
      await sleep(50)
    }
  }
  try {
    const sources = await mtimes([join(CLIENT_ROOT, "src"), join(CLIENT_ROOT, "tsconfig.json")])
    const built = await mtimes([join(CLIENT_ROOT, "dist")])
    if (built.length > 0 && Math.min(...built) >= Math.max(...sources)) return
    await rm(join(CLIENT_ROOT, "dist"), { recursive: true, force: true })
    const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc")
    await promisify(execFile)(process.execPath, [tsc, "-p", join(CLIENT_ROOT, "tsconfig.json")]).catch(
      (error: { stdout?: string; message: string }) => {
        throw new Error(`building client/ failed: ${error.stdout || error.message}`)
      },
    )
  } finally {
    await rm(lock, { recursive: true, force: true })
  }
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
}

const isFile = async (path: string) => (await stat(path).catch(() => undefined))?.isFile() === true

/** Maps a URL path to a file inside one of the mounts, refusing anything that escapes it. */
const resolveFile = async (pathname: string): Promise<string | undefined> => {
  for (const [prefix, dir] of MOUNTS) {
    if (!pathname.startsWith(prefix)) continue
    const rest = pathname.slice(prefix.length) || "index.html"
    const candidate = normalize(join(dir, rest))
    if (candidate !== dir && !candidate.startsWith(dir + sep)) return undefined
    if (await isFile(candidate)) return candidate
    if (extname(candidate) === "" && (await isFile(`${candidate}.js`))) return `${candidate}.js`
    return undefined
  }
  return undefined
}

export const startWebServer = async (options: WebServerOptions): Promise<WebServer> => {
  if (options.buildClient ?? true) await buildClient()
  const config = JSON.stringify({ waleraUrl: options.waleraUrl, apiUrl: options.apiUrl })
  const handler: RequestListener = (req, res) => {
    res.setHeader("X-Content-Type-Options", "nosniff")
    res.setHeader("Cache-Control", "no-store")
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end()
      return
    }
    let pathname: string
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://ui.invalid").pathname)
    } catch {
      res.writeHead(400).end()
      return
    }
    if (pathname === "/config.json") {
      res.writeHead(200, { "Content-Type": "application/json" }).end(config)
      return
    }
    if (pathname === "/favicon.ico") {
      res.writeHead(204).end()
      return
    }
    resolveFile(pathname)
      .then(async (file) => {
        if (file === undefined) {
          res.writeHead(404, { "Content-Type": "text/plain" }).end("not found")
          return
        }
        const body = await readFile(file)
        res.writeHead(200, { "Content-Type": MIME[extname(file)] ?? "application/octet-stream" })
        res.end(req.method === "HEAD" ? undefined : body)
      })
      .catch(() => res.writeHead(500).end())
  }

  // "localhost" may resolve to ::1 or 127.0.0.1 in the browser: listen on both loopback addresses.
  const listen = (server: Server, port: number, host: string) =>
    new Promise<void>((resolveListen, reject) => {
      server.once("error", reject)
      server.listen(port, host, () => resolveListen())
    })
  const v4 = createServer(handler)
  await listen(v4, options.port ?? 8081, "127.0.0.1")
  const port = (v4.address() as AddressInfo).port
  const servers = [v4]
  const v6 = createServer(handler)
  await listen(v6, port, "::1").then(
    () => servers.push(v6),
    () => {}, // no IPv6 loopback on this machine: 127.0.0.1 is enough
  )
  let stopped: Promise<void> | undefined
  return {
    port,
    stop: () => {
      stopped ??= Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolveClose) => {
              server.close(() => resolveClose())
              server.closeAllConnections()
            }),
        ),
      ).then(() => {})
      return stopped
    },
  }
}
