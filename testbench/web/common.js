// What both demo pages (one list, the board of all lists) share: who the user is, where Walera and the product API
// listen, a tiny DOM builder, and the hint a person needs when the browser refuses the demo's TLS certificate.

export const TOKENS = { alice: "alice-token", bob: "bob-token" }
export const params = new URLSearchParams(location.search)
export const user = Object.hasOwn(TOKENS, params.get("user") ?? "") ? params.get("user") : "alice"
export const token = TOKENS[user]

/** `{ waleraUrl, apiUrl }`, written by the demo's web server. */
export const config = await (await fetch("/config.json")).json()

/** Walera over TLS: the browser negotiates HTTP/2 with it (browsers never speak cleartext h2). */
export const overTls = config.waleraUrl.startsWith("https:")

export const $ = (testId) => document.querySelector(`[data-testid="${testId}"]`)

export const h = (tag, attributes = {}, ...children) => {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue
    if (name === "className") element.className = value
    else element.setAttribute(name, value === true ? "" : String(value))
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) element.append(child)
  }
  return element
}

export const STATUS_LABEL = { PENDING: "pending", IN_PROGRESS: "in progress", COMPLETED: "done" }

/** RFC 3339 with up to nanosecond fraction → epoch ms (Date.parse is only guaranteed for milliseconds). */
export const parseCommitTs = (text) => {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text ?? "")
  if (!match) return Number.NaN
  return Date.parse(`${match[1]}.${(match[2] ?? "0").padEnd(3, "0").slice(0, 3)}${match[3]}`)
}

/**
 * Shows, in `banner`, what to do when a stream to Walera over TLS fails before any response: fetch reports a
 * certificate it refuses only as a network error, so the page cannot tell it apart from Walera being down and says
 * both. Hidden again with `hideCertificateHint` once a stream is open.
 */
export const showCertificateHint = (banner) => {
  if (!overTls || !banner.hidden) return
  const livez = `${config.waleraUrl}/livez`
  banner.replaceChildren(
    "Cannot reach Walera at ",
    h("code", {}, config.waleraUrl),
    ". If this browser has not accepted the demo's self-signed certificate yet, open ",
    h("a", { href: livez, target: "_blank", rel: "noopener" }, livez),
    ", accept the warning, then reload this page. Otherwise Walera is not running.",
  )
  banner.dataset.kind = "certificate"
  banner.hidden = false
}

export const hideCertificateHint = (banner) => {
  if (banner.dataset.kind === "certificate") banner.hidden = true
}
