// The WAL adapter decodes column text with Buffer's own UTF-8 decoder instead of the domain's TextDecoder (twice as
// fast per value): for any bytes, valid UTF-8 or not, both must give the same messages.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { bufferUtf8 } from "../../adapters/pg/PgWalSource.ts"
import { decodeUtf8, parsePgOutput } from "../../domain/PgOutput.ts"

/** An Insert of one row whose values are the given raw bytes, and a Relation named by raw bytes. */
const insertOf = (values: ReadonlyArray<Uint8Array>): Buffer => {
  const head = Buffer.alloc(1 + 4 + 1 + 2)
  head.write("I", 0, "latin1")
  head.writeUInt32BE(16_385, 1)
  head.write("N", 5, "latin1")
  head.writeInt16BE(values.length, 6)
  const parts: Buffer[] = [head]
  for (const v of values) {
    const h = Buffer.alloc(5)
    h.write("t", 0, "latin1")
    h.writeInt32BE(v.length, 1)
    parts.push(h, Buffer.from(v))
  }
  return Buffer.concat(parts)
}
const relationOf = (name: Uint8Array): Buffer =>
  Buffer.concat([
    Buffer.from([0x52, 0, 0, 0, 7]),
    Buffer.from("public\0"),
    Buffer.from(name),
    Buffer.from([0, 0x64, 0, 0]),
  ])

// Bytes biased towards UTF-8 lead and continuation bytes, so invalid and truncated sequences are common.
const rawBytes = fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0x80, max: 0xf7 })), {
  maxLength: 24,
})

describe("WAL adapter: column text decoding", () => {
  it("property: Buffer's decoder and TextDecoder give the same message for any bytes", () => {
    fc.assert(
      fc.property(fc.array(rawBytes, { maxLength: 6 }), (values) => {
        const bytes = insertOf(values.map((v) => Uint8Array.from(v)))
        expect(parsePgOutput(bytes, Number.POSITIVE_INFINITY, bufferUtf8)).toEqual(
          parsePgOutput(bytes, Number.POSITIVE_INFINITY, decodeUtf8),
        )
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(rawBytes, (name) => {
        const bytes = relationOf(Uint8Array.from(name.filter((b) => b !== 0)))
        expect(parsePgOutput(bytes, Number.POSITIVE_INFINITY, bufferUtf8)).toEqual(
          parsePgOutput(bytes, Number.POSITIVE_INFINITY, decodeUtf8),
        )
      }),
    )
  })

  it("decodes multibyte text and replaces an invalid sequence with U+FFFD", () => {
    const bytes = insertOf([Buffer.from("zażółć 日本語 🎉"), Uint8Array.from([0x61, 0xc3, 0x62])])
    const m = parsePgOutput(bytes, Number.POSITIVE_INFINITY, bufferUtf8)
    expect(m).toEqual({ _tag: "insert", relationId: 16_385, newTuple: ["zażółć 日本語 🎉", "a\uFFFDb"] })
  })
})
