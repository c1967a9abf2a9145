// Pins the SSE parser against the HTML standard's rules, for any chunking and line ending: every Walera frame the
// client acts on goes through it.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { parseSse, type SseEvent } from "../../client/src/index.ts"

const parseAll = (...chunks: string[]): SseEvent[] => {
  const parser = parseSse()
  return chunks.flatMap((c) => parser.push(c))
}

type GenEvent = { event?: string; dataLines: string[]; id?: string; comment?: string }

const noNewline = (s: string) => !s.includes("\r") && !s.includes("\n")
const lineText = fc.string({ unit: "binary", maxLength: 12 }).filter(noNewline)
const genEvent: fc.Arbitrary<GenEvent> = fc.record(
  {
    event: fc.constantFrom("tx", "initial_data", "error", "shutdown", "message"),
    dataLines: fc.array(lineText, { minLength: 1, maxLength: 4 }),
    id: lineText.filter((s) => !s.includes("\0")),
    comment: lineText,
  },
  { requiredKeys: ["dataLines"] },
)

const serialize = (events: GenEvent[], eol: string, heartbeats: boolean): string =>
  events
    .map((e) => {
      const lines: string[] = []
      if (e.comment !== undefined) lines.push(`:${e.comment}`)
      if (e.event !== undefined) lines.push(`event: ${e.event}`)
      if (e.id !== undefined) lines.push(`id: ${e.id}`)
      for (const d of e.dataLines) lines.push(`data: ${d}`)
      return (heartbeats ? `:${eol}${eol}` : "") + lines.map((l) => l + eol).join("") + eol
    })
    .join("")

const expected = (events: GenEvent[]): SseEvent[] => {
  let lastId = ""
  return events.map((e) => {
    if (e.id !== undefined) lastId = e.id
    return { event: e.event ?? "message", data: e.dataLines.join("\n"), id: lastId }
  })
}

/** Splits bytes at the given offsets and decodes them the way the client does (streaming TextDecoder). */
const parseBytes = (bytes: Uint8Array, cuts: number[]): SseEvent[] => {
  const decoder = new TextDecoder()
  const parser = parseSse()
  const out: SseEvent[] = []
  let from = 0
  for (const cut of [...cuts].sort((a, b) => a - b).concat(bytes.length)) {
    out.push(...parser.push(decoder.decode(bytes.subarray(from, cut), { stream: true })))
    from = cut
  }
  out.push(...parser.push(decoder.decode()))
  return out
}
describe("parseSse", () => {
  it("parses a Walera stream: retry line, initial_data, tx with id, heartbeat, error", () => {
    const parser = parseSse()
    const events = parser.push(
      "retry: 15000\n\n" +
        'event: initial_data\ndata: {"order":{"id":"42"}}\n\n' +
        'event: tx\nid: 735\ndata: {"tx_id":735}\n\n' +
        ":\n\n" +
        'event: error\ndata: {"reason":"wal_disconnected"}\n\n',
    )
    expect(parser.retry).toBe(15000)
    expect(events).toEqual([
      { event: "initial_data", data: '{"order":{"id":"42"}}', id: "" },
      { event: "tx", data: '{"tx_id":735}', id: "735" },
      { event: "error", data: '{"reason":"wal_disconnected"}', id: "735" },
    ])
  })

  it("accepts CRLF, LF and CR line endings, including a CRLF split across chunks", () => {
    const want = [{ event: "tx", data: "a\nb", id: "1" }]
    expect(parseAll("event: tx\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\n")).toEqual(want)
    expect(parseAll("event: tx\rid: 1\rdata: a\rdata: b\r\r")).toEqual(want)
    expect(parseAll("event: tx\r", "\nid: 1\r", "\ndata: a\r\ndata: b\r", "\n\r", "\n")).toEqual(want)
    // A CR at the end of a chunk ends the line at once: the event is dispatched without waiting for more bytes.
    const parser = parseSse()
    expect(parser.push("data: x\r\r")).toEqual([{ event: "message", data: "x", id: "" }])
    expect(parser.push("\ndata: y\n\n")).toEqual([{ event: "message", data: "y", id: "" }])
  })

  it("joins multi-line data with \\n and keeps empty and space-prefixed lines", () => {
    expect(parseAll("data: one\ndata:\ndata\ndata:  two\ndata:three\n\n")).toEqual([
      { event: "message", data: "one\n\n\n two\nthree", id: "" },
    ])
  })

  it("ignores comments, heartbeats, unknown fields, bad retry values and events without data", () => {
    const parser = parseSse()
    expect(
      parser.push(":\n\n: keep-alive\n\nfoo: bar\nretry: 12x\n\nevent: tx\n\nid: 9\n\nevent: tx\n:c\ndata: d\n\n"),
    ).toEqual([{ event: "tx", data: "d", id: "9" }])
    expect(parser.retry).toBeUndefined()
  })

  it("seeds the last event id, keeps it across events without id, and reports the latest id field", () => {
    const parser = parseSse({ lastEventId: "735" })
    expect(parser.push("event: tx\ndata: {}\n\nid: 736\n\n")).toEqual([{ event: "tx", data: "{}", id: "735" }])
    expect(parser.lastEventId).toBe("736") // an id field without data still moves the buffer, as in EventSource
    expect(parser.push("data: x\n\n")).toEqual([{ event: "message", data: "x", id: "736" }])
  })

  it("drops a leading BOM, ignores ids containing NUL, and never dispatches an unfinished event", () => {
    expect(parseAll("\uFEFFdata: a\n\nid: x\0y\ndata: b\n\ndata: unfinished\n")).toEqual([
      { event: "message", data: "a", id: "" },
      { event: "message", data: "b", id: "" },
    ])
  })

  it("property: the same events are produced from any byte chunking, with any line ending", () => {
    fc.assert(
      fc.property(
        fc.array(genEvent, { maxLength: 6 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        (events, eol, heartbeats, rawCuts) => {
          const bytes = new TextEncoder().encode(`retry: 15000${eol}${eol}${serialize(events, eol, heartbeats)}`)
          const cuts = rawCuts.map((n) => n % (bytes.length + 1))
          const whole = parseBytes(bytes, [])
          expect(whole).toEqual(expected(events))
          expect(parseBytes(bytes, cuts)).toEqual(whole)
        },
      ),
      { numRuns: 300 },
    )
  })

  it("property: one character at a time equals all at once", () => {
    fc.assert(
      fc.property(fc.array(genEvent, { maxLength: 5 }), fc.constantFrom("\n", "\r\n", "\r"), (events, eol) => {
        const text = serialize(events, eol, true)
        expect(parseAll(...text)).toEqual(parseAll(text))
      }),
    )
  })
})
