// Walera demo board: every todo list at once. Each card follows its list through its own stream, as a page does that
// shows several entities side by side (each stream brings that list's initial_data and is authorized on its own),
// keeps it in an in-memory mirror (@walera/client's applyTx) and re-renders from it on every change. Over HTTP/1.1
// a browser opens at most six connections to one origin and every open stream holds one, so from the seventh card
// on the streams wait; over HTTP/2 (`npm run demo -- --h2`) they all share one connection.
import { applyTx, connect } from "@walera/client"
import {
  $,
  config,
  h,
  hideCertificateHint,
  overTls,
  parseCommitTs,
  STATUS_LABEL,
  showCertificateHint,
  token,
  user,
} from "./common.js"

const STATE_LABEL = { connecting: "waiting", live: "live", reconnecting: "reconnecting", failed: "stopped" }
/** A stream still without a response after this long is queued behind the browser's connection limit. */
const STALLED_AFTER_MS = 3000

const hint = $("hint")
const cards = new Map() // list id → card

const rowsOf = (card, table) => [...(card.mirror.get(table)?.values() ?? [])]
const byId = (a, b) => Number(a.id) - Number(b.id)

/** initial_data is the list's whole subtree: it replaces the card's mirror (also after a reconnect that resynced). */
const loadSubtree = (card, subtree) => {
  const { tasks = [], ...list } = subtree
  const taskRows = new Map()
  const subtaskRows = new Map()
  for (const { subtasks, ...task } of tasks) {
    taskRows.set(String(task.id), task)
    for (const subtask of subtasks ?? []) subtaskRows.set(String(subtask.id), subtask)
  }
  card.mirror = new Map([
    ["todo_lists", new Map([[String(list.id), list]])],
    ["tasks", taskRows],
    ["subtasks", subtaskRows],
  ])
}

const renderTask = (task, subtasks) => {
  const done = subtasks.filter((subtask) => subtask.status === "COMPLETED").length
  return h(
    "li",
    { className: `status-${task.status}`, "data-testid": `card-task-${task.id}`, "data-status": task.status },
    h("span", { className: `badge status-${task.status}` }, STATUS_LABEL[task.status] ?? task.status),
    h("span", { className: "card-task-title", "data-testid": "card-task-title" }, task.title),
    subtasks.length > 0
      ? h("span", { className: "muted small", title: "subtasks done" }, `${done}/${subtasks.length}`)
      : null,
  )
}

const render = (card, changed) => {
  const list = card.mirror.get("todo_lists")?.get(String(card.id))
  const tasks = rowsOf(card, "tasks")
    .filter((task) => Number(task.todo_list_id) === card.id)
    .sort(byId)
  const subtasks = rowsOf(card, "subtasks").sort(byId)
  const done = tasks.filter((task) => task.status === "COMPLETED").length
  const element = card.element
  element.dataset.state = card.state
  element.dataset.updates = String(card.updates)
  element.dataset.tx = card.lastTx === undefined ? "" : String(card.lastTx)
  element.replaceChildren(
    h(
      "header",
      { className: "card-head" },
      h("a", { href: `/?user=${user}&list=${card.id}`, "data-testid": "card-title" }, list?.title ?? card.title),
      h("span", { className: "conn small", "data-state": card.state, title: card.detail }, STATE_LABEL[card.state]),
    ),
    h(
      "div",
      { className: "progress", title: `${done} of ${tasks.length} tasks done` },
      h("span", { style: `width: ${tasks.length === 0 ? 0 : Math.round((100 * done) / tasks.length)}%` }),
    ),
    h(
      "ul",
      { className: "card-tasks" },
      tasks.map((task) =>
        renderTask(
          task,
          subtasks.filter((subtask) => Number(subtask.task_id) === Number(task.id)),
        ),
      ),
    ),
    h(
      "footer",
      { className: "muted small", "data-testid": "card-footer" },
      card.lastTx === undefined
        ? card.state === "live"
          ? "no change since the page opened"
          : ""
        : `tx ${card.lastTx} · ${card.updates} event${card.updates === 1 ? "" : "s"} · commit→render ${card.latency} ms`,
    ),
  )
  if (changed) {
    // Restart the animation even when the previous flash has not finished.
    element.classList.remove("flash")
    void element.offsetWidth
    element.classList.add("flash")
  }
}

const setState = (card, state, detail = "") => {
  card.state = state
  card.detail = detail
  render(card, false)
  showSummary()
}

const follow = (card) =>
  connect({
    url: `${config.waleraUrl}/sse/v1/todo_lists/${card.id}`,
    headers: { Authorization: `Bearer ${token}` },
    backoff: { baseMs: 500, maxMs: 15_000 },
    onOpen() {
      hideCertificateHint(hint)
      setState(card, "live")
    },
    onInitialData(subtree) {
      loadSubtree(card, subtree)
      render(card, false)
    },
    onTx(tx) {
      applyTx(card.mirror, tx)
      card.updates += 1
      card.lastTx = tx.tx_id
      card.latency = Math.max(0, Date.now() - parseCommitTs(tx.commit_ts))
      render(card, true)
    },
    onClose({ reason, willRetry, retryInMs }) {
      if (reason === "network") showCertificateHint(hint)
      if (willRetry) setState(card, "reconnecting", `${reason} · retry in ${(retryInMs / 1000).toFixed(1)} s`)
      else setState(card, "failed", reason)
    },
  })

// ---------------------------------------------------------------------------------------------------------------
// The page: how many streams are live, and why some may be waiting

const showSummary = () => {
  const all = [...cards.values()]
  const live = all.filter((card) => card.state === "live").length
  const summary = $("board-summary")
  summary.dataset.streams = String(all.length)
  summary.dataset.live = String(live)
  summary.textContent = `${all.length} streams · ${live} live`
}

const explainWaiting = () => {
  if (overTls) return // HTTP/2: no per-origin connection limit to explain; failures get the certificate hint
  const now = Date.now()
  const waiting = [...cards.values()].filter(
    (card) => card.state === "connecting" && now - card.since > STALLED_AFTER_MS,
  )
  if (waiting.length === 0) {
    if (hint.dataset.kind === "http1-limit") hint.hidden = true
    return
  }
  hint.dataset.kind = "http1-limit"
  hint.replaceChildren(
    `${waiting.length} of ${cards.size} streams are waiting for a connection: over HTTP/1.1 a browser opens at most six `,
    "connections to one origin (Walera here, other tabs of this demo included), and every open stream keeps one. ",
    "Start the demo with ",
    h("code", {}, "npm run demo -- --h2"),
    " and all of them share one HTTP/2 connection.",
  )
  hint.hidden = false
}

$("board-transport").textContent = overTls
  ? `Walera over TLS (${config.waleraUrl}): HTTP/2, one connection for all streams`
  : `Walera over cleartext HTTP/1.1 (${config.waleraUrl}): one connection per stream`
for (const link of document.querySelectorAll("[data-user]")) {
  link.href = `?user=${link.dataset.user}`
  link.classList.toggle("active", link.dataset.user === user)
}
$("list-link").href = `/?user=${user}`
document.title = `Walera demo · ${user} · all lists`

try {
  const response = await fetch(`${config.apiUrl}/api/lists`, { headers: { Authorization: `Bearer ${token}` } })
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  const { lists } = await response.json()
  for (const list of lists) {
    const id = Number(list.id)
    const card = {
      id,
      title: list.title,
      mirror: new Map(),
      state: "connecting",
      detail: "",
      since: Date.now(),
      updates: 0,
      lastTx: undefined,
      latency: undefined,
      element: h("article", { className: "list-card", "data-testid": `list-card-${id}` }),
    }
    cards.set(id, card)
    $("board").append(card.element)
    render(card, false)
  }
  showSummary()
  for (const card of cards.values()) follow(card)
  setInterval(explainWaiting, 1000)
} catch (error) {
  $("board-summary").textContent = `could not load the lists from the product API: ${error.message}`
}
