// Tests for what a client may ask for (docs/operations.md, "Endpoints") and what the auth backend
// granted (docs/auth.md): channel paths, request ids, grant parsing from untrusted bodies, the
// root/table check, and whitelist interning.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { isValidRequestId, parseChannel } from "../../domain/Channel.ts"
import { checkChannel, type Grant, parseGrant, WhitelistPool } from "../../domain/Grant.ts"
import { makeWhitelist } from "../../domain/Whitelist.ts"

describe("parseChannel", () => {
  it("accepts a row channel and names it <table>:<pk>", () => {
    expect(parseChannel("orders/42")).toEqual({ table: "orders", pk: "42", name: "orders:42" })
  })

  it("accepts the table channel `all`", () => {
    expect(parseChannel("orders/all")).toEqual({ table: "orders", pk: null, name: "orders:all" })
  })

  it("URL-decodes the pk segment", () => {
    expect(parseChannel("order_items/a%2Fb")).toEqual({ table: "order_items", pk: "a/b", name: "order_items:a/b" })
    // A composite key as Walera prints it (`1,a%2Cb`), URL-encoded by the client.
    expect(parseChannel("order_items/1%2Ca%252Cb")?.pk).toBe("1,a%2Cb")
    expect(parseChannel("users/j%C3%B3zef")?.pk).toBe("józef")
    expect(parseChannel("users/a+b")?.pk).toBe("a+b")
  })

  it("accepts table names of 1 to 63 characters starting with a letter or underscore", () => {
    expect(parseChannel("t/1")?.table).toBe("t")
    expect(parseChannel("_t9/1")?.table).toBe("_t9")
    expect(parseChannel(`${"a".repeat(63)}/1`)?.table).toBe("a".repeat(63))
  })

  it("rejects table names that PostgreSQL would not print as a bare lowercase identifier", () => {
    for (const table of ["Orders", "ORDERS", "9orders", "order-items", "orders.x", "public.orders", "", "ö", "a b"]) {
      expect(parseChannel(`${table}/1`), table).toBeUndefined()
    }
    expect(parseChannel(`${"a".repeat(64)}/1`)).toBeUndefined()
  })

  it("rejects a missing pk, an empty pk and extra segments", () => {
    for (const path of ["orders", "orders/", "/42", "orders/42/", "orders/42/x", "orders//42", "orders/all/x", ""]) {
      expect(parseChannel(path), path).toBeUndefined()
    }
  })

  it("limits the pk to 256 bytes, counting multi-byte characters as bytes", () => {
    expect(parseChannel(`t/${"a".repeat(256)}`)?.pk).toHaveLength(256)
    expect(parseChannel(`t/${"a".repeat(257)}`)).toBeUndefined()
    // é is 2 bytes: 128 fit, 129 (258 bytes) do not, although they are fewer than 256 characters.
    expect(parseChannel(`t/${encodeURIComponent("é".repeat(128))}`)?.pk).toBe("é".repeat(128))
    expect(parseChannel(`t/${encodeURIComponent("é".repeat(129))}`)).toBeUndefined()
    // 日 is 3 bytes, 🎉 is 4 bytes (two UTF-16 units).
    expect(parseChannel(`t/${encodeURIComponent(`${"日".repeat(85)}a`)}`)?.pk).toBe(`${"日".repeat(85)}a`)
    expect(parseChannel(`t/${encodeURIComponent(`${"日".repeat(85)}ab`)}`)).toBeUndefined()
    expect(parseChannel(`t/${encodeURIComponent("🎉".repeat(64))}`)?.pk).toBe("🎉".repeat(64))
    expect(parseChannel(`t/${encodeURIComponent("🎉".repeat(65))}`)).toBeUndefined()
    // A percent-encoded byte counts once decoded, not as three characters.
    expect(parseChannel(`t/${"%41".repeat(256)}`)?.pk).toBe("A".repeat(256))
  })

  it("rejects malformed percent-encoding", () => {
    for (const pk of ["%", "%4", "%zz", "a%2", "%E0%A4", "%C3", "%FF", "%ED%A0%80"]) {
      expect(parseChannel(`orders/${pk}`), pk).toBeUndefined()
    }
  })
})

describe("isValidRequestId", () => {
  it("accepts 1 to 128 characters of [A-Za-z0-9._-]", () => {
    for (const id of ["a", "abc-123_X.y", "550e8400-e29b-41d4-a716-446655440000", "x".repeat(128)]) {
      expect(isValidRequestId(id), id).toBe(true)
    }
  })

  it("rejects empty, too long, spaces, slashes, non-ASCII and line breaks", () => {
    for (const id of ["", "x".repeat(129), "a b", "a/b", "ä", "abc\n", "\nabc", "a\r\nX-Injected: 1", "a:b", "a%20b"]) {
      expect(isValidRequestId(id), JSON.stringify(id)).toBe(false)
    }
  })
})

const ok = (body: unknown): Grant => {
  const r = parseGrant(typeof body === "string" ? body : JSON.stringify(body))
  if (r._tag === "Invalid") throw new Error(`expected a grant, got: ${r.reason}`)
  return r.grant
}

const refused = (body: unknown): string => {
  const r = parseGrant(typeof body === "string" ? body : JSON.stringify(body))
  if (r._tag === "Valid") throw new Error(`expected a refusal, got ${JSON.stringify(r.grant)}`)
  expect(r.reason.length).toBeGreaterThan(0)
  return r.reason
}

describe("parseGrant", () => {
  it("parses a grant as docs/auth.md describes it", () => {
    const g = ok({
      user_id: "alice",
      tables: { orders: ["id", "status", "total_cents", "updated_at"], line_items: ["id", "qty"] },
      roots: ["orders"],
      ttl_seconds: 60,
      initial_data: { any: "json" },
    })
    expect(g.userId).toBe("alice")
    expect({ ...g.tables }).toEqual({
      orders: ["id", "status", "total_cents", "updated_at"],
      line_items: ["id", "qty"],
    })
    expect(g.roots).toEqual(["orders"])
    expect(g.ttlSeconds).toBe(60)
    expect(g.initialData).toBe('{"any":"json"}')
  })

  it("defaults: no tables grants nothing, no roots means every table, no ttl means the configured default", () => {
    const g = ok({ user_id: "bob" })
    expect(Object.keys(g.tables)).toEqual([])
    expect(g.roots).toBeNull()
    expect(g.ttlSeconds).toBeNull()
    expect(g.initialData).toBeUndefined()
  })

  it("refuses a missing, empty, non-string or overlong user_id", () => {
    refused({ tables: {} })
    refused({ user_id: "" })
    refused({ user_id: 42 })
    refused({ user_id: null })
    refused({ user_id: ["alice"] })
    refused({ user_id: "x".repeat(513) })
    expect(ok({ user_id: "x".repeat(512) }).userId).toHaveLength(512)
  })

  it("refuses a body that is not a JSON object", () => {
    for (const body of ["", "not json", "[]", '[{"user_id":"a"}]', "null", "42", '"alice"', "true", '{"user_id":"a"']) {
      refused(body)
    }
  })

  it("refuses tables of the wrong shape as a whole", () => {
    refused({ user_id: "a", tables: [] })
    refused({ user_id: "a", tables: ["orders"] })
    refused({ user_id: "a", tables: "orders" })
    refused({ user_id: "a", tables: { orders: ["id", 1] } })
    refused({ user_id: "a", tables: { orders: "id" } })
    refused({ user_id: "a", tables: { orders: { id: true } } })
    refused({ user_id: "a", tables: { orders: ["id"], line_items: [null] } })
  })

  it("reads null table columns as the empty list (the PK only)", () => {
    const g = ok({ user_id: "a", tables: { orders: null } })
    expect(g.tables["orders"]).toEqual([])
    expect(checkChannel(g, "orders")).toBe("ok")
  })

  it("treats `*` as a column literally named *", () => {
    const g = ok({ user_id: "a", tables: { orders: ["*"] } })
    expect([...makeWhitelist(g.tables).tables.get("orders")!]).toEqual(["*"])
  })

  it("refuses roots of the wrong shape", () => {
    refused({ user_id: "a", roots: "orders" })
    refused({ user_id: "a", roots: [1] })
    refused({ user_id: "a", roots: { orders: true } })
    expect(ok({ user_id: "a", roots: null }).roots).toBeNull()
    expect(ok({ user_id: "a", roots: [] }).roots).toEqual([])
  })

  it("accepts ttl_seconds 0 (never refresh) up to one year and refuses anything else", () => {
    expect(ok({ user_id: "a", ttl_seconds: 0 }).ttlSeconds).toBe(0)
    expect(ok({ user_id: "a", ttl_seconds: 31_536_000 }).ttlSeconds).toBe(31_536_000)
    expect(ok({ user_id: "a", ttl_seconds: null }).ttlSeconds).toBeNull()
    expect(ok('{"user_id":"a","ttl_seconds":60.0}').ttlSeconds).toBe(60)
    for (const ttl of [-1, 1.5, "60", true, [60], 31_536_001, 1e300]) refused({ user_id: "a", ttl_seconds: ttl })
  })

  it("maps initial_data null to no frame and keeps every other value, falsy ones included", () => {
    expect(ok({ user_id: "a", initial_data: null }).initialData).toBeUndefined()
    expect(ok({ user_id: "a", initial_data: false }).initialData).toBe("false")
    expect(ok({ user_id: "a", initial_data: 0 }).initialData).toBe("0")
    expect(ok({ user_id: "a", initial_data: "" }).initialData).toBe('""')
    expect(ok({ user_id: "a", initial_data: [1, { b: null }] }).initialData).toBe('[1,{"b":null}]')
  })

  it("keeps a `__proto__` table as plain data: no prototype pollution, no inherited tables", () => {
    const g = ok('{"user_id":"a","tables":{"__proto__":["id","secret"],"orders":["id"]}}')
    expect(Object.keys(g.tables).sort()).toEqual(["__proto__", "orders"])
    expect(Object.getOwnPropertyDescriptor(g.tables, "__proto__")?.value).toEqual(["id", "secret"])
    expect(({} as Record<string, unknown>)["secret"]).toBeUndefined()
    expect(Object.keys(Object.prototype)).toEqual([])
    // Had the assignment replaced the prototype with the array, its elements would be inherited.
    expect("0" in g.tables).toBe(false)
    expect("length" in g.tables).toBe(false)
    expect(checkChannel(g, "orders")).toBe("ok")
    for (const table of ["constructor", "toString", "hasOwnProperty", "valueOf"]) {
      expect(checkChannel(g, table), table).toBe("not_allowed")
    }
    const w = makeWhitelist(g.tables)
    expect([...w.tables.keys()].sort()).toEqual(["__proto__", "orders"])
  })

  it("does not take user_id or tables from a top-level `__proto__` key", () => {
    refused('{"__proto__":{"user_id":"admin"}}')
    const g = ok('{"user_id":"a","__proto__":{"tables":{"orders":["id"]}}}')
    expect(checkChannel(g, "orders")).toBe("not_allowed")
    expect(checkChannel(ok({ user_id: "a" }), "__proto__")).toBe("not_allowed")
  })
})

describe("checkChannel", () => {
  const g = ok({
    user_id: "a",
    tables: { orders: ["id"], line_items: ["qty"], todo_lists: [] },
    roots: ["orders", "tasks"],
  })

  it("is ok for a root that the grant lists in tables", () => {
    expect(checkChannel(g, "orders")).toBe("ok")
  })

  it("is not_a_root for a granted table that roots does not list", () => {
    expect(checkChannel(g, "line_items")).toBe("not_a_root")
    expect(checkChannel(g, "todo_lists")).toBe("not_a_root")
    expect(checkChannel(g, "customers")).toBe("not_a_root")
  })

  it("is not_allowed for a root that is not a key of tables", () => {
    expect(checkChannel(g, "tasks")).toBe("not_allowed")
  })

  it("without roots, allows exactly the tables of the grant", () => {
    const open = ok({ user_id: "a", tables: { orders: ["id"], line_items: null } })
    expect(checkChannel(open, "orders")).toBe("ok")
    expect(checkChannel(open, "line_items")).toBe("ok")
    expect(checkChannel(open, "customers")).toBe("not_allowed")
  })

  it("with empty roots, allows nothing", () => {
    expect(checkChannel(ok({ user_id: "a", tables: { orders: [] }, roots: [] }), "orders")).toBe("not_a_root")
  })
})

describe("WhitelistPool", () => {
  it("interns equal grants, whatever the order of tables and columns or duplicates", () => {
    const pool = new WhitelistPool()
    const a = pool.acquire({ orders: ["id", "status"], line_items: ["qty"] })
    const b = pool.acquire({ line_items: ["qty", "qty"], orders: ["status", "id"] })
    expect(b).toBe(a)
    expect(pool.size).toBe(1)
    const c = pool.acquire({ orders: ["id", "status"] })
    const d = pool.acquire({ orders: ["id", "status"], line_items: [] })
    expect(c).not.toBe(a)
    expect(d).not.toBe(a)
    expect(d).not.toBe(c)
    expect(pool.size).toBe(3)
  })

  it("keeps a whitelist while any holder remains and forgets it after the last release", () => {
    const pool = new WhitelistPool()
    const tables = { orders: ["id"] }
    const a = pool.acquire(tables)
    pool.acquire(tables)
    pool.release(a)
    expect(pool.size).toBe(1)
    expect(pool.acquire(tables)).toBe(a)
    pool.release(a)
    pool.release(a)
    expect(pool.size).toBe(0)
    const fresh = pool.acquire(tables)
    expect(fresh).not.toBe(a)
    expect(fresh.key).toBe(a.key)
    pool.release(makeWhitelist({ other: [] }))
    expect(pool.size).toBe(1)
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// Property: a grant never says more than the body.

const name = fc.oneof(
  fc.constantFrom("orders", "line_items", "id", "__proto__", "constructor", "toString", "*", ""),
  fc.string({ maxLength: 8 }),
)
const columnsValue = fc.oneof(
  fc.constant(null),
  fc.array(name, { maxLength: 4 }),
  fc.array(fc.oneof(name, fc.jsonValue({ maxDepth: 1 })), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
)
/** An object body written as JSON text, so `__proto__` and duplicate keys reach JSON.parse as a backend would send them. */
const objectText = (entries: ReadonlyArray<readonly [string, string]>) =>
  `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`
const tablesText = fc
  .array(
    fc.tuple(
      name,
      columnsValue.map((v) => JSON.stringify(v)),
    ),
    { maxLength: 5 },
  )
  .map(objectText)
const grantBody = fc
  .record(
    {
      user_id: fc.oneof(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })).map((v) => JSON.stringify(v)),
      tables: fc.oneof(
        tablesText,
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
      ),
      roots: fc.oneof(fc.array(name, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })).map((v) => JSON.stringify(v)),
      ttl_seconds: fc
        .oneof(fc.integer({ min: -5, max: 100 }), fc.double(), fc.jsonValue({ maxDepth: 1 }))
        .map((v) => JSON.stringify(v)),
      initial_data: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    },
    { requiredKeys: [] },
  )
  .map((r) => objectText(Object.entries(r).filter((e): e is [string, string] => e[1] !== undefined)))

const ownValue = (o: unknown, key: string): unknown =>
  typeof o === "object" && o !== null ? Object.getOwnPropertyDescriptor(o, key)?.value : undefined

describe("parseGrant: properties", () => {
  it("property: never throws on arbitrary strings or arbitrary JSON", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v) ?? "null"),
          grantBody,
        ),
        (body) => {
          const r = parseGrant(body)
          return r._tag === "Valid" || r._tag === "Invalid"
        },
      ),
      { numRuns: 2_000 },
    )
  })

  it("property: an accepted grant's whitelist holds only tables and columns literally in the body", () => {
    let accepted = 0
    fc.assert(
      fc.property(grantBody, (body) => {
        const r = parseGrant(body)
        if (r._tag === "Invalid") return
        accepted++
        const input = JSON.parse(body) as unknown
        const inputTables = ownValue(input, "tables")
        expect(ownValue(input, "user_id")).toBe(r.grant.userId)
        const w = makeWhitelist(r.grant.tables)
        for (const [table, cols] of w.tables) {
          const listed = ownValue(inputTables, table)
          expect(Object.hasOwn(inputTables as object, table), `table ${table}`).toBe(true)
          const listedCols = listed === null ? [] : (listed as unknown[])
          for (const c of cols) expect(listedCols, `column ${c} of ${table}`).toContain(c)
        }
        if (r.grant.roots !== null) expect(r.grant.roots).toEqual(ownValue(input, "roots"))
      }),
      { numRuns: 2_000 },
    )
    // The generator must actually reach the accepting path for the property to mean anything.
    expect(accepted).toBeGreaterThan(20)
  })
})
