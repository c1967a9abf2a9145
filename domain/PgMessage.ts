// The pgoutput (protocol v1) messages Walera understands, as plain data. Values stay in
// PostgreSQL's text form here; mapping to JSON happens once per change in TxAssembler.

/**
 * A value too large to decode: only its size is kept, so a huge column (PostgreSQL allows 1 GB) never becomes a
 * string that could exhaust memory or exceed V8's string limit. The transaction holding it is oversized.
 */
export interface LargeValue {
  readonly _tag: "large"
  readonly bytes: number
}

/** A column value inside a tuple: text form, SQL NULL, `undefined` for an unchanged TOAST value, or a large value. */
export type TupleValue = string | null | undefined | LargeValue
export type Tuple = ReadonlyArray<TupleValue>

export type ReplicaIdentity = "default" | "nothing" | "full" | "index"

export interface RelationColumn {
  readonly name: string
  readonly typeOid: number
  /** Part of the replica identity key (pgoutput flag 1). */
  readonly isKey: boolean
}

export interface BeginMessage {
  readonly _tag: "begin"
  readonly finalLsn: bigint
  /** Microseconds since 2000-01-01T00:00:00Z (PostgreSQL epoch). */
  readonly commitTime: bigint
  readonly xid: number
}

export interface CommitMessage {
  readonly _tag: "commit"
  readonly commitLsn: bigint
  readonly endLsn: bigint
  readonly commitTime: bigint
}

export interface RelationMessage {
  readonly _tag: "relation"
  readonly relationId: number
  readonly schema: string
  readonly name: string
  readonly replicaIdentity: ReplicaIdentity
  readonly columns: ReadonlyArray<RelationColumn>
  /**
   * Primary-key column names looked up in the catalog by the WAL adapter. Needed when the
   * replica identity is FULL or USING INDEX, where the key flags do not name the primary key.
   */
  readonly primaryKey?: ReadonlyArray<string> | undefined
}

export interface InsertMessage {
  readonly _tag: "insert"
  readonly relationId: number
  readonly newTuple: Tuple
}

export interface UpdateMessage {
  readonly _tag: "update"
  readonly relationId: number
  /** Old key columns, sent when the key changed (identity DEFAULT/INDEX). */
  readonly keyTuple: Tuple | null
  /** Whole old row, sent with REPLICA IDENTITY FULL. */
  readonly oldTuple: Tuple | null
  readonly newTuple: Tuple
}

export interface DeleteMessage {
  readonly _tag: "delete"
  readonly relationId: number
  readonly keyTuple: Tuple | null
  readonly oldTuple: Tuple | null
}

export interface TruncateMessage {
  readonly _tag: "truncate"
  readonly relationIds: ReadonlyArray<number>
}

/** Origin, Type and logical-decoding Message: parsed far enough to be skipped. */
export interface OtherMessage {
  readonly _tag: "other"
  readonly kind: string
}

export type PgMessage =
  | BeginMessage
  | CommitMessage
  | RelationMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | OtherMessage
