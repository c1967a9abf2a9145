// Gentle load writer for the demo: a few small writes per second on the demo lists so the UI visibly moves.
// Each write is one statement (= one transaction) on one list, so Walera delivers it as one event to that list.
import pg from "pg"

export interface GentleWriterOptions {
  readonly databaseUrl: string
  /** Writes per second on average (Poisson-ish spacing). Default 0.5. */
  readonly ratePerSecond?: number
  readonly log?: (line: string) => void
}

export interface GentleWriter {
  readonly writes: () => number
  readonly stop: () => Promise<void>
}

const WRITES: ReadonlyArray<{ readonly weight: number; readonly sql: string }> = [
  {
    // Cycle a random subtask's status; the triggers bump its task and list in the same transaction.
    weight: 3,
    sql: `UPDATE subtasks SET status = CASE status WHEN 'PENDING' THEN 'IN_PROGRESS' WHEN 'IN_PROGRESS' THEN 'COMPLETED'
          ELSE 'PENDING' END WHERE id = (SELECT id FROM subtasks ORDER BY random() LIMIT 1)`,
  },
  {
    // Rename a random task: strip an earlier "· edited" suffix and stamp the time.
    weight: 2,
    sql: `UPDATE tasks SET title = regexp_replace(title, ' · edited [0-9:]+$', '') || ' · edited ' ||
          to_char(now(), 'HH24:MI:SS') WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
  },
  {
    // Move a random task one step through PENDING → IN_PROGRESS → COMPLETED → PENDING.
    weight: 1,
    sql: `UPDATE tasks SET status = CASE status WHEN 'PENDING' THEN 'IN_PROGRESS' WHEN 'IN_PROGRESS' THEN 'COMPLETED'
          ELSE 'PENDING' END WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
  },
]

const pickWrite = (): string => {
  const total = WRITES.reduce((sum, write) => sum + write.weight, 0)
  let roll = Math.random() * total
  for (const write of WRITES) {
    roll -= write.weight
    if (roll < 0) return write.sql
  }
  return WRITES[0]!.sql
}

export const startGentleWriter = (options: GentleWriterOptions): GentleWriter => {
  const rate = options.ratePerSecond ?? 0.5
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 1 })
  pool.on("error", () => {}) // an idle client died (e.g. PostgreSQL stopping): the pool replaces it
  let writes = 0
  let running = true
  let timer: NodeJS.Timeout | undefined
  let inFlight: Promise<void> = Promise.resolve()

  const schedule = () => {
    if (!running || rate <= 0) return
    // Exponential spacing around the mean so the motion looks natural, clamped to avoid bursts.
    const delayMs = Math.min(Math.max((-Math.log(1 - Math.random()) * 1000) / rate, 100), 10_000 / rate)
    timer = setTimeout(() => {
      inFlight = pool.query(pickWrite()).then(
        () => {
          writes += 1
        },
        (error: Error) => {
          if (running) options.log?.(`[writer] write failed: ${error.message}`)
        },
      )
      void inFlight.then(schedule)
    }, delayMs)
  }
  schedule()

  let stopped: Promise<void> | undefined
  return {
    writes: () => writes,
    stop: () => {
      stopped ??= (async () => {
        running = false
        if (timer !== undefined) clearTimeout(timer)
        await inFlight
        await pool.end().catch(() => {})
      })()
      return stopped
    },
  }
}
