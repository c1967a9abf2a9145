// The pgoutput (protocol v1) messages Walera understands, as plain data. Values stay in
// PostgreSQL's text form here; mapping to JSON happens once per change in TxAssembler.

/** A column value inside a tuple: text form, SQL NULL, or `undefined` for an unchanged TOAST value. */
export type TupleValue = string | null | undefined
export type Tuple = ReadonlyArray<TupleValue>

export type ReplicaIdentity = "default" | "nothing" | "full" | "index"

export interface RelationColumn {
  readonly name: string
  readonly typeOid: number
  /** Part of the replica identity key (pgoutput flag 1). */
  readonly isKey: boolean
}

export interface BeginMessage {
  readonly tag: "begin"
  readonly finalLsn: bigint
  /** Microseconds since 2000-01-01T00:00:00Z (PostgreSQL epoch). */
  readonly commitTime: bigint
  readonly xid: number
}

export interface CommitMessage {
  readonly tag: "commit"
  readonly commitLsn: bigint
  readonly endLsn: bigint
  readonly commitTime: bigint
}

export interface RelationMessage {
  readonly tag: "relation"
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
  readonly tag: "insert"
  readonly relationId: number
  readonly newTuple: Tuple
}

export interface UpdateMessage {
  readonly tag: "update"
  readonly relationId: number
  /** Old key columns, sent when the key changed (identity DEFAULT/INDEX). */
  readonly keyTuple: Tuple | null
  /** Whole old row, sent with REPLICA IDENTITY FULL. */
  readonly oldTuple: Tuple | null
  readonly newTuple: Tuple
}

export interface DeleteMessage {
  readonly tag: "delete"
  readonly relationId: number
  readonly keyTuple: Tuple | null
  readonly oldTuple: Tuple | null
}

export interface TruncateMessage {
  readonly tag: "truncate"
  readonly relationIds: ReadonlyArray<number>
}

/** Origin, Type and logical-decoding Message: parsed far enough to be skipped. */
export interface OtherMessage {
  readonly tag: "other"
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
