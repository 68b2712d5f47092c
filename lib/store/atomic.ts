import type { PgDatabase } from 'drizzle-orm/pg-core'

type Db = PgDatabase<any, any, any>

/** A query of a transaction: every step is a SELECT or a write with RETURNING, so each has rows. */
interface Step { all?: () => unknown[] }

/**
 * The statements of one transaction, written once for every driver: each `yield` hands over a
 * query built on `tx` and receives its rows.
 */
export type Steps<T> = (tx: Db) => Generator<Step | PromiseLike<unknown[]>, T, any[]>

/**
 * Runs `steps` as one transaction. better-sqlite3 cannot run an asynchronous transaction (another
 * request's statements would join it at every await), so there the steps run synchronously inside
 * its own `BEGIN IMMEDIATE … COMMIT`; on PostgreSQL and asynchronous SQLite drivers each step is
 * awaited inside drizzle's `transaction`.
 */
export async function atomically<T> (database: unknown, steps: Steps<T>): Promise<T> {
  const db = database as Db & { resultKind?: 'sync' | 'async' }
  if (db.resultKind === 'sync') {
    const sync = db as unknown as { transaction: (run: (tx: Db) => T, config: { behavior: 'immediate' }) => T }
    return sync.transaction((tx) => {
      const run = steps(tx)
      let step = run.next()
      while (step.done !== true) step = run.next((step.value as Step).all?.() ?? [])
      return step.value
    }, { behavior: 'immediate' })
  }
  return db.transaction(async (tx) => {
    const run = steps(tx as Db)
    let step = run.next()
    while (step.done !== true) step = run.next(await (step.value as PromiseLike<unknown[]>))
    return step.value
  })
}
