/** The part of a better-sqlite3 connection a unit of work uses. */
interface SyncSqliteClient { inTransaction: boolean, exec: (sql: string) => unknown }

/** True for a Drizzle database whose driver answers each statement before the call returns (better-sqlite3). */
export function runsSynchronously (database: unknown): boolean {
  return (database as { resultKind?: string }).resultKind === 'sync'
}

/** Told when a unit broke its rule (see createUnitOfWork): a bug of the plugin, or an app sharing the connection mid-transaction. */
export type UnitOfWorkMisuse = (problem: 'waited-for-io' | 'joined-open-transaction') => void

/**
 * What one request writes before it answers, committed at once: `unitOfWork(work)` runs `work` and
 * then commits everything it wrote in one transaction, whatever `work` returned or threw.
 *
 * Only on better-sqlite3, where a commit costs more than the statements it commits (with
 * `synchronous = FULL`, a sync of the log during which the whole process waits; see
 * docs/databases.md), and only for grouping: every statement is still atomic on its own, nothing is
 * ever rolled back, and a write that counts (a rate-limit hit, a code's attempt) stays counted when
 * `work` throws. Elsewhere (PostgreSQL, asynchronous SQLite drivers) it just runs `work`.
 *
 * `work` must only await the store: better-sqlite3 answers synchronously, so no other request runs
 * until the unit commits. Awaiting anything else (a vendor, the app's hook) would let other requests'
 * statements into the transaction and hold the write lock meanwhile; `misuse` is told when the event
 * loop turned during a unit. A unit that finds a transaction already open joins it and still
 * commits at its own end (`misuse` is told too): by the time any unit returns, its writes are
 * committed.
 */
export function createUnitOfWork (database: unknown, misuse: UnitOfWorkMisuse = () => {}): <T>(work: () => Promise<T>) => Promise<T> {
  const client = (database as { $client?: Partial<SyncSqliteClient> }).$client
  const isSyncSqlite = runsSynchronously(database) && typeof client?.inTransaction === 'boolean' && typeof client.exec === 'function'
  if (!isSyncSqlite) return async (work) => work()
  const sqlite = client as SyncSqliteClient
  return async (work) => {
    // IMMEDIATE: the write lock now, waiting busy_timeout for another process's writer, rather than a
    // read transaction that could not be upgraded if another process wrote meanwhile.
    if (sqlite.inTransaction) misuse('joined-open-transaction')
    else sqlite.exec('BEGIN IMMEDIATE')
    // Runs at the event loop's next turn: before the unit ends only if work waited for I/O or a timer.
    let turned = false
    const watch = setImmediate(() => { turned = true })
    try {
      return await work()
    } finally {
      clearImmediate(watch)
      if (turned) misuse('waited-for-io')
      // A failed statement may have ended the transaction already (SQLite rolls back on some errors).
      if (sqlite.inTransaction) {
        try {
          sqlite.exec('COMMIT')
        } catch (error) {
          if (sqlite.inTransaction) sqlite.exec('ROLLBACK')
          // The commit's error wins over work's: what work counted may not have been written.
          // eslint-disable-next-line no-unsafe-finally
          throw error
        }
      }
    }
  }
}
