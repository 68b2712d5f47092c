import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { is, sql, type SQL } from 'drizzle-orm'
import { readMigrationFiles, type MigrationConfig } from 'drizzle-orm/migrator'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { SecureLoginDatabase } from '../options.js'
import { driverError, errorCode, UNREACHABLE } from './faults.js'

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
 * it runs in one transaction holding an advisory lock, so instances starting together take turns,
 * also behind a transaction-pooling proxy. A failure says which database it was and what to do, with the driver's error as
 * `cause`.
 * @example await migrate(drizzle(new Database('app.db')))
 */
export function migrate (db: SecureLoginDatabase): Promise<void> {
  // Calls in one process on one database take turns (PGlite and SQLite have no advisory lock).
  const previous = running.get(db) ?? Promise.resolve()
  const next = previous.catch(() => {}).then(() => migrateNow(db)).catch((error: unknown) => {
    throw startupError(db, error, 'create-tables')
  })
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
  // one code path for better-sqlite3 (sync), node-postgres, postgres-js and PGlite.
  const { dialect: migrator } = db as unknown as { dialect: { migrate: (m: unknown, session: unknown, c: MigrationConfig) => Promise<void> } }
  if (dialect === 'sqlite') return migrateSqlite(db as unknown as SqliteInternals, migrations, config)
  // On PostgreSQL the whole migration, from CREATE SCHEMA to the last bookkeeping row, is one
  // transaction that first takes a transaction-level advisory lock: instances starting together
  // take turns, and the lock ends with the transaction. A session-level lock would be taken and
  // released on whatever server connection a transaction-pooling proxy (PgBouncer, Supavisor)
  // picks for each statement, and could stay held for good.
  const pg = db as unknown as PgTransactionRunner
  await pg.transaction(async (tx) => {
    // postgres-js prints every NOTICE by default: "schema drizzle already exists, skipping" at each start.
    await tx.execute(sql.raw('SET LOCAL client_min_messages TO warning'))
    await tx.execute(sql.raw(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`))
    // The migrator opens a transaction of its own for the migrations: here it runs in this one.
    const session = {
      execute: (query: SQL) => tx.execute(query),
      all: async (query: SQL) => rowsOf(await tx.execute(query)),
      transaction: (run: (inner: unknown) => Promise<unknown>) => run(tx),
    }
    await migrator.migrate(migrations, session, config)
  })
}

interface SqliteSession { run: (query: SQL) => unknown, values: (query: SQL) => unknown, transaction?: (run: (tx: SqliteSession) => unknown) => unknown }
interface SqliteInternals {
  resultKind: 'sync' | 'async'
  session: SqliteSession
  dialect: { sqlToQuery: (query: SQL) => { sql: string }, migrate: (m: unknown, session: SqliteSession, c: MigrationConfig) => unknown }
}

/**
 * SQLite: the whole migration in one `BEGIN IMMEDIATE` transaction, which takes the database's
 * write lock first: processes starting together on one file take turns (each waits up to its
 * busy timeout). drizzle's migrator reads the last applied migration before its own BEGIN, so
 * two processes could both find none applied; here that read happens under the lock, and the
 * migrator's own BEGIN and COMMIT are left out.
 *
 * A migration that rebuilds a table (SQLite cannot drop a NOT NULL otherwise) drops the old one,
 * and with foreign keys on that drop would cascade into the sessions referencing it. As SQLite's
 * own procedure for such changes says, foreign keys are turned off around the transaction (the
 * PRAGMA does nothing inside one) and checked before it commits.
 */
async function migrateSqlite (db: SqliteInternals, migrations: unknown, config: MigrationConfig): Promise<void> {
  const { session, dialect } = db
  const own = new Set(['BEGIN', 'COMMIT', 'ROLLBACK'])
  const inOurTransaction: SqliteSession = {
    run: (query) => own.has(dialect.sqlToQuery(query).sql.trim().toUpperCase()) ? undefined : session.run(query),
    values: (query) => session.values(query),
    // drizzle's asynchronous SQLite migrator opens its transaction with this: it runs in ours.
    transaction: (run) => run(inOurTransaction),
  }
  if (db.resultKind === 'sync') {
    // better-sqlite3: synchronous from BEGIN to COMMIT, so no other statement of this process can slip in.
    const enforced = foreignKeysOn(session.values(sql.raw('PRAGMA foreign_keys')))
    session.run(sql.raw('PRAGMA foreign_keys = OFF'))
    try {
      session.run(sql.raw('BEGIN IMMEDIATE'))
      try {
        dialect.migrate(migrations, inOurTransaction, config)
        refuseBrokenReferences(session.values(sql.raw(FOREIGN_KEY_CHECK)))
        session.run(sql.raw('COMMIT'))
      } catch (error) {
        session.run(sql.raw('ROLLBACK'))
        throw error
      }
    } finally {
      if (enforced) session.run(sql.raw('PRAGMA foreign_keys = ON'))
    }
    return
  }
  const enforced = foreignKeysOn(await session.values(sql.raw('PRAGMA foreign_keys')))
  await session.run(sql.raw('PRAGMA foreign_keys = OFF'))
  try {
    await session.run(sql.raw('BEGIN IMMEDIATE'))
    try {
      await dialect.migrate(migrations, inOurTransaction, config)
      refuseBrokenReferences(await session.values(sql.raw(FOREIGN_KEY_CHECK)))
      await session.run(sql.raw('COMMIT'))
    } catch (error) {
      await session.run(sql.raw('ROLLBACK'))
      throw error
    }
  } finally {
    if (enforced) await session.run(sql.raw('PRAGMA foreign_keys = ON'))
  }
}

// Only the plugin's own references (sessions to accounts): a dangling row in one of the app's tables
// is the app's business, and must not stop the plugin from starting.
const FOREIGN_KEY_CHECK = 'PRAGMA foreign_key_check(securelogin_sessions)'

function foreignKeysOn (rows: unknown): boolean {
  return (rows as unknown[][])[0]?.[0] === 1
}

function refuseBrokenReferences (rows: unknown): void {
  if ((rows as unknown[]).length > 0) throw new Error(`fastify-securelogin: a migration would leave ${(rows as unknown[]).length} rows referencing rows that do not exist`)
}

// Any 64-bit number unique to this library: instances starting together against one PostgreSQL
// database wait for each other here instead of racing on CREATE SCHEMA and CREATE TABLE.
const MIGRATION_LOCK_KEY = 7_312_845_512_001

interface PgTransaction { execute: (query: SQL) => Promise<unknown> }
interface PgTransactionRunner { transaction: (run: (tx: PgTransaction) => Promise<void>) => Promise<void> }

/** The rows of a raw query's result: node-postgres and PGlite answer `{ rows }`, postgres-js an array. */
function rowsOf (result: unknown): unknown[] {
  return Array.isArray(result) ? result : (result as { rows: unknown[] }).rows
}

/** What failed at startup, for {@link startupError}. */
export type StartupStep = 'create-tables' | 'read-revocations'

/**
 * The error registration fails with when the database does not work: it names the database, how
 * it was reached and what to do, and keeps the driver's error as `cause`.
 * @example throw startupError(options.db, error, 'read-revocations')
 */
export function startupError (db: SecureLoginDatabase, thrown: unknown, step: StartupStep): Error {
  // The store answers an outage as SECURELOGIN_UNAVAILABLE, with the driver's error as its cause.
  const error = (thrown as { code?: unknown } | null)?.code === 'SECURELOGIN_UNAVAILABLE' ? (thrown as Error).cause : thrown
  if (error instanceof Error && error.message.startsWith('fastify-securelogin:')) return error
  const where = describeDatabase(db)
  const detail = driverMessage(error, secretsOf(db))
  const code = errorCode(error)
  const say = (text: string) => new Error(`fastify-securelogin: ${text}`, { cause: error })
  if (code !== undefined && UNREACHABLE.has(code)) return say(`cannot reach ${where} (${detail})`)
  if (/connection timeout|timeout expired|no answer within/i.test(detail)) return say(`cannot reach ${where} (${detail})`)
  if (code !== undefined && /^(08|28|3D)/.test(code)) return say(`cannot connect to ${where} (${detail})`)
  const denied = code === '42501'
  if (step === 'create-tables') {
    return say(`could not create its tables in ${where} (${detail})${denied ? '; run migrate(db) with an owner role, or register with migrate: false' : ''}`)
  }
  const hint = denied
    ? 'grant the app\'s role SELECT, INSERT, UPDATE and DELETE on the securelogin_* tables'
    : 'run migrate(db) first or register with migrate: true'
  return say(`cannot read the revocation log in ${where} (${detail}); ${hint}`)
}

/** The driver's message on one line, without any password it might quote. */
function driverMessage (error: unknown, secrets: string[]): string {
  const inner = driverError(error) as { message?: unknown, errors?: unknown } | null
  let message = typeof inner?.message === 'string' ? inner.message : String(inner)
  if (message === '' && Array.isArray(inner?.errors)) {
    message = inner.errors.map((each) => (each as { message?: unknown }).message).filter((text) => typeof text === 'string').join('; ')
  }
  message = message.split('\n')[0] ?? ''
  for (const secret of secrets) message = message.split(secret).join('***')
  return message === '' ? 'no message' : message
}

interface NodePgSettings { host?: string, port?: number | string, database?: string, connectionString?: string, password?: unknown }
interface PostgresJsSettings { host?: string[], port?: number[], database?: string, path?: string | false, pass?: unknown }

/** The settings a node-postgres Pool or Client was made with, as node-postgres reads them. */
function nodePgSettings (client: object): NodePgSettings {
  const source = (client as { options?: NodePgSettings }).options ?? client as NodePgSettings
  // node-postgres keeps the password as a non-enumerable property, which a spread would drop.
  const settings: NodePgSettings = { ...source, password: source.password }
  if (typeof settings.connectionString === 'string') {
    try {
      // A socket URL names no host (postgresql://user@/db?host=/run/postgresql), which URL refuses.
      const url = new URL(settings.connectionString.replace(/@\//, '@localhost/'))
      settings.host ??= url.searchParams.get('host') ?? (decodeURIComponent(url.hostname) || undefined)
      settings.port ??= url.port || undefined
      settings.database ??= decodeURIComponent(url.pathname.slice(1)) || undefined
      if (url.password !== '') settings.password = decodeURIComponent(url.password)
    } catch {}
  }
  settings.host ??= process.env.PGHOST ?? 'localhost'
  settings.port ??= process.env.PGPORT ?? 5432
  settings.database ??= process.env.PGDATABASE
  return settings
}

/** Passwords of the connection settings, so that no message repeats one. */
function secretsOf (db: SecureLoginDatabase): string[] {
  const client = (db as { $client?: unknown }).$client
  const candidates: unknown[] = []
  if (typeof client === 'function') candidates.push((client as { options?: PostgresJsSettings }).options?.pass)
  else if (typeof client === 'object' && client !== null && !('waitReady' in client)) candidates.push(nodePgSettings(client).password)
  return candidates.filter((secret): secret is string => typeof secret === 'string' && secret.length >= 3)
}

/**
 * Which database `db` is, for startup messages: the engine, where it is and through which driver,
 * never a password. E.g. `the PostgreSQL database "app" at 10.0.0.5:5432 through node-postgres`.
 */
export function describeDatabase (db: SecureLoginDatabase): string {
  const client = (db as { $client?: unknown }).$client
  if (is(db, BaseSQLiteDatabase)) {
    const sqlite = client as { name?: unknown, memory?: unknown } | undefined
    if (sqlite?.memory === true) return 'the in-memory SQLite database'
    return typeof sqlite?.name === 'string' ? `the SQLite database ${sqlite.name}` : 'the SQLite database'
  }
  if (typeof client === 'function') {
    const options = (client as { options?: PostgresJsSettings }).options ?? {}
    const hosts = typeof options.path === 'string' && options.path !== '' ? [options.path] : (options.host ?? []).map((host, i) => `${host}:${options.port?.[i] ?? options.port?.[0] ?? 5432}`)
    return `the PostgreSQL database${named(options.database)}${hosts.length > 0 ? ` at ${hosts.join(',')}` : ''} through postgres-js`
  }
  if (typeof client === 'object' && client !== null && 'waitReady' in client) {
    const dataDir = (client as { dataDir?: unknown }).dataDir
    return typeof dataDir === 'string' && dataDir !== '' && !dataDir.startsWith('memory://') ? `the PGlite database in ${dataDir}` : 'the in-memory PGlite database'
  }
  if (typeof client === 'object' && client !== null) {
    const settings = nodePgSettings(client)
    const at = String(settings.host).startsWith('/') ? `${settings.host}/.s.PGSQL.${settings.port}` : `${settings.host}:${settings.port}`
    return `the PostgreSQL database${named(settings.database)} at ${at} through node-postgres`
  }
  return 'the PostgreSQL database'
}

function named (database: string | undefined): string {
  return database === undefined || database === '' ? '' : ` "${database}"`
}
