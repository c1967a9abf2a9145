// Maps PostgreSQL pgoutput text-form column values to compact JSON text fragments (docs/delivery-semantics.md, "Value mapping"). It runs
// once per column per change, so it scans char codes and slices strings instead of using regexes or parsing values.

// Type OIDs from pg_type.dat; they are fixed for built-in types across PostgreSQL versions.
const BOOL = 16
const BYTEA = 17
const INT8 = 20
const INT2 = 21
const INT4 = 23
const TEXT = 25
const JSON_OID = 114
const FLOAT4 = 700
const FLOAT8 = 701
const INET = 869
const BPCHAR = 1042
const VARCHAR = 1043
const DATE = 1082
const TIME = 1083
const TIMESTAMP = 1114
const TIMESTAMPTZ = 1184
const INTERVAL = 1186
const NUMERIC = 1700
const UUID = 2950
const JSONB = 3802
const NAME = 19

const C_TAB = 9
const C_LF = 10
const C_VT = 11
const C_FF = 12
const C_CR = 13
const C_SPACE = 32
const C_QUOTE = 34
const C_PLUS = 43
const C_COMMA = 44
const C_MINUS = 45
const C_DOT = 46
const C_SLASH = 47
const C_0 = 48
const C_1 = 49
const C_9 = 57
const C_COLON = 58
const C_E_UPPER = 69
const C_T_UPPER = 84
const C_LBRACKET = 91
const C_BACKSLASH = 92
const C_RBRACKET = 93
const C_B = 98
const C_E = 101
const C_F = 102
const C_N = 110
const C_R = 114
const C_T = 116
const C_U = 117
const C_X = 120
const C_LBRACE = 123
const C_RBRACE = 125

/** JSON string literal of a text (JSON.stringify). */
export const jsonString = (text: string): string => JSON.stringify(text)

/** Maps one column value from pgoutput text form to a compact JSON text fragment, or returns undefined when the value cannot be mapped (the caller then sends JSON.stringify(text) and counts a metric). */
export const toJsonFragment = (typeOid: number, text: string): string | undefined => {
  switch (typeOid) {
    case INT2:
    case INT4:
      return isIntegerLiteral(text) ? text : undefined
    case INT8:
    case NUMERIC:
      // Strings, because JavaScript numbers would silently lose precision beyond 2^53.
      return jsonString(text)
    case FLOAT4:
    case FLOAT8:
      return floatFragment(text)
    case BOOL:
      return text === "t" ? "true" : text === "f" ? "false" : undefined
    case JSON_OID:
    case JSONB:
      return compactJson(text)
    case BYTEA:
      return byteaFragment(text)
    case TIMESTAMP:
      return timestampFragment(text, false)
    case TIMESTAMPTZ:
      return timestampFragment(text, true)
    case 1005:
      return arrayFragment(INT2, text)
    case 1007:
      return arrayFragment(INT4, text)
    case 1016:
      return arrayFragment(INT8, text)
    case 1021:
      return arrayFragment(FLOAT4, text)
    case 1022:
      return arrayFragment(FLOAT8, text)
    case 1000:
      return arrayFragment(BOOL, text)
    case 1009:
      return arrayFragment(TEXT, text)
    case 1015:
      return arrayFragment(VARCHAR, text)
    case 1014:
      return arrayFragment(BPCHAR, text)
    case 2951:
      return arrayFragment(UUID, text)
    case 1231:
      return arrayFragment(NUMERIC, text)
    case 1115:
      return arrayFragment(TIMESTAMP, text)
    case 1185:
      return arrayFragment(TIMESTAMPTZ, text)
    case 1182:
      return arrayFragment(DATE, text)
    case 199:
      return arrayFragment(JSON_OID, text)
    case 3807:
      return arrayFragment(JSONB, text)
    case 1001:
      return arrayFragment(BYTEA, text)
    case 1041:
      return arrayFragment(INET, text)
    case 1003:
      return arrayFragment(NAME, text)
    case 1183:
      return arrayFragment(TIME, text)
    case 1187:
      return arrayFragment(INTERVAL, text)
    default:
      return jsonString(text)
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Numbers

const isDigit = (c: number): boolean => c >= C_0 && c <= C_9

// Accepts exactly the JSON integer grammar, so the text can be embedded verbatim (no leading zeros, no "+").
const isIntegerLiteral = (s: string): boolean => {
  const n = s.length
  let i = s.charCodeAt(0) === C_MINUS ? 1 : 0
  if (i >= n) return false
  const first = s.charCodeAt(i)
  if (first === C_0) return i + 1 === n
  if (first < C_1 || first > C_9) return false
  for (i++; i < n; i++) if (!isDigit(s.charCodeAt(i))) return false
  return true
}

/** Index just after a JSON number starting at i, or -1. charCodeAt past the end is NaN, which fails every test. */
const scanNumber = (s: string, i: number): number => {
  if (s.charCodeAt(i) === C_MINUS) i++
  const c = s.charCodeAt(i)
  if (c === C_0) i++
  else if (c >= C_1 && c <= C_9) {
    i++
    while (isDigit(s.charCodeAt(i))) i++
  } else return -1
  if (s.charCodeAt(i) === C_DOT) {
    const start = ++i
    while (isDigit(s.charCodeAt(i))) i++
    if (i === start) return -1
  }
  const e = s.charCodeAt(i)
  if (e === C_E || e === C_E_UPPER) {
    i++
    const sign = s.charCodeAt(i)
    if (sign === C_PLUS || sign === C_MINUS) i++
    const start = i
    while (isDigit(s.charCodeAt(i))) i++
    if (i === start) return -1
  }
  return i
}

// PostgreSQL's shortest-exact float output ("1.5", "1e+20", "-0") is already valid JSON, so it is kept verbatim.
const floatFragment = (s: string): string | undefined => {
  if (s.length > 0 && scanNumber(s, 0) === s.length) return s
  if (s === "NaN" || s === "Infinity" || s === "-Infinity") return '"' + s + '"'
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------------
// json / jsonb

const ST_VALUE = 0
const ST_ARRAY_START = 1
const ST_OBJECT_START = 2
const ST_KEY = 3
const ST_COLON = 4
const ST_AFTER = 5
const K_ARRAY = 0
const K_OBJECT = 1

const isJsonWs = (c: number): boolean => c === C_SPACE || c === C_LF || c === C_CR || c === C_TAB

const isHex = (c: number): boolean => (c >= C_0 && c <= C_9) || ((c | 0x20) >= 97 && (c | 0x20) <= 102)

/** Index just after the JSON string starting at the quote at i, or -1 when it is malformed. */
const scanString = (s: string, i: number): number => {
  const n = s.length
  i++
  while (i < n) {
    const c = s.charCodeAt(i)
    if (c === C_QUOTE) return i + 1
    if (c === C_BACKSLASH) {
      const e = s.charCodeAt(i + 1)
      if (e === C_U) {
        if (!isHex(s.charCodeAt(i + 2)) || !isHex(s.charCodeAt(i + 3))) return -1
        if (!isHex(s.charCodeAt(i + 4)) || !isHex(s.charCodeAt(i + 5))) return -1
        i += 6
      } else if (
        e === C_QUOTE ||
        e === C_BACKSLASH ||
        e === C_SLASH ||
        e === C_B ||
        e === C_F ||
        e === C_N ||
        e === C_R ||
        e === C_T
      ) {
        i += 2
      } else return -1
    } else if (c < C_SPACE) return -1
    else i++
  }
  return -1
}

const matchWord = (s: string, i: number, word: string): number => (s.startsWith(word, i) ? i + word.length : -1)

/**
 * Validates JSON text and drops whitespace outside strings. Numbers and strings are copied verbatim (never parsed), so
 * big numbers and escapes survive exactly. An explicit container stack instead of recursion keeps deep nesting safe.
 */
/** Validates JSON text and drops insignificant whitespace, keeping numbers digit for digit. */
export const compactJson = (s: string): string | undefined => {
  const n = s.length
  const stack: number[] = []
  let depth = 0
  let state = ST_VALUE
  let out = ""
  let seg = 0
  let i = 0
  for (;;) {
    let j = i
    while (j < n && isJsonWs(s.charCodeAt(j))) j++
    if (j !== i) {
      out += s.slice(seg, i)
      seg = i = j
    }
    if (i >= n) {
      if (state !== ST_AFTER || depth !== 0) return undefined
      return seg === 0 ? s : out + s.slice(seg)
    }
    const c = s.charCodeAt(i)
    if (state === ST_AFTER) {
      if (depth === 0) return undefined
      const kind = stack[depth - 1]
      if (c === C_COMMA) state = kind === K_OBJECT ? ST_KEY : ST_VALUE
      else if (c === (kind === K_OBJECT ? C_RBRACE : C_RBRACKET)) depth--
      else return undefined
      i++
      continue
    }
    if (state === ST_COLON) {
      if (c !== C_COLON) return undefined
      i++
      state = ST_VALUE
      continue
    }
    if (state === ST_OBJECT_START || state === ST_KEY) {
      if (c === C_RBRACE && state === ST_OBJECT_START) {
        i++
        depth--
        state = ST_AFTER
        continue
      }
      if (c !== C_QUOTE) return undefined
      i = scanString(s, i)
      if (i < 0) return undefined
      state = ST_COLON
      continue
    }
    if (state === ST_ARRAY_START && c === C_RBRACKET) {
      i++
      depth--
      state = ST_AFTER
      continue
    }
    if (c === C_QUOTE) i = scanString(s, i)
    else if (c === C_LBRACE || c === C_LBRACKET) {
      stack[depth++] = c === C_LBRACE ? K_OBJECT : K_ARRAY
      state = c === C_LBRACE ? ST_OBJECT_START : ST_ARRAY_START
      i++
      continue
    } else if (c === C_MINUS || isDigit(c)) i = scanNumber(s, i)
    else if (c === C_T) i = matchWord(s, i, "true")
    else if (c === C_F) i = matchWord(s, i, "false")
    else if (c === C_N) i = matchWord(s, i, "null")
    else return undefined
    if (i < 0) return undefined
    state = ST_AFTER
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// bytea

const B64_CODES = Uint8Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", (ch) =>
  ch.charCodeAt(0),
)
const C_PAD = 61

const HEX_VALUES = (() => {
  const t = new Int8Array(128).fill(-1)
  for (let d = 0; d < 10; d++) t[C_0 + d] = d
  for (let d = 0; d < 6; d++) {
    t[65 + d] = 10 + d
    t[97 + d] = 10 + d
  }
  return t
})()

const hexByte = (s: string, i: number): number => {
  const hi = HEX_VALUES[s.charCodeAt(i)] ?? -1
  const lo = HEX_VALUES[s.charCodeAt(i + 1)] ?? -1
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo
}

// fromCharCode.apply has an argument-count limit, so large buffers are converted in chunks.
const ASCII_CHUNK = 0x2000
const asciiToString = (bytes: Uint8Array): string => {
  if (bytes.length <= ASCII_CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[])
  let out = ""
  for (let k = 0; k < bytes.length; k += ASCII_CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(k, k + ASCII_CHUNK) as unknown as number[])
  }
  return out
}

// Only the hex output format (bytea_output = hex, the default) is supported; the escape format is reported unmappable.
const byteaFragment = (s: string): string | undefined => {
  const n = s.length
  if (n < 2 || s.charCodeAt(0) !== C_BACKSLASH || s.charCodeAt(1) !== C_X || (n & 1) !== 0) return undefined
  const byteLen = (n - 2) >> 1
  if (byteLen === 0) return '""'
  const out = new Uint8Array(4 * Math.ceil(byteLen / 3) + 2)
  out[0] = C_QUOTE
  let o = 1
  let i = 2
  const fullEnd = 2 + Math.floor(byteLen / 3) * 6
  while (i < fullEnd) {
    const b0 = hexByte(s, i)
    const b1 = hexByte(s, i + 2)
    const b2 = hexByte(s, i + 4)
    if (b0 < 0 || b1 < 0 || b2 < 0) return undefined
    out[o++] = B64_CODES[b0 >> 2]!
    out[o++] = B64_CODES[((b0 & 3) << 4) | (b1 >> 4)]!
    out[o++] = B64_CODES[((b1 & 15) << 2) | (b2 >> 6)]!
    out[o++] = B64_CODES[b2 & 63]!
    i += 6
  }
  const rest = byteLen % 3
  if (rest > 0) {
    const b0 = hexByte(s, i)
    const b1 = rest === 2 ? hexByte(s, i + 2) : 0
    if (b0 < 0 || b1 < 0) return undefined
    out[o++] = B64_CODES[b0 >> 2]!
    out[o++] = B64_CODES[((b0 & 3) << 4) | (b1 >> 4)]!
    out[o++] = rest === 2 ? B64_CODES[(b1 & 15) << 2]! : C_PAD
    out[o++] = C_PAD
  }
  out[o] = C_QUOTE
  return asciiToString(out)
}

// ---------------------------------------------------------------------------------------------------------------------
// timestamps

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
const daysFromCivil = (y: number, m: number, d: number): number => {
  if (m <= 2) y--
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const pad2 = (v: number): string => (v < 10 ? "0" + v : "" + v)
const pad4 = (v: number): string => (v >= 1000 || v < 0 ? "" + v : ("000" + v).slice(-4))

/** RFC 3339 UTC text of whole Unix seconds plus an already formatted fraction ("" or ".123"). */
const formatUnixSeconds = (secs: number, frac: string): string => {
  const days = Math.floor(secs / 86400)
  const sod = secs - days * 86400
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0)
  const hh = Math.floor(sod / 3600)
  const mi = Math.floor((sod % 3600) / 60)
  const ss = sod % 60
  return pad4(y) + "-" + pad2(m) + "-" + pad2(d) + "T" + pad2(hh) + ":" + pad2(mi) + ":" + pad2(ss) + frac + "Z"
}

/** Value of two ASCII digits at i, or -1. */
const digits2 = (s: string, i: number): number => {
  const a = s.charCodeAt(i) - C_0
  const b = s.charCodeAt(i + 1) - C_0
  // NaN (past the end) fails both comparisons too.
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

const daysInMonth = (y: number, m: number): number =>
  m === 2
    ? y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
      ? 29
      : 28
    : m === 4 || m === 6 || m === 9 || m === 11
      ? 30
      : 31

// Unix seconds of 0001-01-01 and 10000-01-01: RFC 3339 needs four-digit years, and BC has no mapping.
const MIN_UNIX_SECONDS = -62135596800
const MAX_UNIX_SECONDS_EXCL = 253402300800

/**
 * Parses ISO DateStyle output ("2026-05-18 08:30:12.123456+05:30"). The fraction is carried as text, never as a float,
 * so microseconds survive exactly; zone offsets are whole seconds and cannot change it. "infinity", BC dates and years
 * beyond 9999 fail the fixed-width checks and are reported unmappable.
 */
const timestampFragment = (s: string, withZone: boolean): string | undefined => {
  const n = s.length
  if (n < 19) return undefined
  const y100 = digits2(s, 0)
  const y1 = digits2(s, 2)
  const mo = digits2(s, 5)
  const d = digits2(s, 8)
  const h = digits2(s, 11)
  const mi = digits2(s, 14)
  const se = digits2(s, 17)
  if (y100 < 0 || y1 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) {
    return undefined
  }
  const sep = s.charCodeAt(10)
  if (s.charCodeAt(4) !== C_MINUS || s.charCodeAt(7) !== C_MINUS || (sep !== C_SPACE && sep !== C_T_UPPER)) {
    return undefined
  }
  if (s.charCodeAt(13) !== C_COLON || s.charCodeAt(16) !== C_COLON) return undefined
  const y = y100 * 100 + y1
  if (y < 1 || d > daysInMonth(y, mo)) return undefined
  let i = 19
  let fracEnd = i
  if (s.charCodeAt(i) === C_DOT) {
    i++
    while (isDigit(s.charCodeAt(i))) i++
    if (i === 20) return undefined
    fracEnd = i
    while (fracEnd > 20 && s.charCodeAt(fracEnd - 1) === C_0) fracEnd--
    if (fracEnd === 20) fracEnd = 19
  }
  let offset = 0
  if (withZone) {
    const sign = s.charCodeAt(i)
    if (sign !== C_PLUS && sign !== C_MINUS) return undefined
    const oh = digits2(s, i + 1)
    if (oh < 0) return undefined
    i += 3
    let om = 0
    let os = 0
    if (s.charCodeAt(i) === C_COLON) {
      om = digits2(s, i + 1)
      if (om < 0 || om > 59) return undefined
      i += 3
      if (s.charCodeAt(i) === C_COLON) {
        os = digits2(s, i + 1)
        if (os < 0 || os > 59) return undefined
        i += 3
      }
    }
    offset = oh * 3600 + om * 60 + os
    if (sign === C_MINUS) offset = -offset
  }
  if (i !== n) return undefined
  const frac = s.slice(19, fracEnd)
  // Common case (session TimeZone UTC, or timestamp without zone): the digits are already right, just re-punctuate.
  if (offset === 0) return '"' + s.slice(0, 10) + "T" + s.slice(11, 19) + frac + 'Z"'
  const secs = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset
  if (secs < MIN_UNIX_SECONDS || secs >= MAX_UNIX_SECONDS_EXCL) return undefined
  return '"' + formatUnixSeconds(secs, frac) + '"'
}

// Seconds between 1970-01-01 and 2000-01-01, the PostgreSQL epoch.
const PG_EPOCH_UNIX_SECONDS = 946684800
const MICROS_PER_SECOND = 1_000_000n

/** Formats microseconds since 2000-01-01T00:00:00Z (PostgreSQL epoch) as RFC 3339 UTC with "Z" and the fraction trimmed of trailing zeros (no fraction when zero), e.g. 2026-05-18T08:30:12Z or 2026-05-18T08:30:12.1234Z. */
export const formatPgEpochMicros = (micros: bigint): string => {
  let secs = micros / MICROS_PER_SECOND
  let us = micros % MICROS_PER_SECOND
  // BigInt division truncates toward zero; instants before the epoch need floor semantics.
  if (us < 0n) {
    us += MICROS_PER_SECOND
    secs -= 1n
  }
  let frac = ""
  if (us !== 0n) {
    const digits = ("00000" + us).slice(-6)
    let end = 6
    while (digits.charCodeAt(end - 1) === C_0) end--
    frac = "." + digits.slice(0, end)
  }
  return formatUnixSeconds(Number(secs) + PG_EPOCH_UNIX_SECONDS, frac)
}

/** Same instant as Unix epoch milliseconds (number). */
export const pgEpochMicrosToUnixMs = (micros: bigint): number => {
  let ms = micros / 1000n
  if (micros % 1000n < 0n) ms -= 1n
  return Number(ms) + PG_EPOCH_UNIX_SECONDS * 1000
}

// ---------------------------------------------------------------------------------------------------------------------
// arrays

// The whitespace set of PostgreSQL's array_in (scanner_isspace).
const isArrayWs = (c: number): boolean =>
  c === C_SPACE || c === C_TAB || c === C_LF || c === C_CR || c === C_VT || c === C_FF

const skipArrayWs = (s: string, i: number): number => {
  while (i < s.length && isArrayWs(s.charCodeAt(i))) i++
  return i
}

const isNullWord = (s: string, start: number): boolean =>
  (s.charCodeAt(start) | 0x20) === 110 &&
  (s.charCodeAt(start + 1) | 0x20) === 117 &&
  (s.charCodeAt(start + 2) | 0x20) === 108 &&
  (s.charCodeAt(start + 3) | 0x20) === 108

/**
 * Maps a one-dimensional array literal element by element. Multi-dimensional literals and explicit bounds are sent as
 * their raw text; a malformed literal or an unmappable element makes the whole value unmappable.
 */
const arrayFragment = (elemOid: number, s: string): string | undefined => {
  const n = s.length
  const c0 = s.charCodeAt(0)
  if (c0 === C_LBRACKET) return jsonString(s)
  if (c0 !== C_LBRACE) return undefined
  let i = skipArrayWs(s, 1)
  const c1 = s.charCodeAt(i)
  if (c1 === C_LBRACE) return jsonString(s)
  if (c1 === C_RBRACE) return skipArrayWs(s, i + 1) === n ? "[]" : undefined
  let out = "["
  for (;;) {
    i = skipArrayWs(s, i)
    if (i >= n) return undefined
    let fragment: string | undefined
    if (s.charCodeAt(i) === C_QUOTE) {
      // Quoted: never NULL; backslash escapes the next character.
      let text = ""
      let seg = ++i
      for (;;) {
        if (i >= n) return undefined
        const c = s.charCodeAt(i)
        if (c === C_QUOTE) break
        if (c === C_BACKSLASH) {
          text += s.slice(seg, i)
          seg = ++i
          if (i >= n) return undefined
        }
        i++
      }
      text += s.slice(seg, i)
      i = skipArrayWs(s, i + 1)
      fragment = toJsonFragment(elemOid, text)
    } else {
      const start = i
      while (i < n) {
        const c = s.charCodeAt(i)
        if (c === C_COMMA || c === C_RBRACE) break
        // array_out quotes anything containing these, so seeing them unquoted means the literal is not ours to guess.
        if (c === C_QUOTE || c === C_BACKSLASH || c === C_LBRACE) return undefined
        i++
      }
      let end = i
      while (end > start && isArrayWs(s.charCodeAt(end - 1))) end--
      if (end === start) return undefined
      fragment = end - start === 4 && isNullWord(s, start) ? "null" : toJsonFragment(elemOid, s.slice(start, end))
    }
    if (fragment === undefined) return undefined
    out += out.length === 1 ? fragment : "," + fragment
    const c = s.charCodeAt(i)
    if (c === C_RBRACE) return skipArrayWs(s, i + 1) === n ? out + "]" : undefined
    if (c !== C_COMMA) return undefined
    i++
  }
}
