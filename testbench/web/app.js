// Walera demo UI: follows one todo list with the project's own client (@walera/client), mirrors every event into
// IndexedDB (Dexie) and renders only from that mirror via liveQuery; writes go to the product API with an optimistic
// overlay that the stream confirms.
import { applyTxAsync, connect } from "@walera/client"
import Dexie, { liveQuery } from "dexie"
import {
  $,
  config,
  h,
  hideCertificateHint,
  parseCommitTs,
  params,
  STATUS_LABEL,
  showCertificateHint,
  token,
  user,
} from "./common.js"

// ---------------------------------------------------------------------------------------------------------------
// Who and what

const listId = /^[1-9][0-9]{0,8}$/.test(params.get("list") ?? "") ? Number(params.get("list")) : 1
const streamUrl = `${config.waleraUrl}/sse/v1/todo_lists/${listId}`

// ---------------------------------------------------------------------------------------------------------------
// The mirror: one IndexedDB database per user (two windows, two users, no collisions)

const db = new Dexie(`walera-demo-${user}`)
db.version(1).stores({ todo_lists: "id", tasks: "id, todo_list_id", subtasks: "id, task_id" })
const MIRRORED = new Set(["todo_lists", "tasks", "subtasks"])

// int8 values arrive as JSON strings (no precision loss on the wire); the demo's ids are small, so numbers are safe.
const ID_COLUMNS = ["id", "todo_list_id", "task_id"]
const coerce = (row) => {
  const out = { ...row }
  for (const column of ID_COLUMNS)
    if (out[column] !== undefined && out[column] !== null) out[column] = Number(out[column])
  return out
}

/** Columns seen per table, to show the whitelist at work. */
const seenColumns = new Map()
const noteColumns = (table, row) => {
  if (!row) return
  const set = seenColumns.get(table) ?? new Set()
  for (const key of Object.keys(row)) set.add(key)
  seenColumns.set(table, set)
}

/** initial_data = the whole list subtree: replace it in one transaction (this is also the post-reconnect resync). */
const replaceSubtree = (subtree) =>
  db.transaction("rw", db.todo_lists, db.tasks, db.subtasks, async () => {
    const oldTaskIds = await db.tasks.where("todo_list_id").equals(listId).primaryKeys()
    await db.subtasks.where("task_id").anyOf(oldTaskIds).delete()
    await db.tasks.where("todo_list_id").equals(listId).delete()
    await db.todo_lists.delete(listId)
    const { tasks = [], ...list } = subtree
    noteColumns("todo_lists", list)
    await db.todo_lists.put(coerce(list))
    const taskRows = []
    const subtaskRows = []
    for (const { subtasks, ...task } of tasks) {
      noteColumns("tasks", task)
      taskRows.push(coerce(task))
      for (const subtask of subtasks ?? []) {
        noteColumns("subtasks", subtask)
        subtaskRows.push(coerce(subtask))
      }
    }
    await db.tasks.bulkPut(taskRows)
    await db.subtasks.bulkPut(subtaskRows)
  })

/** The Dexie tables as a keyed store for the client's mirror helper; tables the demo does not mirror are skipped. */
const store = {
  get: (table, pk) => (MIRRORED.has(table) ? db.table(table).get(Number(pk)) : undefined),
  set: (table, pk, row) => (MIRRORED.has(table) ? db.table(table).put({ ...coerce(row), id: Number(pk) }) : undefined),
  delete: (table, pk) => (MIRRORED.has(table) ? db.table(table).delete(Number(pk)) : undefined),
}

/** One tx event = one Dexie transaction: insert → put, update → merge (data is partial!), delete → delete. */
const applyTx = (tx) => {
  for (const change of tx.changes) if (MIRRORED.has(change.table)) noteColumns(change.table, change.data)
  return db.transaction("rw", db.todo_lists, db.tasks, db.subtasks, () => applyTxAsync(store, tx))
}

// Events arrive faster than IndexedDB commits: apply them strictly one after another, in stream order.
let applying = Promise.resolve()
const enqueue = (work) => {
  applying = applying.then(work).catch((error) => toast(`Mirror update failed: ${error.message}`, "error"))
  return applying
}

// ---------------------------------------------------------------------------------------------------------------
// Connection: @walera/client over fetch (a native EventSource cannot send Authorization). On every reconnect it sends
// the last tx id: the server either resumes (replays what we missed, no refetch) or opens normally (initial_data
// again). The status line says which happened.

const conn = $("conn-state")
const setConn = (state, detail = "") => {
  conn.dataset.state = state
  conn.textContent = detail ? `${state} · ${detail}` : state
  conn.title = detail
}
const sync = $("sync-state")
const setSync = (kind, text) => {
  sync.dataset.kind = kind
  sync.textContent = text
}

let liveTimer
let opens = 0
const goLive = () => {
  clearTimeout(liveTimer)
  if (conn.dataset.state !== "live") setConn("live")
}

/** Starts following the list; called last, once everything the callbacks use is defined. */
const follow = () =>
  connect({
    url: streamUrl,
    headers: { Authorization: `Bearer ${token}` },
    backoff: { baseMs: 500, maxMs: 15_000 },
    onOpen() {
      hideCertificateHint($("hint"))
      setConn("syncing", "waiting for the first frame")
    },
    onResync() {
      opens += 1
      setSync(opens === 1 ? "initial" : "resynced", opens === 1 ? "synced" : "resynced")
      setConn("syncing", "waiting for initial_data")
      liveTimer = setTimeout(goLive, 2000) // a grant without initial_data is live right away
    },
    onResumed({ last_event_id }) {
      opens += 1
      setSync("resumed", `resumed from tx ${last_event_id}`)
      goLive()
    },
    onInitialData(data) {
      enqueue(() => replaceSubtree(data)).then(() => {
        clearOverlays() // the snapshot is the truth now
        goLive()
      })
    },
    onTx(tx) {
      const receivedAt = Date.now()
      recordEvent(tx, receivedAt)
      enqueue(() => applyTx(tx)).then(() => {
        pendingLatency = { tx, receivedAt }
      })
      if (conn.dataset.state === "syncing") goLive()
    },
    onClose({ reason, willRetry, retryInMs }) {
      clearTimeout(liveTimer)
      if (!willRetry) {
        setConn("failed", reason)
        toast(`Stream refused: ${reason}`, "error")
        return
      }
      if (reason === "network") showCertificateHint($("hint"))
      setConn("reconnecting", `${reason} · retry in ${(retryInMs / 1000).toFixed(1)} s`)
    },
  })

// ---------------------------------------------------------------------------------------------------------------
// Live numbers: events per second and commit → render latency

const eventTimes = []
let pendingLatency
const eventLog = []

const recordEvent = (tx, receivedAt) => {
  eventTimes.push(receivedAt)
  const tables = [...new Set(tx.changes.map((change) => change.table))]
  eventLog.unshift({ tx, tables, latency: undefined })
  eventLog.length = Math.min(eventLog.length, 8)
  showRate()
}

const showRate = () => {
  const now = Date.now()
  while (eventTimes.length > 0 && eventTimes[0] < now - 10_000) eventTimes.shift()
  $("eps").textContent = (eventTimes.length / 10).toFixed(1)
}
setInterval(showRate, 1000)

// ---------------------------------------------------------------------------------------------------------------
// Optimistic overlay: what the user asked for, shown until the mirror confirms it or the API says no

const overlay = new Map() // "tasks:3" → { status, timer }
const pendingTasks = new Map() // temp key → { title, id? }

const clearOverlays = () => {
  for (const entry of overlay.values()) clearTimeout(entry.timer)
  overlay.clear()
  rerender()
}

const dropOverlay = (key) => {
  const entry = overlay.get(key)
  if (entry) clearTimeout(entry.timer)
  overlay.delete(key)
}

const setOverlay = (key, status) => {
  dropOverlay(key)
  overlay.set(key, {
    status,
    // Accepted by the API but never seen on the stream (e.g. the stream is down): stop pretending.
    timer: setTimeout(() => {
      if (!overlay.has(key)) return
      overlay.delete(key)
      rerender()
      toast("No confirmation from the stream yet; showing the mirror's state", "warn")
    }, 15_000),
  })
}

const callApi = async (path, body) => {
  const response = await fetch(`${config.apiUrl}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  })
  const payload = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(payload.error ?? `HTTP ${response.status}`)
  return payload // deliberately NOT applied to the mirror: the new state arrives through Walera
}

/** Runs an API action with optimistic statuses for some rows; rolls them back with a toast on failure. */
const act = async (label, path, optimistic, body) => {
  for (const [key, status] of optimistic) setOverlay(key, status)
  rerender()
  try {
    const result = await callApi(path, body)
    if (result.changed === 0) for (const [key] of optimistic) dropOverlay(key) // nothing to wait for
    rerender()
    return result
  } catch (error) {
    for (const [key] of optimistic) dropOverlay(key)
    rerender()
    toast(`${label} failed: ${error.message} — rolled back`, "error")
    return undefined
  }
}

const ACTIONS = {
  start: (id) => act("Start", `/api/tasks/${id}/start`, [[`tasks:${id}`, "IN_PROGRESS"]]),
  complete: (id) => act("Complete", `/api/tasks/${id}/complete`, [[`tasks:${id}`, "COMPLETED"]]),
  reopen: (id) => act("Reopen", `/api/tasks/${id}/reopen`, [[`tasks:${id}`, "PENDING"]]),
  toggle: (id) => {
    const current = statusOf(
      "subtasks",
      snapshot.subtasks.find((subtask) => subtask.id === id),
    )
    const next = current === "COMPLETED" ? "PENDING" : "COMPLETED"
    return act("Toggle", `/api/subtasks/${id}/toggle`, [[`subtasks:${id}`, next]])
  },
  "complete-all": () => {
    const keys = [
      ...snapshot.tasks.filter((task) => task.status !== "COMPLETED").map((task) => `tasks:${task.id}`),
      ...snapshot.subtasks
        .filter((subtask) => subtask.status !== "COMPLETED")
        .map((subtask) => `subtasks:${subtask.id}`),
    ]
    return act(
      "Complete all",
      `/api/lists/${listId}/complete-all`,
      keys.map((key) => [key, "COMPLETED"]),
    )
  },
}

let pendingSeq = 0
const addTask = async (title) => {
  const key = `pending-${++pendingSeq}`
  pendingTasks.set(key, { title })
  rerender()
  try {
    const result = await callApi(`/api/lists/${listId}/tasks`, { title })
    pendingTasks.set(key, { title, id: Number(result.id) })
    setTimeout(() => {
      if (pendingTasks.delete(key)) rerender()
    }, 15_000)
  } catch (error) {
    pendingTasks.delete(key)
    toast(`Add task failed: ${error.message} — rolled back`, "error")
  }
  rerender()
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering: only from the mirror (liveQuery) plus the overlay

const statusOf = (table, row) => (row ? (overlay.get(`${table}:${row.id}`)?.status ?? row.status) : undefined)
const timeOf = (value) => (value ? new Date(value).toLocaleTimeString() : "")

let snapshot = { list: undefined, tasks: [], subtasks: [] }
let firstRender = true
const lastSeen = new Map() // "tasks:3" → updated_at, to flash rows that changed

const flashClass = (key, row) => {
  const previous = lastSeen.get(key)
  lastSeen.set(key, row.updated_at)
  return !firstRender && previous !== row.updated_at ? " flash" : ""
}

const renderSubtask = (subtask) => {
  const key = `subtasks:${subtask.id}`
  const status = statusOf("subtasks", subtask)
  const optimistic = overlay.has(key)
  return h(
    "li",
    {
      className: `subtask status-${status}${optimistic ? " optimistic" : ""}${flashClass(key, subtask)}`,
      "data-testid": `subtask-${subtask.id}`,
      "data-status": status,
      "data-mirror-status": subtask.status,
      "data-optimistic": String(optimistic),
    },
    h(
      "label",
      {},
      h("input", {
        type: "checkbox",
        checked: status === "COMPLETED",
        "data-action": "toggle",
        "data-id": subtask.id,
        "data-testid": "subtask-toggle",
      }),
      h("span", { "data-testid": "subtask-title" }, subtask.title),
      status === "IN_PROGRESS" ? h("span", { className: "badge small status-IN_PROGRESS" }, "in progress") : null,
    ),
  )
}

const renderTask = (task, subtasks) => {
  const key = `tasks:${task.id}`
  const status = statusOf("tasks", task)
  const optimistic = overlay.has(key)
  const button = (action, label) =>
    h("button", { type: "button", "data-action": action, "data-id": task.id, "data-testid": `action-${action}` }, label)
  return h(
    "li",
    {
      className: `task status-${status}${optimistic ? " optimistic" : ""}${flashClass(key, task)}`,
      "data-testid": `task-${task.id}`,
      "data-status": status,
      "data-mirror-status": task.status,
      "data-optimistic": String(optimistic),
    },
    h(
      "div",
      { className: "task-row" },
      h("span", { className: `badge status-${status}`, "data-testid": "task-status" }, STATUS_LABEL[status] ?? status),
      h("span", { className: "task-title", "data-testid": "task-title" }, task.title),
      h(
        "span",
        { className: "actions" },
        status === "PENDING" ? button("start", "Start") : null,
        status !== "COMPLETED" ? button("complete", "Complete") : null,
        status !== "PENDING" ? button("reopen", "Reopen") : null,
      ),
    ),
    // Only present when the whitelist lets the column through (alice yes, bob no).
    "notes" in task && task.notes ? h("p", { className: "notes", "data-testid": "task-notes" }, task.notes) : null,
    subtasks.length > 0 ? h("ul", { className: "subtasks" }, subtasks.map(renderSubtask)) : null,
  )
}

const render = () => {
  const { list, tasks, subtasks } = snapshot
  // Overlay entries the mirror has caught up with are done.
  for (const [key, entry] of overlay) {
    const [table, id] = key.split(":")
    const row = (table === "tasks" ? tasks : subtasks).find((candidate) => candidate.id === Number(id))
    if (row?.status === entry.status) dropOverlay(key)
  }
  for (const [key, pending] of pendingTasks) {
    if (pending.id !== undefined && tasks.some((task) => task.id === pending.id)) pendingTasks.delete(key)
  }

  $("list-title").textContent = list?.title ?? (conn.dataset.state === "failed" ? "—" : "…")
  $("list-updated").textContent = list?.updated_at ? `updated ${timeOf(list.updated_at)}` : ""
  $("empty").hidden = list !== undefined

  const byTask = new Map()
  for (const subtask of subtasks) byTask.set(subtask.task_id, [...(byTask.get(subtask.task_id) ?? []), subtask])
  const items = tasks.map((task) => renderTask(task, byTask.get(task.id) ?? []))
  for (const [key, pending] of pendingTasks) {
    items.push(
      h(
        "li",
        { className: "task optimistic pending-insert", "data-testid": `pending-task-${key}` },
        h("div", { className: "task-row" }, h("span", { className: "badge" }, "saving…"), h("span", {}, pending.title)),
      ),
    )
  }
  $("tasks").replaceChildren(...items)

  $("columns").replaceChildren(
    ...[...seenColumns].flatMap(([table, columns]) => [
      h("dt", {}, table),
      h("dd", { "data-testid": `columns-${table}` }, [...columns].join(", ")),
    ]),
  )

  if (pendingLatency) {
    const commitMs = parseCommitTs(pendingLatency.tx.commit_ts)
    const latency = Date.now() - commitMs
    const entry = eventLog.find((logged) => logged.tx === pendingLatency.tx)
    if (entry) entry.latency = latency
    $("latency").textContent = Number.isFinite(latency) ? `${Math.max(0, latency)} ms` : "–"
    pendingLatency = undefined
  }
  $("event-log").replaceChildren(
    ...eventLog.map((logged) =>
      h(
        "li",
        {},
        h("b", {}, `tx ${logged.tx.tx_id}`),
        ` · ${logged.tx.changes.length} change${logged.tx.changes.length === 1 ? "" : "s"} (${logged.tables.join(", ")})`,
        logged.latency === undefined ? "" : ` · ${logged.latency} ms`,
      ),
    ),
  )
  firstRender = false
}

const rerender = () => render()

liveQuery(() =>
  db.transaction("r", db.todo_lists, db.tasks, db.subtasks, async () => {
    const list = await db.todo_lists.get(listId)
    const tasks = await db.tasks.where("todo_list_id").equals(listId).sortBy("id")
    const subtasks = await db.subtasks
      .where("task_id")
      .anyOf(tasks.map((task) => task.id))
      .sortBy("id")
    return { list, tasks, subtasks }
  }),
).subscribe({
  next: (next) => {
    snapshot = next
    render()
  },
  error: (error) => toast(`Mirror query failed: ${error.message}`, "error"),
})

// ---------------------------------------------------------------------------------------------------------------
// Chrome: toasts, switchers, click handling

const toast = (text, kind = "info") => {
  const element = h("div", { className: `toast ${kind}`, "data-testid": `toast-${kind}`, role: "status" }, text)
  $("toasts").append(element)
  setTimeout(() => element.remove(), 5000)
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-action]")
  if (!target) return
  const action = ACTIONS[target.dataset.action]
  if (!action) return
  if (target.type === "checkbox") event.preventDefault() // the mirror decides when it is checked
  void action(Number(target.dataset.id))
})
$("action-complete-all").dataset.action = "complete-all"

$("add-task-form").addEventListener("submit", (event) => {
  event.preventDefault()
  const input = $("add-task-input")
  const title = input.value.trim()
  if (!title) return
  input.value = ""
  void addTask(title)
})

$("user-name").textContent = user
for (const link of document.querySelectorAll("[data-user]")) {
  link.href = `?user=${link.dataset.user}&list=${listId}`
  link.classList.toggle("active", link.dataset.user === user)
}
$("board-link").href = `/board.html?user=${user}`
const select = $("list-select")
select.addEventListener("change", () => {
  location.search = `?user=${user}&list=${select.value}`
})
document.title = `Walera demo · ${user} · list ${listId}`

fetch(`${config.apiUrl}/api/lists`, { headers: { Authorization: `Bearer ${token}` } })
  .then((response) => response.json())
  .then(({ lists }) => {
    select.replaceChildren(...lists.map((list) => h("option", { value: list.id }, `${list.id} · ${list.title}`)))
    select.value = String(listId)
  })
  .catch(() => select.replaceChildren(h("option", { value: listId }, String(listId))))

const stream = follow()
$("btn-reconnect").addEventListener("click", () => stream.reconnect())
