// PostgreSQL log sequence numbers as bigint, and their "X/Y" text form.

export const parseLsn = (text: string): bigint => {
  const slash = text.indexOf("/")
  if (slash < 0) throw new Error(`not an LSN: ${text}`)
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) | BigInt(`0x${text.slice(slash + 1)}`)
}

export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
