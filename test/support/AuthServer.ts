// A real HTTP auth backend for tests: answers POST /auth/sessions from a table of tokens,
// records every call (headers included) and can be told to fail, hang, answer late or revoke.
import http from "node:http"

export interface GrantBody {
  readonly user_id?: unknown
  readonly tables?: unknown
  readonly roots?: unknown
  readonly ttl_seconds?: unknown
  readonly initial_data?: unknown
  readonly [key: string]: unknown
}

export interface AuthCall {
  readonly channel: string
  readonly headers: http.IncomingHttpHeaders
}

/**
 * What to answer for a token: a grant (200), or a status with a body and optional headers
 * (a 429 with `retry-after`), never (hang), or any of those after a delay (a healthy but slow backend).
 */
export type Answer =
  | { readonly status: 200; readonly body: GrantBody | string; readonly headers?: Record<string, string> }
  | { readonly status: number; readonly body: string; readonly headers?: Record<string, string> }
  | { readonly hang: true }
  | { readonly delayMs: number; readonly answer: Answer }

/** What the backend saw in flight, so a test can tell Walera's own queue from the backend's. */
export interface AuthLoad {
  inFlight: number
  maxInFlight: number
  /** Requests whose connection Walera closed before the answer was written. */
  abandoned: number
}

export interface AuthServer {
  readonly url: string
  readonly calls: AuthCall[]
  /** token → answer; the key "*" answers any token (and cookie/header-only opens). */
  readonly answers: Map<string, Answer | ((call: AuthCall) => Answer)>
  readonly load: AuthLoad
  readonly close: () => Promise<void>
}

/** port: where to listen (default any free port), e.g. the port a running Walera was configured with. */
export const startAuthServer = async (options: { readonly port?: number } = {}): Promise<AuthServer> => {
  const calls: AuthCall[] = []
  const answers = new Map<string, Answer | ((call: AuthCall) => Answer)>()
  const hanging = new Set<http.ServerResponse>()
  const timers = new Set<NodeJS.Timeout>()
  const load: AuthLoad = { inFlight: 0, maxInFlight: 0, abandoned: 0 }
  const respond = (res: http.ServerResponse, answer: Answer): void => {
    if (res.destroyed) return
    if ("hang" in answer) {
      hanging.add(res)
      return
    }
    if ("delayMs" in answer) {
      const timer = setTimeout(() => {
        timers.delete(timer)
        respond(res, answer.answer)
      }, answer.delayMs)
      timers.add(timer)
      res.once("close", () => {
        clearTimeout(timer)
        timers.delete(timer)
      })
      return
    }
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
    res.end(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body))
  }
  const server = http.createServer((req, res) => {
    load.inFlight++
    load.maxInFlight = Math.max(load.maxInFlight, load.inFlight)
    res.once("close", () => {
      load.inFlight--
      if (!res.writableFinished) load.abandoned++
    })
    let body = ""
    req.on("data", (c) => {
      body += c
    })
    req.on("end", () => {
      let channel = ""
      try {
        channel = String(JSON.parse(body).channel)
      } catch {}
      const call: AuthCall = { channel, headers: req.headers }
      if (channel !== "_walera_probe") calls.push(call)
      const auth = req.headers.authorization ?? ""
      const token = auth.replace(/^Bearer\s+/i, "")
      const entry = answers.get(token) ?? answers.get("*")
      const answer: Answer =
        entry === undefined
          ? { status: 401, body: '{"error":"unknown token"}' }
          : typeof entry === "function"
            ? entry(call)
            : entry
      respond(res, answer)
    })
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", 1024, resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    answers,
    load,
    close: async () => {
      for (const t of timers) clearTimeout(t)
      for (const r of hanging) r.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
