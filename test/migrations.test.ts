import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { migrate as drizzleSqliteMigrate } from 'drizzle-orm/better-sqlite3/migrator'
import { migrate as drizzlePgMigrate } from 'drizzle-orm/node-postgres/migrator'
import { migrate } from '../lib/index.js'
import { createStore } from '../lib/store/index.js'
import { buildApp, createTestDatabase, dialects, PLUGIN_TABLES, shippedMigrations, signIn, testPhone, type Dialect, type TestDatabase } from './helper.js'

const run = promisify(execFile)
const root = process.cwd()
const drizzleKit = join(root, 'node_modules', '.bin', 'drizzle-kit')
const kitDialect: Record<Dialect, string> = { sqlite: 'sqlite', postgres: 'postgresql' }
const schemaFile: Record<Dialect, string> = { sqlite: 'lib/db/sqlite.ts', postgres: 'lib/db/postgres.ts' }
const TABLES = PLUGIN_TABLES

/**
 * Runs `drizzle-kit generate` for the dialect into `out`. drizzle-kit prefixes `out` with './', so
 * an absolute path breaks once the folder holds snapshots: pass it relative to the project.
 */
async function generate (dialect: Dialect, schema: string, out: string): Promise<string> {
  const { stdout, stderr } = await run(drizzleKit, ['generate', '--dialect', kitDialect[dialect], '--schema', relative(root, schema), '--out', relative(root, out)], { cwd: root, timeout: 60_000 })
  // drizzle-kit exits 0 even when it fails, so its output is checked too.
  if (/Error/.test(stderr) || /Error/.test(stdout)) throw new Error(`drizzle-kit generate failed:\n${stdout}\n${stderr}`)
  return stdout
}

function sqlFiles (dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.sql')).sort()
}

for (const dialect of dialects) {
  t.test(`${dialect}: the table definitions and the generated migrations agree`, async (t) => {
    const out = join(t.testdir(), dialect)
    cpSync(join(root, 'migrations', dialect), out, { recursive: true })
    const before = sqlFiles(out)
    t.ok(before.length > 0, 'the package ships migrations')
    const journal = readFileSync(join(out, 'meta', '_journal.json'), 'utf8')
    const stdout = await generate(dialect, join(root, schemaFile[dialect]), out)
    t.same(sqlFiles(out), before, `no new migration: ${schemaFile[dialect]} is what migrations/${dialect} builds (run npm run db:generate)`)
    t.equal(readFileSync(join(out, 'meta', '_journal.json'), 'utf8'), journal, 'the journal is unchanged')
    t.match(stdout, /No schema changes/)
  })

  t.test(`${dialect}: sanity — the comparison above can fail`, async (t) => {
    const empty = join(t.testdir(), 'empty')
    await generate(dialect, join(root, schemaFile[dialect]), empty)
    t.equal(sqlFiles(empty).length, 1, 'generating into an empty folder writes a migration')

    // A table definition with one more column than the shipped migrations must produce one.
    const drifted = join(t.testdir(), 'drifted')
    cpSync(join(root, 'migrations', dialect), drifted, { recursive: true })
    const source = readFileSync(join(root, schemaFile[dialect]), 'utf8')
    const changed = source.replace("username: text('username'),", "username: text('username'),\n  nickname: text('nickname'),")
    t.not(changed, source, 'the schema copy was changed')
    const schema = join(t.testdir(), 'schema.ts')
    writeFileSync(schema, changed)
    await generate(dialect, schema, drifted)
    const added = sqlFiles(drifted).filter((name) => !sqlFiles(join(root, 'migrations', dialect)).includes(name))
    t.equal(added.length, 1, 'a drifted schema yields a new migration')
    t.match(readFileSync(join(drifted, added[0] ?? 'missing.sql'), 'utf8'), /nickname/)
  })
}

async function tableNames (dialect: Dialect, database: TestDatabase): Promise<string[]> {
  const rows = dialect === 'sqlite'
    ? await database.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'securelogin%'")
    : await database.query("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'securelogin%'")
  return rows.map((row) => String(row.name)).sort()
}

async function ourMigrationRows (dialect: Dialect, database: TestDatabase): Promise<number> {
  const table = dialect === 'sqlite' ? '__securelogin_migrations' : 'drizzle.__securelogin_migrations'
  const [row] = await database.query(`SELECT count(*) AS n FROM ${table}`)
  return Number(row?.n)
}

const journalEntries = shippedMigrations

for (const dialect of dialects) {
  t.test(`${dialect}: migrate(db) creates the six tables and the unique phone index, and can run again`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    t.same(await tableNames(dialect, database), [], 'the database starts empty')
    await migrate(database.db)
    t.same(await tableNames(dialect, database), TABLES)
    await migrate(database.db)
    await migrate(database.db)
    t.same(await tableNames(dialect, database), TABLES, 'running it again changes nothing')
    t.equal(await ourMigrationRows(dialect, database), journalEntries(dialect), 'each migration is recorded once')

    if (dialect === 'sqlite') {
      const indexes = await database.query("SELECT name, \"unique\" FROM pragma_index_list('securelogin_users')")
      t.ok(indexes.some((row) => row.name === 'securelogin_users_phone_key' && Number(row.unique) === 1), 'unique index securelogin_users_phone_key')
      const columns = await database.query("SELECT name FROM pragma_index_info('securelogin_users_phone_key')")
      t.same(columns.map((row) => row.name), ['phone'])
    } else {
      const [index] = await database.query("SELECT indexdef FROM pg_indexes WHERE tablename = 'securelogin_users' AND indexname = 'securelogin_users_phone_key'")
      t.match(index?.indexdef, /^CREATE UNIQUE INDEX securelogin_users_phone_key ON public\.securelogin_users USING btree \(phone\)$/)
    }
    const insert = "INSERT INTO securelogin_users (id, phone, created_at) VALUES ($1, '+14155550100', $2)"
    const createdAt = dialect === 'sqlite' ? Date.now() : new Date()
    await database.query(insert, ['11111111-1111-4111-8111-111111111111', createdAt])
    await t.rejects(database.query(insert, ['22222222-2222-4222-8222-222222222222', createdAt]), 'a second account for one number is refused by the database')

    // The plugin's own startup migration on an up-to-date database is a no-op that keeps the data.
    const test = await buildApp(t, dialect, {}, database)
    await signIn(test, testPhone())
    const [users] = await database.query('SELECT count(*) AS n FROM securelogin_users')
    t.equal(Number(users?.n), 2)
    await migrate(database.db)
    t.equal(await ourMigrationRows(dialect, database), journalEntries(dialect))
  })

  t.test(`${dialect}: our migrations are not skipped because of the app's own __drizzle_migrations`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    // An app that already ran its own drizzle migrations, the latest newer than any of ours.
    const future = Date.now() + 365 * 24 * 3600 * 1000
    const appTables = dialect === 'sqlite' ? ['__drizzle_migrations'] : ['drizzle.__drizzle_migrations', 'public.__drizzle_migrations']
    if (dialect === 'postgres') await database.query('CREATE SCHEMA IF NOT EXISTS drizzle')
    for (const table of appTables) {
      await database.query(dialect === 'sqlite'
        ? `CREATE TABLE ${table} (id INTEGER PRIMARY KEY, hash text NOT NULL, created_at numeric)`
        : `CREATE TABLE ${table} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`)
      await database.query(`INSERT INTO ${table} (hash, created_at) VALUES ('the-apps-own-migration', ${future})`)
    }

    await migrate(database.db)
    t.same(await tableNames(dialect, database), TABLES, 'our tables are created')
    for (const table of appTables) {
      t.same((await database.query(`SELECT hash, created_at FROM ${table}`)).map((row) => [row.hash, Number(row.created_at)]),
        [['the-apps-own-migration', future]], `${table} is left as it was`)
    }
    const test = await buildApp(t, dialect, {}, database)
    const tokens = await signIn(test, testPhone())
    t.ok(tokens.access_token, 'the plugin works next to the app\'s migrations')
  })
}

// An asynchronous SQLite driver (drizzle's sqlite-proxy, here over better-sqlite3): its migrator
// opens its transaction through the session, which must run inside the migration's own.
t.test('sqlite through an asynchronous driver: migrate() creates the tables once', async (t) => {
  const { default: Database } = await import('better-sqlite3')
  const { drizzle } = await import('drizzle-orm/sqlite-proxy')
  const sqlite = new Database(join(t.testdir(), 'proxy.db'))
  t.teardown(() => sqlite.close())
  const db = drizzle(async (text, params, method) => {
    const statement = sqlite.prepare(text)
    if (method === 'run') { statement.run(...params); return { rows: [] } }
    if (method === 'get') return { rows: statement.raw().get(...params) as unknown[] }
    return { rows: statement.raw().all(...params) as unknown[][] }
  })
  await migrate(db)
  await migrate(db)
  const tables = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'securelogin_%' ORDER BY name").all() as Array<{ name: string }>
  t.same(tables.map((table) => table.name), TABLES)
  t.equal((sqlite.prepare('SELECT count(*) AS n FROM __securelogin_migrations').get() as { n: number }).n, journalEntries('sqlite'), 'each migration is recorded once')
})

for (const dialect of dialects) {
  t.test(`${dialect}: upgrading a database in use keeps its accounts and sessions (the SQLite users table is rebuilt)`, async (t) => {
    // The database as the first release left it: migration 0000 only, applied the way migrate() records it.
    const first = join(t.testdir(), dialect)
    const database = await createTestDatabase(t, dialect)
    cpSync(join(root, 'migrations', dialect), first, { recursive: true })
    const journalFile = join(first, 'meta', '_journal.json')
    const journal = JSON.parse(readFileSync(journalFile, 'utf8'))
    writeFileSync(journalFile, JSON.stringify({ ...journal, entries: journal.entries.slice(0, 1) }))
    const config = { migrationsFolder: first, migrationsTable: '__securelogin_migrations', migrationsSchema: 'drizzle' }
    if (dialect === 'sqlite') drizzleSqliteMigrate(database.db as never, config)
    else await drizzlePgMigrate(database.db as never, config)
    t.notOk((await tableNames(dialect, database)).includes('securelogin_phone_history'), 'the database is at the first migration')

    const phone = testPhone()
    const userid = randomUUID()
    const now = dialect === 'sqlite' ? Date.now() : new Date()
    const later = dialect === 'sqlite' ? Date.now() + 86_400_000 : new Date(Date.now() + 86_400_000)
    const p = (n: number) => dialect === 'sqlite' ? '?' : `$${n}`
    await database.query(`INSERT INTO securelogin_users (id, phone, phone_verified_at, created_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, [userid, phone, now, now])
    await database.query(`INSERT INTO securelogin_sessions (id, user_id, created_at, refreshed_at, expires_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)})`, [randomUUID(), userid, now, now, later])
    const revokedBefore = randomUUID()
    await database.query(`INSERT INTO securelogin_sessions (id, user_id, created_at, refreshed_at, expires_at, revoked_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`, [revokedBefore, userid, now, now, later, now])

    await migrate(database.db)
    t.same(await tableNames(dialect, database), TABLES)
    const [user] = await database.query('SELECT id, phone, phone_verified_at FROM securelogin_users')
    t.equal(user?.phone, phone, 'the account keeps its number')
    t.equal(user?.id, userid, 'and its id')
    t.ok(user?.phone_verified_at, 'and its verification')
    const sessions = await database.query('SELECT id, user_id FROM securelogin_sessions ORDER BY revoked_at IS NULL')
    t.equal(sessions.length, 2, 'the sessions survived the rebuild of the table they reference')
    t.equal(sessions[0]?.user_id, userid)
    const logged = await createStore(database.db, dialect).revocationsAfter(undefined, new Date(Date.now() - 60_000))
    t.same(logged.revocations.map((row) => row.id), [revokedBefore], 'a session revoked before the upgrade is in the revocation log after it')
    if (dialect === 'sqlite') {
      t.same(await database.query('PRAGMA foreign_key_check'), [], 'every reference still holds')
      t.equal((await database.query('PRAGMA foreign_keys'))[0]?.foreign_keys, 1, 'foreign keys are enforced again afterwards')
    }
  })
}

t.test('sqlite: a dangling reference in an app\'s own table does not stop migrate()', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  await migrate(database.db)
  await database.query('CREATE TABLE app_orders (id integer PRIMARY KEY, user_id text REFERENCES securelogin_users(id))')
  await database.query('PRAGMA foreign_keys = OFF')
  await database.query("INSERT INTO app_orders (user_id) VALUES ('no-such-account')")
  await database.query('PRAGMA foreign_keys = ON')
  await t.resolves(migrate(database.db), 'the app\'s data is the app\'s business')
  t.equal((await database.query('PRAGMA foreign_key_check(app_orders)')).length, 1, 'the dangling row is still there')
})
