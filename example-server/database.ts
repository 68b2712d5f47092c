import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { startSqliteCheckpoints, type SecureLoginDatabase } from '../lib/index.js'

/** DATABASE_URL: `postgres://…` for PostgreSQL, otherwise a SQLite file path (`file:` optional). */
export async function openDatabase (url: string): Promise<{ db: SecureLoginDatabase, close: () => Promise<void> }> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { default: pg } = await import('pg')
    const { drizzle } = await import('drizzle-orm/node-postgres')
    // Below the plugin's dbTimeout (5 s): a request waiting for a connection gives up in the pool's
    // queue rather than leave a statement behind it to run later (docs/deploying.md).
    const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 3_000, statement_timeout: 3_000 })
    // A database restart closes idle connections under the pool, which then emits 'error': without
    // a listener Node would end the process. The pool reconnects on the next query.
    pool.on('error', (error) => console.warn(`database connection lost (${error.message}); reconnecting on demand`))
    return { db: drizzle(pool), close: () => pool.end() }
  }
  const { default: Database } = await import('better-sqlite3')
  const { drizzle } = await import('drizzle-orm/better-sqlite3')
  const file = url.replace(/^file:/, '')
  mkdirSync(dirname(file), { recursive: true })
  // better-sqlite3 waits for a busy file synchronously, which dbTimeout cannot interrupt: keep it short.
  const sqlite = new Database(file, { timeout: 1_000 })
  sqlite.pragma('journal_mode = WAL')
  // Said, not left to chance: better-sqlite3's build makes a WAL file NORMAL unless told, while
  // PRAGMA synchronous still reads FULL right after the switch to WAL (docs/databases.md).
  sqlite.pragma('synchronous = NORMAL')
  // Checkpoints in a worker thread, not inside a request's commit (docs/databases.md).
  const checkpoints = startSqliteCheckpoints(sqlite)
  return { db: drizzle(sqlite), close: async () => { await checkpoints.stop(); sqlite.close() } }
}
