// The stack for the hostile-client tests: a fresh database, a real auth backend and a real
// Walera process, plus the check every attack ends with: the service is whole again (caps at
// their idle value, breaker closed, probes 200, a legitimate open receives a committed transaction).
import net from "node:net"
import { expect, inject } from "vitest"
import { type AuthServer, startAuthServer } from "./AuthServer.ts"
import { createTestDb, type TestDb } from "./Db.ts"
import { freePort } from "./EmbeddedPg.ts"
import { metricValue } from "./Scrape.ts"
import { openSse, type SseClient, waitUntil } from "./SseClient.ts"
import { startWalera, type WaleraProcess } from "./Walera.ts"

export const HOSTILE_SCHEMA = `
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  status text NOT NULL DEFAULT 'new',
  secret_note text
);
CREATE TABLE audit (id bigint PRIMARY KEY, what text);
INSERT INTO orders (id) VALUES (1), (2), (3);
`

export const LEGIT = {
  user_id: "alice",
  tables: { orders: ["id", "status"] },
  roots: ["orders"],
  ttl_seconds: 60,
}
export const LEGIT_TOKEN = "alice-token"
export const legit = { authorization: `Bearer ${LEGIT_TOKEN}` }

export interface Stack {
  readonly db: TestDb
  readonly auth: AuthServer
  readonly walera: WaleraProcess
  /** The public address (stream endpoints). */
  readonly url: string
  readonly port: number
  /** Where /livez, /healthz, /readyz and /metrics answer: the admin address when one is set. */
  readonly adminUrl: string
  readonly probe: (path: string) => Promise<{ status: number; body: string; headers: Headers }>
  readonly metrics: () => Promise<string>
  /** Sum of every series of a metric, whatever its labels (NaN when the metric does not exist). */
  readonly total: (name: string) => Promise<number>
  readonly close: () => Promise<void>
}

export interface StackOptions {
  readonly schema?: string
  readonly env?: Record<string, string>
  /** Serve the probes and /metrics on a separate admin address (http.admin_addr). */
  readonly admin?: boolean
  readonly args?: ReadonlyArray<string>
  /** Replaces the database URL Walera connects with (e.g. a less privileged role). */
  readonly databaseUrl?: (db: TestDb) => Promise<string>
}

export const sumSeries = (body: string, name: string): number => {
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

export const startStack = async (options: StackOptions = {}): Promise<Stack> => {
  const db = await createTestDb(inject("adminUrl"), options.schema ?? HOSTILE_SCHEMA)
  const auth = await startAuthServer()
  auth.answers.set(LEGIT_TOKEN, { status: 200, body: LEGIT })
  const adminPort = options.admin === true ? await freePort() : undefined
  let walera: WaleraProcess
  try {
    walera = await startWalera(
      {
        WALERA_DATABASE_URL: options.databaseUrl === undefined ? db.url : await options.databaseUrl(db),
        WALERA_AUTH_BACKEND_URL: auth.url,
        WALERA_WAL_PUBLICATION_NAME: "walera_pub",
        ...(adminPort === undefined ? {} : { WALERA_HTTP_ADMIN_ADDR: `127.0.0.1:${adminPort}` }),
        ...options.env,
      },
      { waitReady: adminPort === undefined, args: options.args ?? [] },
    )
  } catch (e) {
    await auth.close()
    await db.drop()
    throw e
  }
  const adminUrl = adminPort === undefined ? walera.url : `http://127.0.0.1:${adminPort}`
  const probe = async (path: string) => {
    const res = await fetch(`${adminUrl}${path}`)
    return { status: res.status, body: await res.text(), headers: res.headers }
  }
  if (adminPort !== undefined) {
    try {
      await waitUntil(
        async () => (await probe("/healthz").catch(() => ({ status: 0 }))).status === 200,
        30_000,
        `walera to stream, seen on the admin address ${adminUrl}`,
      )
    } catch (e) {
      await walera.stop("SIGKILL")
      await auth.close()
      await db.drop()
      throw new Error(`${(e as Error).message}\n--- walera output ---\n${walera.logs()}`)
    }
  }
  const metrics = async () => (await probe("/metrics")).body
  return {
    db,
    auth,
    walera,
    url: walera.url,
    port: walera.port,
    adminUrl,
    probe,
    metrics,
    total: async (name) => sumSeries(await metrics(), name),
    close: async () => {
      await walera.stop("SIGKILL").catch(() => {})
      await auth.close()
      await db.drop()
    },
  }
}

let marker = 0

/**
 * The service is whole: no stream left over from the attack, exactly `cap` legitimate streams
 * open at once (so a single leaked slot shows) and the next one is refused, each receives a
 * committed transaction, the breaker is closed, and /readyz and /livez answer 200.
 * Pass `cap: undefined` when limits.global_concurrent is too large to fill; then one stream is opened.
 */
export const expectWhole = async (stack: Stack, cap: number | undefined): Promise<void> => {
  await waitUntil(
    async () => (await stack.total("walera_subscribers_active")) === 0,
    10_000,
    "walera_subscribers_active back to 0 after the attack",
  )
  const streams: SseClient[] = []
  try {
    const opened = await Promise.all(
      Array.from({ length: cap ?? 1 }, () => openSse(stack.url, "/sse/v1/orders/1", legit)),
    )
    streams.push(...opened)
    expect(
      opened.map((s) => s.status),
      "every legitimate open up to limits.global_concurrent succeeds",
    ).toEqual(opened.map(() => 200))
    if (cap !== undefined) {
      const extra = await fetch(`${stack.url}/sse/v1/orders/1`, { headers: legit })
      expect(extra.status, "the open past limits.global_concurrent is refused").toBe(503)
      expect(await extra.text()).toContain("too_many_streams")
    }
    const text = `whole-${++marker}`
    await stack.db.sql("UPDATE orders SET status = $1 WHERE id = 1", [text])
    for (const s of opened) await s.waitFor((c) => c.raw().includes(text), 10_000, "a committed transaction")
  } finally {
    for (const s of streams) s.close()
  }
  await waitUntil(
    async () => (await stack.total("walera_subscribers_active")) === 0,
    10_000,
    "walera_subscribers_active back to 0 after the legitimate streams closed",
  )
  const metrics = await stack.metrics()
  expect(metricValue(metrics, "walera_auth_circuit_breaker_state"), "auth breaker closed").toBe(0)
  expect((await stack.probe("/readyz")).status, "/readyz").toBe(200)
  expect((await stack.probe("/livez")).status, "/livez").toBe(200)
}

export interface RawConnection {
  readonly socket: net.Socket
  readonly received: () => string
  /** Resolves when the server closed (or reset) the connection. */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
}

/** A plain TCP connection to Walera, to send what an HTTP client library never would. */
export const rawConnect = (port: number, first?: string): Promise<RawConnection> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    let received = ""
    let closed = false
    const closedP = new Promise<void>((r) =>
      socket.once("close", () => {
        closed = true
        r()
      }),
    )
    socket.on("data", (c: Buffer) => {
      received += c.toString("latin1")
    })
    socket.on("error", () => {})
    socket.once("connect", () => {
      if (first !== undefined) socket.write(first)
      resolve({ socket, received: () => received, closed: closedP, isClosed: () => closed })
    })
    socket.once("error", reject)
  })

export const streamRequest = (path: string, token: string, extra = ""): string =>
  `GET ${path} HTTP/1.1\r\nHost: walera\r\nAuthorization: Bearer ${token}\r\n${extra}\r\n`

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
