// An HTTP/1.1 connection that carries an event stream will never carry another request: Walera answers one request
// per connection (docs/security.md, "Pipelining"). Node keeps the connection's HTTP parser — about 10 KiB of native
// memory — until the socket closes, which for an SSE subscriber is the largest part of what an idle stream costs.
// Once the stream has started, the parser is handed back and any further byte from the client closes the
// connection. freeParser is node:http's own function for this (node:_http_common); test/adapters/ParserRelease.test.ts
// fails if a Node upgrade changes it, and the stream works either way.
import { createRequire } from "node:module"
import type http from "node:http"
import type net from "node:net"

type FreeParser = (parser: unknown, req: unknown, socket: unknown) => void

const freeParser: FreeParser | undefined = (() => {
  try {
    const common = createRequire(import.meta.url)("_http_common") as { freeParser?: FreeParser }
    return typeof common.freeParser === "function" ? common.freeParser : undefined
  } catch {
    return undefined
  }
})()

/**
 * Takes the socket of a started event stream away from node:http's parser: no more requests are read from it (a
 * byte from the client ends it), and the parser's memory is released. Returns whether the parser was released.
 */
export const releaseHttpParser = (req: http.IncomingMessage, socket: net.Socket): boolean => {
  const parser = (socket as unknown as { parser?: unknown }).parser
  if (freeParser === undefined || parser === undefined || parser === null) return false
  for (const listener of socket.listeners("data")) socket.off("data", listener as (...args: unknown[]) => void)
  for (const listener of socket.listeners("end")) socket.off("end", listener as (...args: unknown[]) => void)
  try {
    freeParser(parser, req, socket)
  } catch {
    return false
  }
  // Whatever the client sends now is not a request Walera will answer; its half-close or reset ends the stream.
  socket.on("data", () => socket.destroy())
  socket.on("end", () => socket.destroy())
  return true
}
