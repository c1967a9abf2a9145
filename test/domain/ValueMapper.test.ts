// Tests for the pgoutput-text → JSON value mapping (docs/delivery-semantics.md): every type rule, the edge cases PostgreSQL actually
// prints, and properties that every fragment is valid one-line JSON.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { formatPgEpochMicros, jsonString, pgEpochMicrosToUnixMs, toJsonFragment } from "../../domain/ValueMapper.ts"

const map = toJsonFragment

/** Asserts the fragment is valid JSON on one line and returns the parsed value. */
const parsed = (fragment: string | undefined): unknown => {
  expect(fragment).toBeTypeOf("string")
  expect(fragment).not.toMatch(/[\r\n]/)
  return JSON.parse(fragment as string)
}

const isOneLineJson = (fragment: string): boolean => {
  if (/[\r\n]/.test(fragment)) return false
  try {
    JSON.parse(fragment)
    return true
  } catch {
    return false
  }
}

describe("integers", () => {
  it("maps int2/int4 to JSON numbers verbatim", () => {
    expect(map(21, "0")).toBe("0")
    expect(map(21, "-32768")).toBe("-32768")
    expect(map(23, "2147483647")).toBe("2147483647")
    expect(map(23, "-42")).toBe("-42")
  })

  it("rejects text that is not an integer literal", () => {
    for (const bad of ["", "-", "1.5", "01", "+1", " 1", "1 ", "1e3", "abc", "NaN"]) {
      expect(map(23, bad), bad).toBeUndefined()
    }
  })

  it("keeps int8 and numeric as strings without precision loss", () => {
    expect(map(20, "9223372036854775807")).toBe('"9223372036854775807"')
    expect(map(20, "-9223372036854775808")).toBe('"-9223372036854775808"')
    const numeric30 = "123456789012345678901234567890.123456789"
    expect(map(1700, numeric30)).toBe(`"${numeric30}"`)
    expect(map(1700, "NaN")).toBe('"NaN"')
    expect(map(1700, "Infinity")).toBe('"Infinity"')
    expect(map(1700, "-Infinity")).toBe('"-Infinity"')
  })
})

describe("floats", () => {
  it("keeps finite PostgreSQL output verbatim as JSON numbers", () => {
    for (const text of ["1.5", "1e+20", "-0", "3.4028235e+38", "1.5e-07", "0", "-1.7976931348623157e+308"]) {
      expect(map(700, text)).toBe(text)
      expect(map(701, text)).toBe(text)
      expect(parsed(map(701, text))).toBe(Number(text))
    }
  })

  it("maps NaN and infinities to strings", () => {
    expect(map(701, "NaN")).toBe('"NaN"')
    expect(map(701, "Infinity")).toBe('"Infinity"')
    expect(map(700, "-Infinity")).toBe('"-Infinity"')
  })

  it("rejects text that is not a JSON number", () => {
    for (const bad of ["", ".5", "1.", "1e", "inf", "nan", "+1", "0x10", "1 "]) {
      expect(map(701, bad), bad).toBeUndefined()
    }
  })
})

describe("bool", () => {
  it("maps t/f and rejects anything else", () => {
    expect(map(16, "t")).toBe("true")
    expect(map(16, "f")).toBe("false")
    expect(map(16, "true")).toBeUndefined()
    expect(map(16, "")).toBeUndefined()
  })
})

describe("json and jsonb", () => {
  it("compacts jsonb output style", () => {
    expect(map(3802, '{"a": 1, "b": [1, 2]}')).toBe('{"a":1,"b":[1,2]}')
  })

  it("compacts json text with newlines and tabs, keeping strings and big numbers verbatim", () => {
    const text =
      '{\n\t"name": "a b  c",\r\n  "quote": "say \\"hi\\" ",\n  "big": 12345678901234567890123,\n  "f": 1.50e+10\n}'
    const out = map(114, text)
    expect(out).toBe('{"name":"a b  c","quote":"say \\"hi\\" ","big":12345678901234567890123,"f":1.50e+10}')
    expect(parsed(out)).toEqual({
      name: "a b  c",
      quote: 'say "hi" ',
      big: Number("12345678901234567890123"),
      f: 1.5e10,
    })
  })

  it("returns already-compact text unchanged", () => {
    const text = '[1,"x",{"k":null},true,false,-0.5e-3]'
    expect(map(114, text)).toBe(text)
  })

  it("accepts scalars, empty containers and surrounding whitespace", () => {
    expect(map(114, "  42 ")).toBe("42")
    expect(map(114, '"s"')).toBe('"s"')
    expect(map(3802, "null")).toBe("null")
    expect(map(3802, "{ }")).toBe("{}")
    expect(map(3802, "[ ]")).toBe("[]")
    expect(map(3802, '[[], {}, [{"a": []}]]')).toBe('[[],{},[{"a":[]}]]')
    expect(map(114, '"\\u00e9\\/\\n"')).toBe('"\\u00e9\\/\\n"')
  })

  it("handles deep nesting without recursion", () => {
    const depth = 100_000
    const text = "[".repeat(depth) + "]".repeat(depth)
    expect(map(114, text)).toBe(text)
  })

  it("rejects invalid JSON", () => {
    for (const bad of [
      "",
      " ",
      "{",
      "[1,]",
      '{"a":1,}',
      '{"a" 1}',
      "{a:1}",
      "[1 2]",
      "01",
      "1.",
      "tru",
      "nul",
      "[1]]",
      "[1]x",
      '"unterminated',
      '"bad \\x escape"',
      '"bad \\u12 escape"',
      '"raw\nnewline"',
      "{]",
      "[}",
      "NaN",
    ]) {
      expect(map(114, bad), bad).toBeUndefined()
    }
  })

  it("compacts any pretty-printed JSON value to one line that parses to the same value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const out = map(114, JSON.stringify(v, null, 2))
        expect(out).toBeDefined()
        expect(out).not.toMatch(/[\r\n]/)
        expect(JSON.parse(out as string)).toEqual(JSON.parse(JSON.stringify(v)))
        expect(out).toBe(JSON.stringify(v))
      }),
    )
  })
})

describe("bytea", () => {
  it("maps hex format to padded base64", () => {
    expect(map(17, "\\x")).toBe('""')
    expect(map(17, "\\x00ff")).toBe('"AP8="')
    expect(map(17, "\\x48656c6c6f")).toBe('"SGVsbG8="')
    expect(map(17, "\\x48656C6C6F21")).toBe('"SGVsbG8h"')
    expect(map(17, "\\x61")).toBe('"YQ=="')
  })

  it("rejects escape format and malformed hex", () => {
    expect(map(17, "Hello")).toBeUndefined()
    expect(map(17, "\\000abc")).toBeUndefined()
    expect(map(17, "\\x0")).toBeUndefined()
    expect(map(17, "\\x0g")).toBeUndefined()
    expect(map(17, "\\x00112g")).toBeUndefined()
    expect(map(17, "\\x€€")).toBeUndefined()
    expect(map(17, "")).toBeUndefined()
  })

  it("matches Buffer base64 for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const hex = "\\x" + Buffer.from(bytes).toString("hex")
        expect(map(17, hex)).toBe(JSON.stringify(Buffer.from(bytes).toString("base64")))
      }),
    )
  })

  it("handles large values (chunked string building)", () => {
    const bytes = new Uint8Array(100_000).map((_, k) => (k * 7) & 255)
    const hex = "\\x" + Buffer.from(bytes).toString("hex")
    expect(map(17, hex)).toBe(JSON.stringify(Buffer.from(bytes).toString("base64")))
  })
})

describe("timestamps", () => {
  it("maps timestamptz with zero offset", () => {
    expect(map(1184, "2026-05-18 08:30:12+00")).toBe('"2026-05-18T08:30:12Z"')
    expect(map(1184, "2026-05-18 08:30:12.123456+00")).toBe('"2026-05-18T08:30:12.123456Z"')
    expect(map(1184, "2026-05-18 08:30:12.5+00")).toBe('"2026-05-18T08:30:12.5Z"')
    expect(map(1184, "2026-05-18 08:30:12.120000+00")).toBe('"2026-05-18T08:30:12.12Z"')
    expect(map(1184, "2026-05-18 08:30:12.000000+00")).toBe('"2026-05-18T08:30:12Z"')
    expect(map(1184, "2026-05-18 08:30:12-00:00")).toBe('"2026-05-18T08:30:12Z"')
  })

  it("converts offsets to UTC, keeping microseconds exactly", () => {
    expect(map(1184, "2026-05-18 14:00:12.000001+05:30")).toBe('"2026-05-18T08:30:12.000001Z"')
    expect(map(1184, "2026-05-18 00:30:12.999999-08")).toBe('"2026-05-18T08:30:12.999999Z"')
    expect(map(1184, "2026-05-18 03:00:00+05")).toBe('"2026-05-17T22:00:00Z"')
    expect(map(1184, "2026-05-18 05:00:00-03:30:15")).toBe('"2026-05-18T08:30:15Z"')
    expect(map(1184, "2024-02-28 22:00:00-03")).toBe('"2024-02-29T01:00:00Z"')
    expect(map(1184, "2023-12-31 23:30:00-01")).toBe('"2024-01-01T00:30:00Z"')
    expect(map(1184, "1969-12-31 23:59:59.5-00:00:01")).toBe('"1970-01-01T00:00:00.5Z"')
  })

  it("agrees with Date for arbitrary offsets", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("0002-01-01T00:00:00Z"), max: new Date("9998-12-31T00:00:00Z"), noInvalidDate: true }),
        fc.integer({ min: -15 * 3600, max: 15 * 3600 }),
        (date, offset) => {
          const local = new Date(date.getTime() + offset * 1000).toISOString()
          const abs = Math.abs(offset)
          const zone =
            (offset < 0 ? "-" : "+") +
            String(Math.floor(abs / 3600)).padStart(2, "0") +
            ":" +
            String(Math.floor(abs / 60) % 60).padStart(2, "0") +
            ":" +
            String(abs % 60).padStart(2, "0")
          const text = local.slice(0, 10) + " " + local.slice(11, 23) + zone
          const out = parsed(map(1184, text)) as string
          expect(Date.parse(out)).toBe(date.getTime())
          expect(out).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$/)
        },
      ),
    )
  })

  it("maps timestamp without zone as UTC", () => {
    expect(map(1114, "2026-05-18 08:30:12")).toBe('"2026-05-18T08:30:12Z"')
    expect(map(1114, "2026-05-18 08:30:12.010")).toBe('"2026-05-18T08:30:12.01Z"')
    expect(map(1114, "2026-05-18T08:30:12.123456")).toBe('"2026-05-18T08:30:12.123456Z"')
    expect(map(1114, "0001-01-01 00:00:00")).toBe('"0001-01-01T00:00:00Z"')
    expect(map(1114, "9999-12-31 23:59:59.999999")).toBe('"9999-12-31T23:59:59.999999Z"')
  })

  it("rejects infinity, BC, five-digit years and malformed text", () => {
    for (const bad of [
      "infinity",
      "-infinity",
      "2026-05-18 08:30:12+00 BC",
      "0044-03-15 12:00:00+00 BC",
      "10000-01-01 00:00:00+00",
      "2026-05-18 08:30:12",
      "2026-05-18 08:30:12.+00",
      "2026-13-01 00:00:00+00",
      "2026-02-29 00:00:00+00",
      "2026-05-18 24:00:00+00",
      "2026-05-18 08:60:00+00",
      "2026-05-18 08:30:12+0",
      "2026-05-18 08:30:12+05:3",
      "2026-05-18 08:30:12+00 ",
      "9999-12-31 23:00:00-05",
      "0001-01-01 00:30:00+01",
      "",
    ]) {
      expect(map(1184, bad), bad).toBeUndefined()
    }
    expect(map(1114, "infinity")).toBeUndefined()
    expect(map(1114, "2026-05-18 08:30:12+00")).toBeUndefined()
    expect(map(1114, "2026-05-18 08:30:12 BC")).toBeUndefined()
    expect(map(1114, "2026/05/18 08:30:12")).toBeUndefined()
  })
})

describe("formatPgEpochMicros / pgEpochMicrosToUnixMs", () => {
  it("formats the PostgreSQL epoch and trims the fraction", () => {
    expect(formatPgEpochMicros(0n)).toBe("2000-01-01T00:00:00Z")
    expect(formatPgEpochMicros(1n)).toBe("2000-01-01T00:00:00.000001Z")
    expect(formatPgEpochMicros(-1n)).toBe("1999-12-31T23:59:59.999999Z")
    expect(formatPgEpochMicros(123_400n)).toBe("2000-01-01T00:00:00.1234Z")
    const at = BigInt(Date.UTC(2026, 4, 18, 8, 30, 12) / 1000 - 946684800) * 1_000_000n
    expect(formatPgEpochMicros(at)).toBe("2026-05-18T08:30:12Z")
    expect(formatPgEpochMicros(at + 123_400n)).toBe("2026-05-18T08:30:12.1234Z")
    expect(pgEpochMicrosToUnixMs(0n)).toBe(946684800000)
    expect(pgEpochMicrosToUnixMs(at + 999_999n)).toBe(Date.UTC(2026, 4, 18, 8, 30, 12, 999))
    expect(pgEpochMicrosToUnixMs(-1n)).toBe(946684799999)
  })

  it("round-trips through Date.parse at millisecond precision", () => {
    const min = (-62135596800n - 946684800n) * 1_000_000n
    const max = (253402300799n - 946684800n) * 1_000_000n + 999_999n
    fc.assert(
      fc.property(fc.bigInt({ min, max }), (micros) => {
        const text = formatPgEpochMicros(micros)
        expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$/)
        expect(Date.parse(text)).toBe(pgEpochMicrosToUnixMs(micros))
      }),
    )
  })
})

describe("string-mapped types", () => {
  it("sends date, time, interval, uuid, inet, text, enums and unknown OIDs as JSON strings", () => {
    const cases: Array<[number, string]> = [
      [1082, "2026-05-18"],
      [1083, "08:30:12.5"],
      [1266, "08:30:12+05:30"],
      [1186, "1 year 2 mons 3 days 04:05:06"],
      [2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
      [869, "192.168.0.1/24"],
      [650, "10.0.0.0/8"],
      [25, "hello"],
      [1043, "varchar"],
      [1042, "padded   "],
      [19, "name"],
      [18, "c"],
      [26, "12345"],
      [99999, "enum_label"],
      [1020, "(1,1),(0,0);(2,2),(1,1)"],
    ]
    for (const [oid, text] of cases) expect(map(oid, text)).toBe(JSON.stringify(text))
  })

  it("escapes newlines, quotes and unicode into valid one-line JSON", () => {
    for (const text of ['line1\nline2\r\n"quoted" \\ back', "tab\there", "żółw 🐢 \u2028 \u0000", ""]) {
      expect(parsed(map(25, text))).toBe(text)
      expect(jsonString(text)).toBe(JSON.stringify(text))
    }
  })

  it("round-trips any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(JSON.parse(map(25, s) as string)).toBe(s)
      }),
    )
  })
})

describe("arrays", () => {
  it("maps one-dimensional arrays by element type", () => {
    expect(map(1007, "{}")).toBe("[]")
    expect(map(1007, "{1,2,3}")).toBe("[1,2,3]")
    expect(map(1005, "{-1,NULL,3}")).toBe("[-1,null,3]")
    expect(map(1016, "{9223372036854775807,-1}")).toBe('["9223372036854775807","-1"]')
    expect(map(1231, "{1.50,NaN}")).toBe('["1.50","NaN"]')
    expect(map(1022, "{1.5,NaN,-Infinity,1e+20}")).toBe('[1.5,"NaN","-Infinity",1e+20]')
    expect(map(1021, "{0.5}")).toBe("[0.5]")
    expect(map(1000, "{t,f,NULL}")).toBe("[true,false,null]")
    expect(map(2951, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}")).toBe('["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]')
    expect(map(1041, "{10.0.0.1,::1}")).toBe('["10.0.0.1","::1"]')
    expect(map(1182, "{2026-05-18}")).toBe('["2026-05-18"]')
    expect(map(1183, '{"08:30:00"}')).toBe('["08:30:00"]')
    expect(map(1187, '{"1 day",00:00:01}')).toBe('["1 day","00:00:01"]')
    expect(map(1003, "{pg_class}")).toBe('["pg_class"]')
    expect(map(1014, '{"a  ",b}')).toBe('["a  ","b"]')
    expect(map(1015, "{x}")).toBe('["x"]')
  })

  it("handles NULL, quoting, escapes and whitespace in text arrays", () => {
    expect(map(1009, '{a,NULL,null,"NULL","b c"}')).toBe('["a",null,null,"NULL","b c"]')
    expect(map(1009, '{"a,b","say \\"hi\\"","back\\\\slash"}')).toBe('["a,b","say \\"hi\\"","back\\\\slash"]')
    expect(parsed(map(1009, '{"a,b","say \\"hi\\"","back\\\\slash"}'))).toEqual(["a,b", 'say "hi"', "back\\slash"])
    expect(map(1009, "{  a  , b c ,\tNuLl }")).toBe('["a","b c",null]')
    expect(map(1009, '{ "" , "x" }')).toBe('["","x"]')
    expect(parsed(map(1009, '{"line\nbreak","ü"}'))).toEqual(["line\nbreak", "ü"])
    expect(map(1007, "{ }")).toBe("[]")
  })

  it("maps timestamp, json, jsonb and bytea elements", () => {
    expect(map(1185, '{"2026-05-18 08:30:12.5+00","2026-05-18 14:00:12+05:30",NULL}')).toBe(
      '["2026-05-18T08:30:12.5Z","2026-05-18T08:30:12Z",null]',
    )
    expect(map(1115, '{"2026-05-18 08:30:12"}')).toBe('["2026-05-18T08:30:12Z"]')
    expect(map(3807, '{"{\\"a\\": 1, \\"b\\": [1, 2]}",NULL,"12345678901234567890123"}')).toBe(
      '[{"a":1,"b":[1,2]},null,12345678901234567890123]',
    )
    expect(map(199, '{"[1, \\"x y\\"]"}')).toBe('[[1,"x y"]]')
    expect(map(1001, '{"\\\\x00ff","\\\\x"}')).toBe('["AP8=",""]')
  })

  it("sends multi-dimensional arrays and explicit bounds as raw text", () => {
    expect(map(1007, "{{1,2},{3,4}}")).toBe('"{{1,2},{3,4}}"')
    expect(map(1007, "[0:1]={1,2}")).toBe('"[0:1]={1,2}"')
    expect(map(1009, '{{"a"},{"b"}}')).toBe('"{{\\"a\\"},{\\"b\\"}}"')
  })

  it("is unmappable when an element is", () => {
    expect(map(1185, "{infinity,NULL}")).toBeUndefined()
    expect(map(1185, '{"2026-05-18 08:30:12+00",-infinity}')).toBeUndefined()
    expect(map(1007, "{1,x}")).toBeUndefined()
    expect(map(1001, '{"plain escape"}')).toBeUndefined()
    expect(map(3807, '{"{bad"}')).toBeUndefined()
  })

  it("rejects malformed literals", () => {
    for (const bad of [
      "",
      "1,2",
      "{",
      "{1",
      "{1,",
      "{1,}",
      "{,1}",
      '{"a}',
      "{a}b",
      '{"a"b}',
      "{a\\b}",
      "{1,{2}}",
      "}",
    ]) {
      expect(map(1007, bad), bad).toBeUndefined()
    }
  })

  it("sends arrays of unlisted element types as raw text", () => {
    expect(map(1020, "{(1,1),(0,0)}")).toBe('"{(1,1),(0,0)}"')
    expect(map(1028, "{1,2}")).toBe('"{1,2}"')
    expect(map(1263, "{a,b}")).toBe('"{a,b}"')
  })

  it("maps any int4 array and text array literal PostgreSQL would print", () => {
    const quote = (s: string) => '"' + s.replace(/[\\"]/g, (c) => "\\" + c) + '"'
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))), (xs) => {
        const literal = "{" + xs.map((x) => (x === null ? "NULL" : String(x))).join(",") + "}"
        expect(JSON.parse(map(1007, literal) as string)).toEqual(xs)
      }),
    )
    fc.assert(
      fc.property(fc.array(fc.option(fc.string())), (xs) => {
        const literal = "{" + xs.map((x) => (x === null ? "NULL" : quote(x))).join(",") + "}"
        expect(JSON.parse(map(1009, literal) as string)).toEqual(xs)
      }),
    )
  })
})

describe("every fragment is valid one-line JSON", () => {
  const oids = [21, 23, 20, 1700, 700, 701, 16, 114, 3802, 17, 1114, 1184, 25, 1007, 1009, 1016, 1022, 1185, 3807]
  const pieces = fc.constantFrom(
    "{",
    "}",
    "[",
    "]",
    ",",
    '"',
    "\\",
    "\\x",
    "NULL",
    "-",
    "+",
    ".",
    "e",
    "0",
    "1",
    "9",
    " ",
    "\n",
    ":",
    "t",
    "f",
    "NaN",
    "Infinity",
    "2026-05-18 08:30:12",
    "+05:30",
    "true",
    "null",
  )
  const garbage = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.array(pieces, { maxLength: 12 }).map((xs) => xs.join("")),
  )

  it("returns undefined or valid one-line JSON for arbitrary text", () => {
    fc.assert(
      fc.property(fc.constantFrom(...oids), garbage, (oid, text) => {
        const out = map(oid, text)
        if (out !== undefined) expect(isOneLineJson(out), `${oid} ${JSON.stringify(text)} → ${out}`).toBe(true)
      }),
      { numRuns: 5000 },
    )
  })
})
