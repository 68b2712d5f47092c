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
 * Creates or updates the plugin's tables. Runs at startup unless `migrate: false`; call it from a
 * deploy step instead when several instances start at once.
 * @example await migrate(drizzle(new Database('app.db')))
 */
export async function migrate (db: SecureLoginDatabase): Promise<void> {
  const dialect = is(db, BaseSQLiteDatabase) ? 'sqlite' : 'postgres'
  const config: MigrationConfig = {
    migrationsFolder: join(migrationsRoot(), dialect),
    migrationsTable: MIGRATIONS_TABLE,
    migrationsSchema: 'drizzle',
  }
  // Each driver's drizzle migrator is exactly this call; going through the dialect directly keeps
  // one code path for better-sqlite3 (sync), node-postgres and PGlite.
  const internal = db as unknown as { dialect: { migrate: (m: unknown, s: unknown, c: MigrationConfig) => unknown }, session: unknown }
  await internal.dialect.migrate(readMigrationFiles(config), internal.session, config)
}
