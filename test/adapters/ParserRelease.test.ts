// The HTTP/1.1 parser hand-back relies on node:http's own freeParser: this fails if a Node upgrade changes it, before
// idle subscribers silently go back to costing 10 KiB more each. It also pins what the connection does afterwards.
import http from "node:http"
import net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { releaseHttpParser } from "../../adapters/http/ParserRelease.ts"

let server: http.Server | undefined
afterEach(() => {
  server?.closeAllConnections()
  server?.close()
})

/** A server whose one response is an event stream taken over like Walera's; resolves with the client's socket. */
const streamOnce = (onStarted: (released: boolean, socket: net.Socket) => void) =>
  new Promise<{ client: net.Socket; received: () => string }>((resolve) => {
    server = http.createServer((req, res) => {
      res.useChunkedEncodingByDefault = false
      res.shouldKeepAlive = false
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.write("retry: 15000\n\n")
      const released = releaseHttpParser(req, req.socket)
      onStarted(released, req.socket)
      req.socket.write(":\n\n")
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server!.address() as net.AddressInfo
      const client = net.connect(address.port, "127.0.0.1")
      let text = ""
      client.on("data", (c) => {
        text += c.toString()
      })
      client.write("GET /sse/v1/orders/1 HTTP/1.1\r\nHost: x\r\n\r\n")
      resolve({ client, received: () => text })
    })
  })

describe("releaseHttpParser", () => {
  it("hands node:http's parser back once the stream has started, and the stream keeps flowing", async () => {
    let released = false
    let serverSocket: net.Socket | undefined
    const { client, received } = await streamOnce((r, s) => {
      released = r
      serverSocket = s
    })
    await new Promise((r) => setTimeout(r, 200))
    expect(released).toBe(true)
    expect((serverSocket as unknown as { parser: unknown }).parser).toBeNull()
    expect(received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nretry: 15000\n\n:\n\n$/)
    serverSocket!.write("event: tx\ndata: {}\n\n")
    await new Promise((r) => setTimeout(r, 100))
    expect(received().endsWith("event: tx\ndata: {}\n\n")).toBe(true)
    client.destroy()
  })

  it("ends the connection when the client sends anything more, or half-closes", async () => {
    for (const hostile of [(c: net.Socket) => c.write("GET /again HTTP/1.1\r\n\r\n"), (c: net.Socket) => c.end()]) {
      let serverSocket: net.Socket | undefined
      const { client } = await streamOnce((_, s) => {
        serverSocket = s
      })
      await new Promise((r) => setTimeout(r, 100))
      const closed = new Promise<void>((r) => serverSocket!.once("close", () => r()))
      hostile(client)
      await closed
      expect(serverSocket!.destroyed).toBe(true)
      client.destroy()
      server?.close()
    }
  })
})
