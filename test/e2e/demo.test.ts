// End-to-end test of `npm run demo`: the whole product on ephemeral ports, driven through headless Chromium —
// proves the UI renders from the SSE mirror (not from API responses), that bob's whitelist hides notes/subtasks, and
// that over HTTP/1.1 the board's streams beyond the browser's six connections wait (test/e2e/demoH2.test.ts: not
// over HTTP/2).
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Demo, startDemo } from "../../testbench/demo/demo.ts"
import { freePort } from "../support/EmbeddedPg.ts"
import { metricValue } from "../support/Scrape.ts"
import { launchChromium } from "./chromium.ts"

const REPO_ROOT = resolve(import.meta.dirname, "..", "..")
const SCREENSHOT = join(REPO_ROOT, "test-results", "demo.png")

const demoLog: Array<string> = []
let demo: Demo | undefined
let browser: Browser | undefined

const task = (page: Page, id: number) => page.getByTestId(`task-${id}`)

const openAs = async (user: "alice" | "bob", list = 1): Promise<Page> => {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
  page.on("pageerror", (error) => demoLog.push(`[${user} page error] ${error.message}`))
  page.on("console", (message) => {
    if (message.type() === "error") demoLog.push(`[${user} console] ${message.text()}`)
  })
  await page.goto(`${demo!.urls.ui}/?user=${user}&list=${list}`)
  await expect.poll(() => page.getByTestId("conn-state").getAttribute("data-state"), { timeout: 20_000 }).toBe("live")
  return page
}

/** Status as rendered, and whether it is only the optimistic overlay (not yet confirmed by the mirror). */
const renderedStatus = async (page: Page, id: number) => ({
  status: await task(page, id).getAttribute("data-status"),
  optimistic: await task(page, id).getAttribute("data-optimistic"),
})

describe("npm run demo in a browser", () => {
  beforeAll(async () => {
    const [uiPort, waleraPort, backendPort] = [await freePort(), await freePort(), await freePort()]
    demo = await startDemo({
      uiPort,
      waleraPort,
      backendPort,
      writer: false,
      flakyRate: 0,
      waleraLog: "warn",
      log: (line) => demoLog.push(line),
      // Lets the same test drive another Walera build (path relative to the repo root or absolute).
      ...(process.env["DEMO_WALERA_ENTRY"] ? { waleraEntry: process.env["DEMO_WALERA_ENTRY"] } : {}),
    })
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close().catch(() => {})
    await demo?.stop()
    if (demoLog.length > 0) console.log(demoLog.slice(-40).join("\n"))
  })

  it("alice: renders initial_data, then every change arrives through the SSE stream", async () => {
    const page = await openAs("alice")
    const { rows } = await demo!.query("SELECT id, title, status FROM tasks WHERE todo_list_id = 1 ORDER BY id")
    await expect.poll(() => page.locator('[data-testid^="task-"][data-status]').count()).toBe(rows.length)
    for (const row of rows as Array<{ id: string; title: string; status: string }>) {
      expect(await task(page, Number(row.id)).getByTestId("task-title").textContent()).toBe(row.title)
      expect(await task(page, Number(row.id)).getAttribute("data-status")).toBe(row.status)
    }
    // alice's whitelist includes notes and subtasks.
    expect(await page.getByTestId("task-notes").count()).toBeGreaterThan(0)
    expect(await page.locator('[data-testid^="subtask-"][data-status]').count()).toBeGreaterThan(0)

    // A click: the API answers only {"ok":true}; the row settles on IN_PROGRESS once the change comes back via SSE.
    const pending = (rows as Array<{ id: string; status: string }>).find((row) => row.status === "PENDING")!
    const id = Number(pending.id)
    await task(page, id).getByTestId("action-start").click()
    await expect
      .poll(() => renderedStatus(page, id), { timeout: 10_000 })
      .toEqual({ status: "IN_PROGRESS", optimistic: "false" })
    await task(page, id).getByTestId("action-complete").click()
    await expect
      .poll(() => renderedStatus(page, id), { timeout: 10_000 })
      .toEqual({ status: "COMPLETED", optimistic: "false" })
    expect((await demo!.query(`SELECT status FROM tasks WHERE id = ${id}`)).rows[0]).toEqual({ status: "COMPLETED" })

    // Writes that bypass the UI entirely can only reach the page through Walera → SSE → Dexie → liveQuery.
    const other = Number((rows as Array<{ id: string }>).find((row) => Number(row.id) !== id)!.id)
    await demo!.query(`UPDATE tasks SET title = 'changed by SQL', status = 'COMPLETED' WHERE id = ${other}`)
    await expect
      .poll(() => task(page, other).getByTestId("task-title").textContent(), { timeout: 10_000 })
      .toBe("changed by SQL")
    expect(await task(page, other).getAttribute("data-status")).toBe("COMPLETED")

    // One subtask write = one transaction = one event carrying subtasks + tasks + todo_lists.
    const { rows: subs } = await demo!.query(
      "SELECT s.id FROM subtasks s JOIN tasks t ON t.id = s.task_id WHERE t.todo_list_id = 1 ORDER BY s.id LIMIT 1",
    )
    const subtaskId = Number((subs[0] as { id: string }).id)
    await demo!.query(`UPDATE subtasks SET title = 'subtask changed by SQL' WHERE id = ${subtaskId}`)
    await expect
      .poll(() => page.getByTestId(`subtask-${subtaskId}`).getByTestId("subtask-title").textContent(), {
        timeout: 10_000,
      })
      .toBe("subtask changed by SQL")
    await expect
      .poll(() => page.getByTestId("event-log").locator("li").first().textContent())
      .toMatch(/3 changes \((?=.*subtasks)(?=.*tasks)(?=.*todo_lists).*\)/)

    // Inserts arrive too.
    await demo!.query("INSERT INTO tasks (todo_list_id, title) VALUES (1, 'inserted by SQL')")
    await expect.poll(() => page.getByTestId("tasks").getByText("inserted by SQL").count(), { timeout: 10_000 }).toBe(1)

    const latency = await page.getByTestId("latency").textContent()
    expect(latency).toMatch(/^\d+ ms$/)

    // Drop the stream: the client reconnects at once with the last tx id. The demo runs Walera with
    // router.resume_window, so it replays what the page missed ("resumed from tx N", no initial_data, no refetch),
    // and the change committed meanwhile arrives.
    expect(await page.getByTestId("sync-state").getAttribute("data-kind")).toBe("initial")
    const lastTx = await page.getByTestId("event-log").locator("li b").first().textContent()
    await page.getByTestId("btn-reconnect").click()
    await demo!.query(`UPDATE tasks SET title = 'changed while reconnecting' WHERE id = ${other}`)
    await expect
      .poll(() => page.getByTestId("sync-state").getAttribute("data-kind"), { timeout: 20_000 })
      .toBe("resumed")
    expect(await page.getByTestId("sync-state").textContent()).toContain(`resumed from ${lastTx}`)
    await expect.poll(() => page.getByTestId("conn-state").getAttribute("data-state"), { timeout: 20_000 }).toBe("live")
    await expect
      .poll(() => task(page, other).getByTestId("task-title").textContent(), { timeout: 10_000 })
      .toBe("changed while reconnecting")

    mkdirSync(join(REPO_ROOT, "test-results"), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    await page.close()
  })

  it("alice: a failed API call rolls the optimistic status back with a toast", async () => {
    const page = await openAs("alice", 2)
    const { rows } = await demo!.query("SELECT id FROM tasks WHERE todo_list_id = 2 AND status = 'PENDING' LIMIT 1")
    const id = Number((rows[0] as { id: string }).id)
    await expect.poll(() => task(page, id).getAttribute("data-status")).toBe("PENDING")
    // The backend runs with flakiness 0 here; fail this one call the way the flaky backend would.
    await page.route("**/api/tasks/*/start", (route) =>
      route.request().method() === "OPTIONS"
        ? route.continue()
        : route.fulfill({
            status: 503,
            contentType: "application/json",
            headers: { "Access-Control-Allow-Origin": "*" },
            body: JSON.stringify({ error: "flaky, try again" }),
          }),
    )
    await task(page, id).getByTestId("action-start").click()
    await expect.poll(() => page.getByTestId("toast-error").first().textContent()).toContain("rolled back")
    expect(await renderedStatus(page, id)).toEqual({ status: "PENDING", optimistic: "false" })
    expect((await demo!.query(`SELECT status FROM tasks WHERE id = ${id}`)).rows[0]).toEqual({ status: "PENDING" })
    await page.close()
  })

  it("bob: the whitelist hides task notes and subtasks, other changes still stream", async () => {
    const page = await openAs("bob")
    const { rows } = await demo!.query("SELECT count(*)::int AS n FROM tasks WHERE todo_list_id = 1")
    await expect.poll(() => page.locator('[data-testid^="task-"][data-status]').count()).toBe(rows[0].n)
    expect(await page.getByTestId("task-notes").count()).toBe(0)
    expect(await page.locator('[data-testid^="subtask-"]').count()).toBe(0)
    expect(await page.getByTestId("columns-tasks").textContent()).not.toContain("notes")
    expect(await page.getByTestId("columns-subtasks").count()).toBe(0)

    // A notes change rides on a tasks update; bob receives the update without the column.
    await demo!.query("UPDATE tasks SET notes = 'secret', title = 'bob sees this title' WHERE id = 1")
    await expect
      .poll(() => task(page, 1).getByTestId("task-title").textContent(), { timeout: 10_000 })
      .toBe("bob sees this title")
    expect(await page.getByTestId("task-notes").count()).toBe(0)
    expect(await page.getByTestId("columns-tasks").textContent()).not.toContain("notes")
    await page.close()
  })

  it("board over HTTP/1.1: the browser opens six streams, the others wait, and the page says why", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
    page.on("pageerror", (error) => demoLog.push(`[board page error] ${error.message}`))
    await page.goto(demo!.urls.board)
    const lists = Number((await demo!.query("SELECT count(*)::int AS n FROM todo_lists")).rows[0].n)
    expect(lists).toBeGreaterThan(6)
    const hint = page.getByTestId("hint")
    await expect.poll(() => hint.getAttribute("data-kind"), { timeout: 15_000 }).toBe("http1-limit")
    expect(await hint.isVisible()).toBe(true)
    expect(await page.getByTestId("board-summary").getAttribute("data-live")).toBe("6")
    expect(await hint.textContent()).toContain(`${lists - 6} of ${lists} streams are waiting`)
    expect(await hint.textContent()).toContain("npm run demo -- --h2")
    expect(await page.locator('[data-testid^="list-card-"][data-state="connecting"]').count()).toBe(lists - 6)
    // Walera holds exactly the streams the browser could open.
    await expect
      .poll(async () =>
        metricValue(await (await fetch(demo!.urls.metrics)).text(), 'walera_subscribers_active{type="exact"}'),
      )
      .toBe(6)
    await page.close()
  })
})
