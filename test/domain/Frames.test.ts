// Tests for the SSE wire frames (docs/delivery-semantics.md, "Frames"): the exact bytes a browser's EventSource reads.
import { parseGrant } from "../../domain/Grant.ts"
import { describe, expect, it } from "vitest"
import {
  type ErrorReason,
  errorFrame,
  HEARTBEAT_FRAME,
  initialDataFrame,
  RETRY_FRAME,
  SHUTDOWN_FRAME,
  txFrame,
} from "../../domain/Frames.ts"

describe("Frames", () => {
  it("tx: event, id = xid, one data line, blank line", () => {
    const json =
      '{"tx_id":735,"commit_ts":"2026-05-18T08:30:12Z","changes":[{"op":"update","table":"orders","pk":"42","data":{"id":"42","status":"paid"}}]}'
    expect(txFrame(735, json)).toBe(`event: tx\nid: 735\ndata: ${json}\n\n`)
  })

  it("tx: an xid above 2^31 is printed as the unsigned number", () => {
    expect(txFrame(4_000_000_000, "{}")).toBe("event: tx\nid: 4000000000\ndata: {}\n\n")
  })

  it('error: one frame per reason, data {"reason":R}', () => {
    const reasons: ErrorReason[] = [
      "slow_consumer",
      "tx_too_large",
      "auth_revoked",
      "auth_unavailable",
      "wal_disconnected",
    ]
    expect(reasons.map(errorFrame)).toEqual([
      'event: error\ndata: {"reason":"slow_consumer"}\n\n',
      'event: error\ndata: {"reason":"tx_too_large"}\n\n',
      'event: error\ndata: {"reason":"auth_revoked"}\n\n',
      'event: error\ndata: {"reason":"auth_unavailable"}\n\n',
      'event: error\ndata: {"reason":"wal_disconnected"}\n\n',
    ])
  })

  it("shutdown: reason service_restart", () => {
    expect(SHUTDOWN_FRAME).toBe('event: shutdown\ndata: {"reason":"service_restart"}\n\n')
  })

  it("heartbeat: the empty comment frame", () => {
    expect(HEARTBEAT_FRAME).toBe(":\n\n")
  })

  it("retry: 15000 ms, the first bytes of every stream", () => {
    expect(RETRY_FRAME).toBe("retry: 15000\n\n")
  })

  const initialOf = (body: string): string => {
    const parsed = parseGrant(body)
    if (parsed._tag === "Invalid" || parsed.grant.initialData === undefined) throw new Error("expected initial_data")
    return initialDataFrame(parsed.grant.initialData)
  }

  it("initial_data: the backend's JSON compacted to one data line, numbers digit for digit", () => {
    const body =
      '{"user_id": "u", "tables": {},\n "initial_data": {\n  "todo_list": {\n    "id": 7,\n    "title": "Groceries"\n  },\n  "tasks": [ 1, 2 ],\n  "big": 12345678901234567890123\n}\n}'
    expect(initialOf(body)).toBe(
      'event: initial_data\ndata: {"todo_list":{"id":7,"title":"Groceries"},"tasks":[1,2],"big":12345678901234567890123}\n\n',
    )
  })

  it("initial_data: line breaks inside string values stay escaped, so the frame cannot be split", () => {
    const frame = initialOf(JSON.stringify({ user_id: "u", initial_data: { note: "a\nb\r\nevent: tx" } }))
    expect(frame).toBe('event: initial_data\ndata: {"note":"a\\nb\\r\\nevent: tx"}\n\n')
    expect(frame.split("\n")).toHaveLength(4)
  })

  it("initial_data: scalars and arrays are sent as JSON too; null sends nothing", () => {
    expect(initialOf('{"user_id":"u","initial_data":"hi"}')).toBe('event: initial_data\ndata: "hi"\n\n')
    expect(initialOf('{"user_id":"u","initial_data": false}')).toBe("event: initial_data\ndata: false\n\n")
    expect(initialOf('{"initial_data": [ ], "user_id":"u"}')).toBe("event: initial_data\ndata: []\n\n")
    const none = parseGrant('{"user_id":"u","initial_data":null}')
    expect(none._tag === "Valid" && none.grant.initialData).toBe(undefined)
  })
})
