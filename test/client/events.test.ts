// Pins how frames decode into typed events: what a front end gets for each Walera frame, and which malformed frames
// force a resync (initial_data, tx, resumed) versus which still end the stream (error, shutdown).
import { describe, expect, it } from "vitest"
import { BadFrameError, decodeEvent, type WaleraEvent } from "../../client/src/index.ts"

describe("decodeEvent", () => {
  it("decodes every Walera frame into its typed event, with the SSE id", () => {
    const tx = { tx_id: 735, commit_ts: "2026-05-18T08:30:12Z", changes: [{ op: "delete", table: "o", pk: "1" }] }
    expect(decodeEvent("tx", JSON.stringify(tx), "735")).toEqual({ type: "tx", data: tx, id: "735" })
    expect(decodeEvent("initial_data", '{"order":{"id":42}}')).toEqual({
      type: "initial_data",
      data: { order: { id: 42 } },
      id: "",
    })
    expect(decodeEvent("error", '{"reason":"wal_disconnected"}')).toEqual({
      type: "error",
      data: { reason: "wal_disconnected" },
      id: "",
    })
    expect(decodeEvent("shutdown", '{"reason":"service_restart"}', "9")).toEqual({
      type: "shutdown",
      data: { reason: "service_restart" },
      id: "9",
    })
    expect(decodeEvent("resumed", '{"last_event_id":"735"}')).toEqual({
      type: "resumed",
      data: { last_event_id: "735" },
      id: "",
    })
    // An id written as a JSON number is still the same id.
    expect(decodeEvent("resumed", '{"last_event_id":735}')?.data).toEqual({ last_event_id: "735" })
  })

  it("narrows by type", () => {
    const ev = decodeEvent("tx", '{"tx_id":1,"commit_ts":"x","changes":[]}') as WaleraEvent
    if (ev.type !== "tx") throw new Error("expected a tx")
    expect(ev.data.changes).toEqual([])
  })

  it("ignores events that are not part of the protocol", () => {
    expect(decodeEvent("message", "{}")).toBeUndefined()
    expect(decodeEvent("something_new", "not json")).toBeUndefined()
  })

  it.each([
    ["tx", "{not json"],
    ["tx", '{"tx_id":1}'],
    ["tx", "[]"],
    ["initial_data", "{"],
    ["resumed", "{}"],
    ["resumed", '{"last_event_id":null}'],
  ])("a malformed %s frame throws BadFrameError: %s", (type, data) => {
    expect(() => decodeEvent(type, data)).toThrow(BadFrameError)
  })

  it("a malformed error or shutdown frame is still terminal, with reason unknown", () => {
    expect(decodeEvent("error", "oops")).toEqual({ type: "error", data: { reason: "unknown" }, id: "" })
    expect(decodeEvent("shutdown", '{"reason":5}')).toEqual({ type: "shutdown", data: { reason: "unknown" }, id: "" })
  })
})
