// The soak's auth backend: real HTTP, users whose grants differ and change over time (narrowing,
// revocation, a table dropped from the grant), and fault modes (down, slow, garbage, 5xx). It logs
// every call with the grant it answered, so the oracle knows which whitelist applied when.
import http from "node:http"
import type { AuthCall, Grant } from "./types.ts"

const ORDERS_ALL = ["id", "owner_id", "status", "total_cents", "note", "paid", "version", "updated_at"]
const ITEMS_ALL = ["id", "order_id", "sku", "qty", "price_cents", "updated_at"]

interface Policy {
  readonly grant: Grant | "deny"
  readonly ttl: number
  readonly initialData?: unknown
}

/** Users and their grant at `t` seconds into the run. Nobody is ever granted orders.secret. */
export const USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "hana"] as const
export type User = (typeof USERS)[number]

export const policyAt = (user: User, t: number): Policy => {
  switch (user) {
    case "alice":
      return {
        grant: {
          userId: "alice",
          tables: {
            orders: ORDERS_ALL,
            line_items: ITEMS_ALL,
            attachments: ["id", "order_id", "name", "body"],
            blobs: ["id", "order_id", "body"],
          },
          roots: ["orders", "line_items", "attachments"],
        },
        ttl: 30,
      }
    case "bob":
      return {
        grant: {
          userId: "bob",
          tables: { orders: ["status", "total_cents", "updated_at"], line_items: ["qty"] },
          roots: ["orders"],
        },
        ttl: 20,
      }
    case "carol": {
      // Narrowed for 20 s of every 40 s: note, total_cents, paid and price_cents disappear.
      const narrow = Math.floor(t / 20) % 2 === 1
      return {
        grant: {
          userId: "carol",
          tables: narrow
            ? { orders: ["status", "updated_at"], line_items: ["qty"] }
            : { orders: ["status", "total_cents", "note", "paid", "updated_at"], line_items: ["qty", "price_cents"] },
          roots: ["orders"],
        },
        ttl: 4,
      }
    }
    case "dave":
      // Revoked for 8 s of every 30 s.
      return t % 30 >= 22
        ? { grant: "deny", ttl: 3 }
        : {
            grant: { userId: "dave", tables: { orders: ["status", "version"], line_items: [] }, roots: ["orders"] },
            ttl: 3,
          }
    case "erin":
      return {
        grant: { userId: "erin", tables: { orders: ["status"], line_items: ITEMS_ALL }, roots: null },
        ttl: 0,
        initialData: { user: "erin", note: "snapshot" },
      }
    case "frank":
      // For 6 s of every 45 s the grant loses the orders table: a refresh then revokes the stream.
      return {
        grant: {
          userId: "frank",
          tables:
            t % 45 >= 39
              ? { attachments: ["id", "name"] }
              : { orders: ["note", "updated_at"], attachments: ["id", "name"] },
          roots: null,
        },
        ttl: 5,
      }
    case "hana":
      return {
        grant: { userId: "hana", tables: { orders: ORDERS_ALL, line_items: ITEMS_ALL }, roots: ["orders"] },
        ttl: 60,
      }
  }
}

export type AuthMode = "normal" | "down" | "slow" | "sluggish" | "garbage" | "5xx"

const GARBAGE = [
  "<html>502 Bad Gateway</html>",
  '{"tables":{}}',
  '{"user_id":"x","tables":[]}',
  '{"user_id":"alice","tab',
]

export interface AuthBackend {
  readonly url: string
  readonly calls: AuthCall[]
  /** Calls per whole second of epoch time: opens (X-Request-ID from a soak client), refreshes, probes. */
  readonly perSecond: Map<number, { open: number; refresh: number; probe: number }>
  readonly mode: () => AuthMode
  readonly setMode: (mode: AuthMode) => Promise<void>
  readonly close: () => Promise<void>
}

export const startAuthBackend = async (options: {
  readonly t0: number
  readonly now: () => number
  readonly random: () => number
  readonly slowMs: number
}): Promise<AuthBackend> => {
  const calls: AuthCall[] = []
  const perSecond = new Map<number, { open: number; refresh: number; probe: number }>()
  let mode: AuthMode = "normal"
  const { now, random } = options
  const count = (kind: "open" | "refresh" | "probe") => {
    const s = Math.floor(now() / 1000)
    let c = perSecond.get(s)
    if (c === undefined) perSecond.set(s, (c = { open: 0, refresh: 0, probe: 0 }))
    c[kind]++
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const tRecv = now()
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (c: string) => {
      body += c
    })
    req.on("end", () => {
      let channel = ""
      try {
        channel = String(JSON.parse(body).channel)
      } catch {}
      const requestId = String(req.headers["x-request-id"] ?? "")
      const token = String(req.headers.authorization ?? "").replace(/^Bearer\s+/i, "")
      if (token === "") {
        count("probe")
        if (mode === "5xx" || mode === "garbage") {
          res.writeHead(503).end()
          return
        }
        res.writeHead(200, { "content-type": "application/json" }).end('{"user_id":"probe","tables":{}}')
        return
      }
      count(requestId.startsWith("soak-") ? "open" : "refresh")
      const answer = () => {
        if (res.destroyed || res.writableEnded) {
          calls.push({ tRecv, tSent: now(), token, requestId, channel, status: 0, outcome: "error" })
          return
        }
        if (mode === "5xx") {
          const status = [500, 502, 503][Math.floor(random() * 3)]!
          calls.push({ tRecv, tSent: now(), token, requestId, channel, status, outcome: "error" })
          res.writeHead(status, { "content-type": "application/json" }).end('{"error":"backend down"}')
          return
        }
        if (mode === "garbage") {
          calls.push({ tRecv, tSent: now(), token, requestId, channel, status: 200, outcome: "garbage" })
          res.writeHead(200, { "content-type": "application/json" }).end(GARBAGE[Math.floor(random() * GARBAGE.length)])
          return
        }
        const parts = token.split(".")
        const user = parts[1] as User | undefined
        if (parts[0] !== "soak" || user === undefined || !USERS.includes(user)) {
          calls.push({ tRecv, tSent: now(), token, requestId, channel, status: 401, outcome: "deny" })
          res.writeHead(401, { "content-type": "application/json" }).end('{"error":"unknown token"}')
          return
        }
        const p = policyAt(user, (tRecv - options.t0) / 1000)
        if (p.grant === "deny") {
          calls.push({ tRecv, tSent: now(), token, requestId, channel, status: 403, outcome: "deny" })
          res.writeHead(403, { "content-type": "application/json" }).end('{"error":"revoked"}')
          return
        }
        const g = p.grant
        const json = JSON.stringify({
          user_id: g.userId,
          tables: g.tables,
          ...(g.roots === null ? {} : { roots: g.roots }),
          ttl_seconds: p.ttl,
          ...(p.initialData === undefined ? {} : { initial_data: p.initialData }),
        })
        calls.push({ tRecv, tSent: now(), token, requestId, channel, status: 200, outcome: "grant", grant: g })
        res.writeHead(200, { "content-type": "application/json" }).end(json)
      }
      const delay = mode === "slow" ? options.slowMs : mode === "sluggish" ? 200 + random() * 1200 : 0
      if (delay > 0) setTimeout(answer, delay)
      else answer()
    })
  }

  let server = http.createServer({ keepAliveTimeout: 60_000 }, handler)
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    perSecond,
    mode: () => mode,
    setMode: async (next) => {
      if (next === mode) return
      if (next === "down") await stop()
      if (mode === "down") {
        server = http.createServer({ keepAliveTimeout: 60_000 }, handler)
        await new Promise<void>((r) => server.listen(port, "127.0.0.1", r))
      }
      mode = next
    },
    close: stop,
  }
}
