// A real HTTP auth backend for tests: answers POST /auth/sessions from a table of tokens,
// records every call (headers included) and can be told to fail, hang or revoke.
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

/** What to answer for a token: a grant (200), or a status with a body. */
export type Answer =
  | { readonly status: 200; readonly body: GrantBody | string; readonly headers?: Record<string, string> }
  | { readonly status: number; readonly body: string; readonly headers?: Record<string, string> }
  | { readonly hang: true }

export interface AuthServer {
  readonly url: string
  readonly calls: AuthCall[]
  /** token → answer; the key "*" answers any token (and cookie/header-only opens). */
  readonly answers: Map<string, Answer | ((call: AuthCall) => Answer)>
  readonly close: () => Promise<void>
}

export const startAuthServer = async (): Promise<AuthServer> => {
  const calls: AuthCall[] = []
  const answers = new Map<string, Answer | ((call: AuthCall) => Answer)>()
  const hanging = new Set<http.ServerResponse>()
  const server = http.createServer((req, res) => {
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
      if ("hang" in answer) {
        hanging.add(res)
        return
      }
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
      res.end(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    answers,
    close: async () => {
      for (const r of hanging) r.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
