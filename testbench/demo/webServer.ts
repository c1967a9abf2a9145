// Static server for the demo UI (testbench/web) plus the browser builds of Dexie and fetch-event-source from
// node_modules under /vendor/, and /config.json telling the page where Walera and the product API listen.
import { readFile, stat } from "node:fs/promises"
import { createServer, type RequestListener, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { extname, join, normalize, resolve, sep } from "node:path"

export interface WebServerOptions {
  readonly port?: number
  readonly waleraUrl: string
  readonly apiUrl: string
}

export interface WebServer {
  readonly port: number
  readonly stop: () => Promise<void>
}

const REPO_ROOT = resolve(import.meta.dirname, "..", "..")
const WEB_ROOT = join(REPO_ROOT, "testbench", "web")

/** URL prefix → directory. The fetch-event-source ESM build uses extension-less relative imports ("./fetch"). */
const MOUNTS: ReadonlyArray<readonly [string, string]> = [
  ["/vendor/dexie/", join(REPO_ROOT, "node_modules", "dexie", "dist")],
  ["/vendor/fetch-event-source/", join(REPO_ROOT, "node_modules", "@microsoft", "fetch-event-source", "lib", "esm")],
  ["/", WEB_ROOT],
]

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
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
