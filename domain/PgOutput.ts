// Decodes one pgoutput (protocol v1) message from its bytes into plain data. Pure and
// synchronous so the WAL adapter can call it per message and tests can feed it bytes.
import type { LargeValue, PgMessage, RelationColumn, ReplicaIdentity, Tuple, TupleValue } from "./PgMessage.ts"

export class PgOutputError extends Error {
  override readonly name = "PgOutputError"
}

const utf8 = new TextDecoder("utf-8", { fatal: false })

/**
 * Decodes the UTF-8 bytes [start, end) of a message (invalid sequences become U+FFFD). The WAL adapter passes its
 * runtime's own decoder, which needs no view per value: a transaction of the bench decodes about 16 values.
 */
export type Utf8Decode = (bytes: Uint8Array, start: number, end: number) => string

export const decodeUtf8: Utf8Decode = (bytes, start, end) => utf8.decode(bytes.subarray(start, end))

class Reader {
  private readonly bytes: Uint8Array
  private readonly view: DataView
  private readonly decode: Utf8Decode
  offset = 0
  constructor(bytes: Uint8Array, decode: Utf8Decode) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.decode = decode
  }
  need(n: number): void {
    if (this.offset + n > this.bytes.byteLength) throw new PgOutputError(`truncated message at byte ${this.offset}`)
  }
  u8(): number {
    this.need(1)
    return this.bytes[this.offset++]!
  }
  i16(): number {
    this.need(2)
    const v = this.view.getInt16(this.offset)
    this.offset += 2
    return v
  }
  i32(): number {
    this.need(4)
    const v = this.view.getInt32(this.offset)
    this.offset += 4
    return v
  }
  u32(): number {
    this.need(4)
    const v = this.view.getUint32(this.offset)
    this.offset += 4
    return v
  }
  u64(): bigint {
    this.need(8)
    const v = this.view.getBigUint64(this.offset)
    this.offset += 8
    return v
  }
  i64(): bigint {
    this.need(8)
    const v = this.view.getBigInt64(this.offset)
    this.offset += 8
    return v
  }
  cstring(): string {
    const end = this.bytes.indexOf(0, this.offset)
    if (end < 0) throw new PgOutputError(`unterminated string at byte ${this.offset}`)
    const s = this.decode(this.bytes, this.offset, end)
    this.offset = end + 1
    return s
  }
  /** Steps over a value without decoding it. */
  skip(len: number): LargeValue {
    if (len < 0) throw new PgOutputError(`negative value length ${len} at byte ${this.offset}`)
    this.need(len)
    this.offset += len
    return { _tag: "large", bytes: len }
  }
  text(len: number): string {
    if (len < 0) throw new PgOutputError(`negative value length ${len} at byte ${this.offset}`)
    this.need(len)
    const s = this.decode(this.bytes, this.offset, this.offset + len)
    this.offset += len
    return s
  }
}

const identities: Record<string, ReplicaIdentity> = { d: "default", n: "nothing", f: "full", i: "index" }

const readTuple = (r: Reader, maxValueBytes: number): Tuple => {
  const n = r.i16()
  if (n < 0) throw new PgOutputError(`negative tuple column count ${n}`)
  const values: TupleValue[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const kind = r.u8()
    if (kind === 0x6e /* n */) values[i] = null
    else if (kind === 0x75 /* u */) values[i] = undefined
    else if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
      const len = r.i32()
      values[i] = len > maxValueBytes ? r.skip(len) : r.text(len)
    } else throw new PgOutputError(`unknown tuple column kind ${kind}`)
  }
  return values
}

/**
 * `maxValueBytes`: a column value longer than this is not decoded but kept as a LargeValue (its transaction is then
 * over router.max_tx_bytes anyway), so no value can exhaust memory or V8's string limit.
 */
export const parsePgOutput = (
  bytes: Uint8Array,
  maxValueBytes = Number.POSITIVE_INFINITY,
  decode: Utf8Decode = decodeUtf8,
): PgMessage => {
  const r = new Reader(bytes, decode)
  const tag = r.u8()
  switch (tag) {
    case 0x42 /* B */:
      {
        const finalLsn = r.u64()
        const commitTime = r.i64()
        const xid = r.u32()
        return { _tag: "begin", finalLsn, commitTime, xid }
      }
    case 0x43 /* C */:
      {
        r.u8()
        const commitLsn = r.u64()
        const endLsn = r.u64()
        const commitTime = r.i64()
        return { _tag: "commit", commitLsn, endLsn, commitTime }
      }
    case 0x52 /* R */:
      {
        const relationId = r.u32()
        const schema = r.cstring()
        const name = r.cstring()
        const identity = String.fromCharCode(r.u8())
        const n = r.i16()
        const columns: RelationColumn[] = []
        for (let i = 0; i < n; i++) {
          const flags = r.u8()
          const columnName = r.cstring()
          const typeOid = r.u32()
          r.i32()
          columns.push({ name: columnName, typeOid, isKey: (flags & 1) === 1 })
        }
        return {
          _tag: "relation",
          relationId,
          schema,
          name,
          replicaIdentity: identities[identity] ?? "default",
          columns,
        }
      }
    case 0x49 /* I */:
      {
        const relationId = r.u32()
        r.u8()
        return { _tag: "insert", relationId, newTuple: readTuple(r, maxValueBytes) }
      }
    case 0x55 /* U */:
      {
        const relationId = r.u32()
        let keyTuple: Tuple | null = null
        let oldTuple: Tuple | null = null
        let marker = r.u8()
        if (marker === 0x4b /* K */) {
          keyTuple = readTuple(r, maxValueBytes)
          marker = r.u8()
        } else if (marker === 0x4f /* O */) {
          oldTuple = readTuple(r, maxValueBytes)
          marker = r.u8()
        }
        if (marker !== 0x4e /* N */) throw new PgOutputError(`update without new tuple (marker ${marker})`)
        return { _tag: "update", relationId, keyTuple, oldTuple, newTuple: readTuple(r, maxValueBytes) }
      }
    case 0x44 /* D */:
      {
        const relationId = r.u32()
        const marker = r.u8()
        const tuple = readTuple(r, maxValueBytes)
        return marker === 0x4f
          ? { _tag: "delete", relationId, keyTuple: null, oldTuple: tuple }
          : { _tag: "delete", relationId, keyTuple: tuple, oldTuple: null }
      }
    case 0x54 /* T */:
      {
        const n = r.i32()
        r.u8()
        const relationIds: number[] = []
        for (let i = 0; i < n; i++) relationIds.push(r.u32())
        return { _tag: "truncate", relationIds }
      }
    case 0x4f /* O */:
      return { _tag: "other", kind: "origin" }
    case 0x59 /* Y */:
      return { _tag: "other", kind: "type" }
    case 0x4d /* M */:
      return { _tag: "other", kind: "message" }
    default:
      throw new PgOutputError(`unknown pgoutput message type 0x${tag.toString(16)}`)
  }
}
