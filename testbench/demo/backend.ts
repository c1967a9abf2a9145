// Demo auth backend + product API for `npm run demo`: answers Walera's POST /auth/sessions with per-user whitelists
// and initial_data, and serves the todo REST API the browser UI writes through (with injected failures to show rollback).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"

/** Column whitelists per table, in the shape Walera expects in a grant. */
type Tables = Record<string, ReadonlyArray<string>>

interface DemoUser {
  readonly userId: string
  readonly tables: Tables
  readonly roots: ReadonlyArray<string>
}

const TASK_COLUMNS = ["id", "todo_list_id", "title", "status", "updated_at"]

/** Two users so two windows show the whitelist at work: bob sees neither task notes nor subtasks. */
export const DEMO_USERS: Readonly<Record<string, DemoUser>> = {
  "alice-token": {
    userId: "alice",
    tables: {
      todo_lists: ["id", "title", "updated_at"],
      tasks: [...TASK_COLUMNS, "notes"],
      subtasks: ["id", "task_id", "title", "status", "updated_at"],
    },
    roots: ["todo_lists"],
  },
  "bob-token": {
    userId: "bob",
    tables: {
      todo_lists: ["id", "title", "updated_at"],
      tasks: TASK_COLUMNS,
    },
    roots: ["todo_lists"],
  },
}

export interface DemoBackendOptions {
  readonly databaseUrl: string
  /** Port to listen on (0 = ephemeral). Default 8082. */
  readonly port?: number
  readonly host?: string
  /** Share of `start` calls answered 503 before touching the database. Default 0.2. */
  readonly flakyRate?: number
  readonly log?: (line: string) => void
}

export interface DemoBackend {
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

class HttpError extends Error {
  readonly status: number
  readonly body: unknown
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`)
    this.status = status
    this.body = body
  }
}

const MAX_BODY_BYTES = 64 * 1024

const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
  const chunks: Array<Buffer> = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, { error: "body_too_large" })
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"))
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed))
      return parsed as Record<string, unknown>
  } catch {
    // fall through
  }
  throw new HttpError(400, { error: "invalid_json" })
}

const bearerOf = (req: IncomingMessage): string | undefined => {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")
  return match?.[1]
}

const userOf = (req: IncomingMessage): DemoUser => {
  const token = bearerOf(req)
  const user = token === undefined ? undefined : DEMO_USERS[token]
  if (user === undefined) throw new HttpError(401, { error: "unauthorized" })
  return user
}

const pick = (row: Record<string, unknown>, columns: ReadonlyArray<string>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const column of columns) if (column in row) out[column] = row[column]
  return out
}

/** Timestamps as RFC 3339 UTC strings and int8 as strings, like Walera's value mapping. */
const wire = (row: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(row)) out[key] = value instanceof Date ? value.toISOString() : value
  return out
}

const positiveId = (raw: string): string => {
  if (!/^[1-9][0-9]{0,18}$/.test(raw)) throw new HttpError(404, { error: "not_found" })
  return raw
}

export const startDemoBackend = async (options: DemoBackendOptions): Promise<DemoBackend> => {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 5 })
  pool.on("error", () => {}) // an idle client died (e.g. PostgreSQL stopping): the pool replaces it
  const flakyRate = options.flakyRate ?? 0.2

  /** The list subtree as the user may see it, or undefined when the list does not exist. */
  const listSubtree = async (listId: string, user: DemoUser): Promise<unknown> => {
    const client = await pool.connect()
    try {
      // One snapshot for the three reads so the subtree is consistent.
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
      const lists = await client.query("SELECT id, title, updated_at FROM todo_lists WHERE id = $1", [listId])
      const list = lists.rows[0] as Record<string, unknown> | undefined
      if (list === undefined) {
        await client.query("COMMIT")
        return undefined
      }
      const tasks = await client.query(
        "SELECT id, todo_list_id, title, status, notes, updated_at FROM tasks WHERE todo_list_id = $1 ORDER BY id",
        [listId],
      )
      const subtasks = await client.query(
        `SELECT s.id, s.task_id, s.title, s.status, s.updated_at FROM subtasks s
         JOIN tasks t ON t.id = s.task_id WHERE t.todo_list_id = $1 ORDER BY s.id`,
        [listId],
      )
      await client.query("COMMIT")
      const taskColumns = user.tables["tasks"] ?? []
      const subtaskColumns = user.tables["subtasks"]
      return {
        ...wire(pick(list, user.tables["todo_lists"] ?? [])),
        tasks:
          taskColumns.length === 0
            ? []
            : tasks.rows.map((task: Record<string, unknown>) => ({
                ...wire(pick(task, taskColumns)),
                ...(subtaskColumns === undefined
                  ? {}
                  : {
                      subtasks: subtasks.rows
                        .filter((sub: Record<string, unknown>) => sub["task_id"] === task["id"])
                        .map((sub: Record<string, unknown>) => wire(pick(sub, subtaskColumns))),
                    }),
              })),
      }
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  const authSessions = async (req: IncomingMessage): Promise<unknown> => {
    const user = userOf(req)
    const body = await readJson(req)
    const grant = { user_id: user.userId, tables: user.tables, roots: user.roots, ttl_seconds: 60 }
    const channel = body["channel"]
    if (channel === undefined) return grant // a probe without a channel: the grant alone
    if (typeof channel !== "string" || !channel.includes(":")) throw new HttpError(400, { error: "invalid_channel" })
    const separator = channel.indexOf(":")
    const table = channel.slice(0, separator)
    const pk = channel.slice(separator + 1)
    if (!user.roots.includes(table)) throw new HttpError(403, { error: "not_a_root" })
    if (pk === "all") return grant
    if (!/^[1-9][0-9]{0,18}$/.test(pk)) throw new HttpError(404, { error: "list_not_found" })
    const subtree = await listSubtree(pk, user)
    if (subtree === undefined) throw new HttpError(404, { error: "list_not_found" })
    return { ...grant, initial_data: subtree }
  }

  /** Runs one status transition; 404 when the row is missing, 409 when it is not in an allowed source state. */
  const transition = async (table: "tasks" | "subtasks", id: string, to: string, from: ReadonlyArray<string>) => {
    const result = await pool.query(`UPDATE ${table} SET status = $2 WHERE id = $1 AND status = ANY($3::text[])`, [
      id,
      to,
      from,
    ])
    if (result.rowCount === 1) return { ok: true }
    const exists = await pool.query(`SELECT status FROM ${table} WHERE id = $1`, [id])
    const row = exists.rows[0] as { status: string } | undefined
    if (row === undefined) throw new HttpError(404, { error: "not_found" })
    throw new HttpError(409, { error: "invalid_transition", status: row.status, wanted: to })
  }

  const completeAll = async (listId: string) => {
    const client = await pool.connect()
    try {
      // One transaction, one root: Walera delivers it as one event to the list's subscribers.
      await client.query("BEGIN")
      const list = await client.query("SELECT id FROM todo_lists WHERE id = $1 FOR UPDATE", [listId])
      if (list.rowCount !== 1) throw new HttpError(404, { error: "list_not_found" })
      const subs = await client.query(
        `UPDATE subtasks SET status = 'COMPLETED'
         WHERE status <> 'COMPLETED' AND task_id IN (SELECT id FROM tasks WHERE todo_list_id = $1)`,
        [listId],
      )
      const tasks = await client.query(
        "UPDATE tasks SET status = 'COMPLETED' WHERE todo_list_id = $1 AND status <> 'COMPLETED'",
        [listId],
      )
      await client.query("COMMIT")
      return { ok: true, changed: (subs.rowCount ?? 0) + (tasks.rowCount ?? 0) }
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  const addTask = async (listId: string, req: IncomingMessage) => {
    const body = await readJson(req)
    const title = typeof body["title"] === "string" ? body["title"].trim() : ""
    if (title.length === 0 || title.length > 200) throw new HttpError(400, { error: "title_required" })
    const list = await pool.query("SELECT id FROM todo_lists WHERE id = $1", [listId])
    if (list.rowCount !== 1) throw new HttpError(404, { error: "list_not_found" })
    const inserted = await pool.query("INSERT INTO tasks (todo_list_id, title) VALUES ($1, $2) RETURNING id", [
      listId,
      title,
    ])
    return { ok: true, id: (inserted.rows[0] as { id: string }).id }
  }

  /** Product API. Responses say only "accepted": the UI must learn the new state from the SSE stream. */
  const api = async (req: IncomingMessage, path: string, url: URL): Promise<unknown> => {
    userOf(req)
    if (req.method === "GET" && path === "/api/lists") {
      const lists = await pool.query("SELECT id, title FROM todo_lists ORDER BY id")
      return { lists: lists.rows }
    }
    if (req.method !== "POST") throw new HttpError(405, { error: "method_not_allowed" })
    const route = /^\/api\/(tasks|subtasks|lists)\/([^/]+)\/([a-z-]+)$/.exec(path)
    if (route === null) throw new HttpError(404, { error: "not_found" })
    const [, kind, rawId, action] = route as unknown as [string, string, string, string]
    const id = positiveId(rawId)
    const noFlaky = url.searchParams.get("flaky") === "0" || req.headers["x-demo-flaky"] === "0"
    switch (`${kind}/${action}`) {
      case "tasks/start":
        if (!noFlaky && Math.random() < flakyRate) throw new HttpError(503, { error: "flaky, try again" })
        return transition("tasks", id, "IN_PROGRESS", ["PENDING"])
      case "tasks/complete":
        return transition("tasks", id, "COMPLETED", ["PENDING", "IN_PROGRESS"])
      case "tasks/reopen":
        return transition("tasks", id, "PENDING", ["IN_PROGRESS", "COMPLETED"])
      case "subtasks/toggle": {
        const result = await pool.query(
          "UPDATE subtasks SET status = CASE WHEN status = 'COMPLETED' THEN 'PENDING' ELSE 'COMPLETED' END WHERE id = $1",
          [id],
        )
        if (result.rowCount !== 1) throw new HttpError(404, { error: "not_found" })
        return { ok: true }
      }
      case "lists/complete-all":
        return completeAll(id)
      case "lists/tasks":
        return addTask(id, req)
      default:
        throw new HttpError(404, { error: "not_found" })
    }
  }

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) })
    res.end(text)
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://backend.invalid")
    const path = url.pathname
    // The UI is served from another origin (the static server); the API is public demo data.
    res.setHeader("Access-Control-Allow-Origin", "*")
    res.setHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
    res.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Demo-Flaky")
    res.setHeader("Access-Control-Max-Age", "600")
    if (req.method === "OPTIONS") {
      res.writeHead(204).end()
      return
    }
    const handle = async (): Promise<unknown> => {
      if (path === "/healthz" || path === "/") return { status: "ok" }
      if (path === "/auth/sessions") {
        if (req.method !== "POST") throw new HttpError(405, { error: "method_not_allowed" })
        return authSessions(req)
      }
      if (path.startsWith("/api/")) return api(req, path, url)
      throw new HttpError(404, { error: "not_found" })
    }
    handle().then(
      (body) => send(res, 200, body),
      (error: unknown) => {
        if (error instanceof HttpError) return send(res, error.status, error.body)
        options.log?.(`[backend] ${req.method} ${path} failed: ${error instanceof Error ? error.message : error}`)
        send(res, 500, { error: "internal" })
      },
    )
  })

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 8082, options.host ?? "127.0.0.1", () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  let stopped: Promise<void> | undefined
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () => {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
        await pool.end().catch(() => {})
      })()
      return stopped
    },
  }
}
