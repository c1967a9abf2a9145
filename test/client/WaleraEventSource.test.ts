// Pins WaleraEventSource to the EventSource behaviour code written for a browser expects (states, events, retry:,
// Last-Event-ID, fatal refusals), plus what it adds: headers, against a real scripted node:http server.
import { afterEach, describe, expect, it } from "vitest"
import { WaleraEventSource } from "../../client/src/index.ts"
import { frame, openSse, type Script, sleep, startServer as start, waitFor } from "./sseServer.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const startServer = async (script: Script) => {
  const server = await start(script)
  cleanups.push(server.close)
  return server
}

/** Opens a WaleraEventSource and logs open / error (with readyState) / message / named events. */
const open = (url: string, init?: ConstructorParameters<typeof WaleraEventSource>[1], names: string[] = []) => {
  const es = new WaleraEventSource(url, init)
  cleanups.push(() => es.close())
  const log: string[] = []
  es.onopen = () => log.push(`open:${es.readyState}`)
  es.onerror = () => log.push(`error:${es.readyState}`)
  es.onmessage = (ev) => log.push(`message:${ev.data}:${ev.lastEventId}`)
  for (const name of names) {
    es.addEventListener(name, (ev) => {
      const m = ev as MessageEvent
      log.push(`${name}:${m.data}:${m.lastEventId}`)
    })
  }
  return { es, log }
}

describe("WaleraEventSource", () => {
  it("has EventSource's constants, url and withCredentials, and starts CONNECTING", async () => {
    const server = await startServer((_req, res) => openSse(res))
    const { es, log } = open(server.url, { withCredentials: true })
    expect([WaleraEventSource.CONNECTING, WaleraEventSource.OPEN, WaleraEventSource.CLOSED]).toEqual([0, 1, 2])
    expect([es.CONNECTING, es.OPEN, es.CLOSED]).toEqual([0, 1, 2])
    expect(es.url).toBe(server.url)
    expect(es.withCredentials).toBe(true)
    expect(es.readyState).toBe(WaleraEventSource.CONNECTING)
    await waitFor("open", () => log.length === 1)
    expect(log).toEqual(["open:1"])
  })

  it("sends headers, and dispatches unnamed events to onmessage and named ones to their listeners", async () => {
    const server = await startServer((_req, res) => {
      openSse(res)
      res.write(`data: hello\n\n${frame("tx", { tx_id: 5 }, 5)}:\n\n${frame("initial_data", { a: 1 })}`)
    })
    const { es, log } = open(server.url, { headers: { Authorization: "Bearer abc" } }, ["tx", "initial_data"])
    let origin = ""
    es.addEventListener("tx", (ev) => {
      origin = (ev as MessageEvent).origin
    })
    await waitFor("three events", () => log.length === 4)
    expect(log).toEqual(["open:1", "message:hello:", 'tx:{"tx_id":5}:5', 'initial_data:{"a":1}:5'])
    expect(origin).toBe(new URL(server.url).origin)
    expect(server.requests[0]!.headers.authorization).toBe("Bearer abc")
    expect(server.requests[0]!.headers.accept).toBe("text/event-stream")
    expect(es.lastEventId).toBe("5")
  })

  it("after a dropped stream fires error with CONNECTING, waits the server's retry:, and sends Last-Event-ID", async () => {
    let token = 0
    const server = await startServer((req, res) => {
      openSse(res, "retry: 50\n\n")
      if (req.n === 1) res.end(frame("tx", { tx_id: 7 }, 7))
      else res.write(frame("tx", { tx_id: 8 }, 8))
    })
    const { log } = open(server.url, { headers: () => ({ Authorization: `Bearer ${++token}` }) }, ["tx"])
    await waitFor("second stream", () => log.includes('tx:{"tx_id":8}:8'))
    expect(log).toEqual(["open:1", 'tx:{"tx_id":7}:7', "error:0", "open:1", 'tx:{"tx_id":8}:8'])
    expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "7"])
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(["Bearer 1", "Bearer 2"])
    // Measured by the server (slack for timer rounding): it waited the 50 ms the server asked for.
    expect(server.requests[1]!.at - server.requests[0]!.at).toBeGreaterThanOrEqual(45)
  })

  it("keeps the last event id across streams: a reconnected stream without ids reports the previous one", async () => {
    const server = await startServer((req, res) => {
      openSse(res, "retry: 10\n\n")
      if (req.n === 1) res.end(frame("tx", {}, 41))
      else res.write("data: no id here\n\n")
    })
    const { log } = open(server.url)
    await waitFor("message", () => log.some((l) => l.startsWith("message:")))
    expect(log.at(-1)).toBe("message:no id here:41")
  })

  it.each([
    [401, "text/plain"],
    [503, "text/plain"],
    [200, "text/html"],
  ])("fails for good on a %i %s answer: CLOSED, one error, no retry", async (status, type) => {
    const server = await startServer((_req, res) => {
      res.writeHead(status, { "Content-Type": type, "Retry-After": "0" })
      res.end("no")
    })
    const { es, log } = open(server.url, { reconnectMs: 10 })
    await waitFor("error", () => log.length === 1)
    await sleep(100)
    expect(log).toEqual(["error:2"])
    expect(es.readyState).toBe(WaleraEventSource.CLOSED)
    expect(server.requests).toHaveLength(1)
  })

  it("retries a connection that never opened, and close() from onerror stops it", async () => {
    const server = await startServer((req, res) => {
      if (req.n <= 2) return void res.socket?.destroy()
      openSse(res)
    })
    const { es, log } = open(server.url, { reconnectMs: 5 })
    await waitFor("open", () => log.includes("open:1"))
    expect(log).toEqual(["error:0", "error:0", "open:1"])

    const once = await startServer((_req, res) => res.socket?.destroy())
    const stopping = open(once.url, { reconnectMs: 5 })
    stopping.es.onerror = () => {
      stopping.log.push("error")
      stopping.es.close()
    }
    await waitFor("error", () => stopping.log.length === 1)
    await sleep(100)
    expect(once.requests).toHaveLength(1)
    expect(stopping.es.readyState).toBe(WaleraEventSource.CLOSED)
    es.close()
  })

  it("close() ends an open stream at once and nothing follows", async () => {
    const server = await startServer((_req, res) => openSse(res, "retry: 5\n\n"))
    const { es, log } = open(server.url)
    await waitFor("open", () => log.length === 1)
    es.close()
    expect(es.readyState).toBe(WaleraEventSource.CLOSED)
    await waitFor("server sees the close", () => server.requests[0]!.closed)
    await sleep(100)
    expect(log).toEqual(["open:1"])
    expect(server.requests).toHaveLength(1)
  })
})
