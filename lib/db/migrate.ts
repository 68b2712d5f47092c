import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { is } from 'drizzle-orm'
import { readMigrationFiles, type MigrationConfig } from 'drizzle-orm/migrator'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { SecureLoginDatabase } from '../options.js'

// Our own bookkeeping table: sharing drizzle's default one with the app's migrations would make
// drizzle skip ours whenever the app's latest migration is newer.
const MIGRATIONS_TABLE = '__securelogin_migrations'

/** The package's migrations/ folder, whether running from lib/ (sources) or dist/lib/ (build). */
function migrationsRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'migrations', 'sqlite', 'meta', '_journal.json'))) return join(dir, 'migrations')
    dir = dirname(dir)
  }
  throw new Error('fastify-securelogin: the migrations folder is missing from the installed package')
}

/**
 * Creates or updates the plugin's tables. Runs at startup unless `migrate: false`. On PostgreSQL
 * through node-postgres it holds an advisory lock, so instances starting together take turns.
 * @example await migrate(drizzle(new Database('app.db')))
 */
export function migrate (db: SecureLoginDatabase): Promise<void> {
  // Calls in one process on one database take turns (PGlite and SQLite have no advisory lock).
  const previous = running.get(db) ?? Promise.resolve()
  const next = previous.catch(() => {}).then(() => migrateNow(db))
  running.set(db, next)
  return next
}

const running = new WeakMap<object, Promise<void>>()

async function migrateNow (db: SecureLoginDatabase): Promise<void> {
  const dialect = is(db, BaseSQLiteDatabase) ? 'sqlite' : 'postgres'
  const config: MigrationConfig = {
    migrationsFolder: join(migrationsRoot(), dialect),
    migrationsTable: MIGRATIONS_TABLE,
    migrationsSchema: 'drizzle',
  }
  const migrations = readMigrationFiles(config)
  // Each driver's drizzle migrator is exactly this call; going through the dialect directly keeps
  // one code path for better-sqlite3 (sync), node-postgres and PGlite.
  const run = async (target: unknown) => {
    const internal = target as { dialect: { migrate: (m: unknown, s: unknown, c: MigrationConfig) => unknown }, session: unknown }
    await internal.dialect.migrate(migrations, internal.session, config)
  }
  const client = (db as { $client?: PgClientLike }).$client
  if (dialect === 'sqlite' || client === undefined || typeof client.query !== 'function' || 'waitReady' in client) return run(db)
  await withMigrationLock(client, run, db)
}

interface PgConnectionLike { query: (text: string, values?: unknown[]) => Promise<unknown>, release?: () => void }
interface PgClientLike extends PgConnectionLike { connect?: () => Promise<PgConnectionLike>, totalCount?: number }

// Any 64-bit number unique to this library: instances starting together against one PostgreSQL
// database wait for each other here instead of racing on CREATE TABLE.
const MIGRATION_LOCK_KEY = 7_312_845_512_001

/** Runs the migrations on one node-postgres connection holding an advisory lock. */
async function withMigrationLock (client: PgClientLike, run: (db: unknown) => Promise<void>, db: unknown): Promise<void> {
  const isPool = typeof client.totalCount === 'number' && typeof client.connect === 'function'
  const connection = isPool ? await (client.connect as () => Promise<PgConnectionLike>)() : client
  try {
    await connection.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    try {
      if (!isPool) return await run(db)
      const { drizzle } = await import('drizzle-orm/node-postgres')
      await run(drizzle(connection as never))
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    }
  } finally {
    connection.release?.()
  }
}
