// Reads one series out of Prometheus text exposition, e.g. `walera_tx_dropped_total{reason="multi_root"}`.

export const metricValue = (body: string, series: string): number => {
  const escaped = series.replace(/[{}"=.+]/g, (c) => `\\${c}`)
  return Number(new RegExp(`^${escaped} (\\S+)$`, "m").exec(body)?.[1] ?? Number.NaN)
}
