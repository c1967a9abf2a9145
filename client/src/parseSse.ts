// An incremental `text/event-stream` parser following the HTML standard's rules (as a browser's EventSource does),
// because a fetch body arrives in arbitrary chunks and Walera's frames must decode the same however they are cut.

/** A dispatched SSE event. `event` defaults to "message"; `id` is the last event id seen so far on the stream. */
export type SseEvent = {
  event: string
  data: string
  id: string
}

export type SseParser = {
  /** Feeds decoded text (any chunking) and returns the events completed by it, in order. */
  push(chunk: string): SseEvent[]
  /** The last valid `retry:` value (ms) seen on this stream, if any. */
  readonly retry: number | undefined
  /** The last event id buffer: the seed, or the latest `id:` field (also when no event was dispatched yet). */
  readonly lastEventId: string
}

/**
 * An incremental SSE parser. Lines end in CRLF, LF or CR (a CRLF split over two chunks counts once); a leading
 * BOM is dropped; comments are ignored; an event is dispatched on a blank line only if it has data; an unfinished
 * event at the end of the stream is never dispatched (the caller simply stops pushing). `lastEventId` seeds the
 * last event id, as an EventSource keeps it across reconnections.
 */
export const parseSse = (options: { lastEventId?: string } = {}): SseParser => {
  let buffer = "" // text of the current, unfinished line
  let first = true
  let skipLf = false // the previous chunk ended in CR: a leading LF belongs to that line break
  let eventType = ""
  let data = ""
  let hasData = false
  let lastEventId = options.lastEventId ?? ""
  let retry: number | undefined

  const processLine = (line: string, out: SseEvent[]): void => {
    if (line === "") {
      if (hasData) out.push({ event: eventType === "" ? "message" : eventType, data, id: lastEventId })
      eventType = ""
      data = ""
      hasData = false
      return
    }
    const colon = line.indexOf(":")
    if (colon === 0) return // comment (heartbeat)
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    switch (field) {
      case "event":
        eventType = value
        break
      case "data":
        data = hasData ? `${data}\n${value}` : value
        hasData = true
        break
      case "id":
        if (!value.includes("\0")) lastEventId = value
        break
      case "retry":
        if (/^[0-9]+$/.test(value)) retry = Number(value)
        break
      default:
        break // unknown fields are ignored
    }
  }

  const push = (chunk: string): SseEvent[] => {
    const out: SseEvent[] = []
    let text = chunk
    if (first && text.length > 0) {
      first = false
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    let start = 0
    if (skipLf && text.length > 0) {
      skipLf = false
      if (text.charCodeAt(0) === 10) start = 1
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      processLine(buffer + text.slice(start, i), out)
      buffer = ""
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++
        } else {
          skipLf = true
        }
      }
      start = i + 1
    }
    if (start < text.length) buffer += text.slice(start)
    return out
  }

  return {
    push,
    get retry() {
      return retry
    },
    get lastEventId() {
      return lastEventId
    },
  }
}
