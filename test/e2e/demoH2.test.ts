// End-to-end test of `npm run demo -- --h2`: Walera serves TLS, so Chromium speaks HTTP/2 to it. The browser first
// refuses the self-signed certificate and the board says what to do; a person then accepts it the way the demo tells
// them to, and the board holds one stream per list — ten, more than the six connections HTTP/1.1 allows (see the
// board test in demo.test.ts) — all on one HTTP/2 connection, each card following its own list.
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import type { Browser, BrowserContext, CDPSession, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Demo, startDemo } from "../../testbench/demo/demo.ts"
import { freePort } from "../support/EmbeddedPg.ts"
import { metricValue } from "../support/Scrape.ts"
import { launchChromium } from "./chromium.ts"

const REPO_ROOT = resolve(import.meta.dirname, "..", "..")
const SCREENSHOT = join(REPO_ROOT, "test-results", "demo-board-h2.png")

const demoLog: Array<string> = []
let demo: Demo | undefined
let browser: Browser | undefined
/** One profile for every page, as a person's browser: the certificate exception and the connections are shared. */
let context: BrowserContext | undefined
/** The connection the board's streams share. */
let boardConnection: number | undefined

interface StreamResponse {
  readonly url: string
  readonly status: number
  readonly protocol: string | undefined
  readonly connectionId: number
}

/** Records, through the DevTools protocol, the protocol and connection of every stream response the page gets. */
const recordStreams = async (
  page: Page,
): Promise<{ readonly seen: Array<StreamResponse>; readonly cdp: CDPSession }> => {
  const seen: Array<StreamResponse> = []
  const cdp = await page.context().newCDPSession(page)
  cdp.on("Network.responseReceived", (event) => {
    if (event.type !== "Fetch" || !event.response.url.includes("/sse/v1/")) return
    const { url, status, protocol, connectionId } = event.response
    seen.push({ url, status, protocol, connectionId })
  })
  await cdp.send("Network.enable")
  return { seen, cdp }
}

const newPage = async (name: string): Promise<Page> => {
  const page = await context!.newPage()
  page.on("pageerror", (error) => demoLog.push(`[${name} page error] ${error.message}`))
  return page
}

const activeStreams = async () =>
  metricValue((await demo!.getFromWalera("/metrics")).body, 'walera_subscribers_active{type="exact"}')

describe("npm run demo -- --h2 in a browser", () => {
  beforeAll(async () => {
    const [uiPort, waleraPort, backendPort] = [await freePort(), await freePort(), await freePort()]
    demo = await startDemo({
      uiPort,
      waleraPort,
      backendPort,
      h2: true,
      writer: false,
      flakyRate: 0,
      waleraLog: "warn",
      log: (line) => demoLog.push(line),
      ...(process.env["DEMO_WALERA_ENTRY"] ? { waleraEntry: process.env["DEMO_WALERA_ENTRY"] } : {}),
    })
    browser = await launchChromium()
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  })

  afterAll(async () => {
    await browser?.close().catch(() => {})
    await demo?.stop()
    if (demoLog.length > 0) console.log(demoLog.slice(-40).join("\n"))
  })

  it("board: after the certificate is accepted, every list streams over one HTTP/2 connection and follows its changes", async () => {
    const lists = (await demo!.query("SELECT id FROM todo_lists ORDER BY id")).rows.map((row) => Number(row.id))
    expect(lists.length).toBeGreaterThan(6)
    const page = await newPage("board")
    await page.goto(demo!.urls.board)

    // Not accepted yet: every stream fails like a network error, and the page says what to do about it.
    const hint = page.getByTestId("hint")
    await expect.poll(() => hint.getAttribute("data-kind"), { timeout: 15_000 }).toBe("certificate")
    expect(await hint.isVisible()).toBe(true)
    expect(await hint.textContent()).toContain(`${demo!.urls.walera}/livez`)
    expect(await page.getByTestId("board-summary").getAttribute("data-live")).toBe("0")

    // What the demo tells a person: open /livez, "Advanced", "Proceed". Chromium keeps the exception for the host.
    const accept = await newPage("certificate")
    await accept.goto(`${demo!.urls.walera}/livez`).catch(() => {}) // the navigation ends on the warning page
    await accept.locator("#details-button").click()
    await accept.locator("#proceed-link").click()
    await expect.poll(() => accept.locator("body").textContent()).toContain('"status":"ok"')
    await accept.close()

    const { seen } = await recordStreams(page)
    await page.reload()
    await expect
      .poll(() => page.getByTestId("board-summary").getAttribute("data-live"), { timeout: 20_000 })
      .toBe(String(lists.length))
    expect(await hint.isVisible()).toBe(false)

    // Every stream is open at once, over HTTP/2, on a single connection; Walera holds one subscriber per list.
    const opened = seen.filter((response) => response.status === 200)
    expect(new Set(opened.map((response) => new URL(response.url).pathname))).toEqual(
      new Set(lists.map((id) => `/sse/v1/todo_lists/${id}`)),
    )
    expect(new Set(opened.map((response) => response.protocol))).toEqual(new Set(["h2"]))
    expect(new Set(opened.map((response) => response.connectionId)).size).toBe(1)
    boardConnection = opened[0]!.connectionId
    await expect.poll(activeStreams).toBe(lists.length)

    // One change per list through the product API (one transaction each): every card shows its own, and only it.
    for (const id of lists) {
      const response = await fetch(`${demo!.urls.backend}/api/lists/${id}/tasks`, {
        method: "POST",
        headers: { Authorization: "Bearer alice-token", "Content-Type": "application/json" },
        body: JSON.stringify({ title: `added over h2 to list ${id}` }),
      })
      expect(response.status).toBe(200)
    }
    for (const id of lists) {
      const card = page.getByTestId(`list-card-${id}`)
      await expect.poll(() => card.getByText(`added over h2 to list ${id}`).count(), { timeout: 10_000 }).toBe(1)
      expect(await card.getByText(/^added over h2 to list /).count()).toBe(1)
      expect(await card.getAttribute("data-updates")).toBe("1")
      expect(await card.getByTestId("card-footer").textContent()).toMatch(/^tx \d+ · 1 event · commit→render \d+ ms$/)
    }
    // A write that bypasses the API reaches its card the same way.
    const { rows } = await demo!.query(
      `SELECT id FROM tasks WHERE todo_list_id = ${lists.at(-1)} AND status <> 'COMPLETED' ORDER BY id LIMIT 1`,
    )
    const taskId = Number(rows[0].id)
    await demo!.query(`UPDATE tasks SET status = 'COMPLETED' WHERE id = ${taskId}`)
    await expect
      .poll(() => page.getByTestId(`card-task-${taskId}`).getAttribute("data-status"), { timeout: 10_000 })
      .toBe("COMPLETED")

    mkdirSync(join(REPO_ROOT, "test-results"), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    // The board stays open: the next test's stream joins its connection.
  })

  it("the one-list page works over HTTP/2 too, on the board's connection", async () => {
    const board = context!.pages().find((page) => page.url().includes("/board.html"))
    expect(board).toBeDefined()
    const page = await newPage("list")
    const { seen } = await recordStreams(page)
    await page.goto(`${demo!.urls.ui}/?user=bob&list=3`)
    await expect.poll(() => page.getByTestId("conn-state").getAttribute("data-state"), { timeout: 20_000 }).toBe("live")
    const { rows } = await demo!.query("SELECT id FROM tasks WHERE todo_list_id = 3 AND status = 'PENDING' LIMIT 1")
    const id = Number(rows[0].id)
    await page.getByTestId(`task-${id}`).getByTestId("action-start").click()
    await expect
      .poll(
        async () => ({
          status: await page.getByTestId(`task-${id}`).getAttribute("data-status"),
          optimistic: await page.getByTestId(`task-${id}`).getAttribute("data-optimistic"),
        }),
        { timeout: 10_000 },
      )
      .toEqual({ status: "IN_PROGRESS", optimistic: "false" })
    // The board's ten streams and this one: eleven streams, and still one connection.
    const stream = seen.find((response) => response.status === 200)
    expect(stream?.protocol).toBe("h2")
    expect(stream?.connectionId).toBe(boardConnection)
    await expect.poll(activeStreams).toBe(11)
    // The board, still open in the same browser, saw bob's change on its own stream.
    await expect
      .poll(() => board!.getByTestId(`card-task-${id}`).getAttribute("data-status"), { timeout: 10_000 })
      .toBe("IN_PROGRESS")
    await page.close()
  })
})
