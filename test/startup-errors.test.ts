import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { inspect } from 'node:util'
import Database from 'better-sqlite3'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js'
import Fastify from 'fastify'
import pg from 'pg'
import postgres from 'postgres'
import t from 'tap'
import { describeDatabase, startupError } from '../lib/db/migrate.js'
import secureLogin, { migrate, type SecureLoginDatabase } from '../lib/index.js'
import { buildApp, createOutbox, dropDatabase, PLUGIN_TABLES, postgresUrl, shippedMigrations, signIn, TEST_SECRET, testPhone, type TestDatabase } from './helper.js'

// Issue 7: a database that does not work at startup must say which database it is, how it was
// reached and what to do, never a password, and keep the driver's error as `cause`.

const PASSWORD = 'S3cret-pass-word'
const realServer = { skip: postgresUrl === undefined ? 'needs a real PostgreSQL server (SECURELOGIN_TEST_POSTGRES_URL)' : false }

type Tap = Pick<typeof t, 'notOk' | 'teardown'>

/** The error registering the plugin on `db` fails with. */
async function registrationError (db: SecureLoginDatabase, extra: { migrate?: boolean } = {}): Promise<Error> {
  const app = Fastify({ pluginTimeout: 60_000 })
  try {
    await app.register(secureLogin, { db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET }, ...extra })
    await app.ready()
  } catch (error) {
    return error as Error
  } finally {
    await app.close().catch(() => {})
  }
  throw new Error('registration succeeded')
}

/** The first `code` along the `cause` chain: the driver's own error. */
function driverCode (error: unknown): unknown {
  for (let current = error as { code?: unknown, cause?: unknown } | undefined; current !== undefined; current = current.cause as typeof current) {
    if (current.code !== undefined) return current.code
  }
  return undefined
}

function checkNoPassword (t: Tap, error: Error): void {
  t.notOk(error.message.includes(PASSWORD), 'the message has no password')
  t.notOk(inspect(error, { depth: 10 }).includes(PASSWORD), 'nor the error as logged, causes included')
}

interface ServerDatabase {
  name: string
  /** Its URL, as `user` with `password` when given. */
  url: string
  admin: pg.Client
  /** Run before the database is dropped: clients must end first. */
  beforeDrop: Array<() => Promise<unknown>>
  /** Run after it is dropped, e.g. to drop a role that had rights on it. */
  afterDrop: Array<() => Promise<unknown>>
}

/** A fresh database on the real server, dropped when the test ends. */
async function createServerDatabase (t: Tap, user?: string, password?: string): Promise<ServerDatabase> {
  const name = `securelogin_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: postgresUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(postgresUrl as string)
  url.pathname = `/${name}`
  if (user !== undefined) url.username = user
  if (password !== undefined) url.password = password
  const database: ServerDatabase = { name, url: url.toString(), admin, beforeDrop: [], afterDrop: [] }
  t.teardown(async () => {
    for (const close of database.beforeDrop) await close()
    await dropDatabase(admin, name)
    for (const cleanup of database.afterDrop) await cleanup()
    await admin.end()
  })
  return database
}

t.test('node-postgres: an unreachable server fails registration naming the database and the driver', async (t) => {
  const pool = new pg.Pool({ connectionString: `postgres://app:${PASSWORD}@127.0.0.1:1/appdb`, connectionTimeoutMillis: 10_000 })
  t.teardown(() => pool.end())
  const error = await registrationError(drizzlePg(pool))
  t.equal(error.message, 'fastify-securelogin: cannot reach the PostgreSQL database "appdb" at 127.0.0.1:1 through node-postgres (connect ECONNREFUSED 127.0.0.1:1)')
  t.equal(driverCode(error), 'ECONNREFUSED', 'the driver\'s error is the cause')
  checkNoPassword(t, error)
})

t.test('node-postgres: "localhost" that refuses on every address it resolves to', async (t) => {
  const pool = new pg.Pool({ host: 'localhost', port: 1, database: 'appdb', user: 'app', password: PASSWORD })
  t.teardown(() => pool.end())
  const error = await registrationError(drizzlePg(pool))
  t.match(error.message, /^fastify-securelogin: cannot reach the PostgreSQL database "appdb" at localhost:1 through node-postgres \(connect ECONNREFUSED [^)]+:1\)$/)
  checkNoPassword(t, error)
})

t.test('postgres-js: an unreachable server fails registration naming the database and the driver', async (t) => {
  const client = postgres(`postgres://app:${PASSWORD}@127.0.0.1:1/appdb`, { connect_timeout: 10, max: 2 })
  t.teardown(() => client.end({ timeout: 1 }))
  const error = await registrationError(drizzlePostgresJs(client))
  t.match(error.message, /^fastify-securelogin: cannot reach the PostgreSQL database "appdb" at 127\.0\.0\.1:1 through postgres-js \(connect ECONNREFUSED 127\.0\.0\.1:1\)$/)
  t.equal(driverCode(error), 'ECONNREFUSED')
  checkNoPassword(t, error)
})

t.test('SQLite: a read-only file fails the migration naming the file', async (t) => {
  const file = join(t.testdir(), 'readonly.db')
  new Database(file).close()
  const sqlite = new Database(file, { readonly: true })
  t.teardown(() => sqlite.close())
  const error = await registrationError(drizzleSqlite(sqlite))
  t.equal(error.message, `fastify-securelogin: could not create its tables in the SQLite database ${file} (attempt to write a readonly database)`)
  t.equal(driverCode(error), 'SQLITE_READONLY')
})

t.test('reading the revocation log at startup: the message says where and what to do', async (t) => {
  const file = join(t.testdir(), 'empty.db')
  const sqlite = new Database(file)
  t.teardown(() => sqlite.close())
  const db = drizzleSqlite(sqlite)
  let driverError: unknown
  try {
    db.all(sql`SELECT seq FROM securelogin_revocations`)
  } catch (error) {
    driverError = error
  }
  const error = startupError(db, driverError, 'read-revocations')
  t.equal(error.message, `fastify-securelogin: cannot read the revocation log in the SQLite database ${file} (no such table: securelogin_revocations); run migrate(db) first or register with migrate: true`)
  t.equal(error.cause, driverError)
  t.equal(startupError(db, error, 'read-revocations'), error, 'an error that already says it is ours is not wrapped twice')

  // Registration with migrate: false goes through lib/index.ts, which wraps the same failure.
  t.equal((await registrationError(db, { migrate: false })).message, error.message, 'registration with migrate: false says the same')
})

t.test('describeDatabase names each driver without a password', async (t) => {
  const memory = new Database(':memory:')
  t.teardown(() => memory.close())
  t.equal(describeDatabase(drizzleSqlite(memory)), 'the in-memory SQLite database')

  const pool = new pg.Pool({ host: 'db.internal', port: 6432, database: 'shop', user: 'app', password: PASSWORD })
  t.teardown(() => pool.end())
  t.equal(describeDatabase(drizzlePg(pool)), 'the PostgreSQL database "shop" at db.internal:6432 through node-postgres')
  const quoting = startupError(drizzlePg(pool), new Error(`the server said: password "${PASSWORD}" is wrong`), 'create-tables')
  t.equal(quoting.message, 'fastify-securelogin: could not create its tables in the PostgreSQL database "shop" at db.internal:6432 through node-postgres (the server said: password "***" is wrong)', 'a driver message that quotes the password shows *** instead')

  const socketPool = new pg.Pool({ connectionString: `postgresql://app:${PASSWORD}@/shop?host=/var/run/postgresql` })
  t.teardown(() => socketPool.end())
  t.equal(describeDatabase(drizzlePg(socketPool)), 'the PostgreSQL database "shop" at /var/run/postgresql/.s.PGSQL.5432 through node-postgres')

  const client = new pg.Client({ connectionString: `postgres://app:${PASSWORD}@10.0.0.5:5433/shop` })
  t.equal(describeDatabase(drizzlePg(client)), 'the PostgreSQL database "shop" at 10.0.0.5:5433 through node-postgres')

  const js = postgres(`postgres://app:${PASSWORD}@db1.internal:5432,db2.internal:5433/shop`)
  t.teardown(() => js.end({ timeout: 1 }))
  t.equal(describeDatabase(drizzlePostgresJs(js)), 'the PostgreSQL database "shop" at db1.internal:5432,db2.internal:5433 through postgres-js')
})

t.test('PostgreSQL: a role without CREATE rights fails registration saying what to do', { ...realServer }, async (t) => {
  const role = `securelogin_app_${randomBytes(4).toString('hex')}`
  const server = await createServerDatabase(t, role, PASSWORD)
  const { name, url, admin } = server
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`)
  server.afterDrop.push(() => admin.query(`DROP ROLE IF EXISTS ${role}`))
  const owner = new URL(postgresUrl as string)
  owner.pathname = `/${name}`
  const inDatabase = new pg.Client({ connectionString: owner.toString() })
  await inDatabase.connect()
  // PostgreSQL 15 and later already deny PUBLIC's CREATE on schema public; older ones grant it.
  await inDatabase.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
  await inDatabase.end()
  const where = `the PostgreSQL database "${name}" at ${new URL(url).hostname}:${new URL(url).port || 5432}`

  const pool = new pg.Pool({ connectionString: url, max: 2 })
  server.beforeDrop.push(() => pool.end())
  const noRights = await registrationError(drizzlePg(pool))
  t.equal(noRights.message, `fastify-securelogin: could not create its tables in ${where} through node-postgres (permission denied for database ${name}); run migrate(db) with an owner role, or register with migrate: false`)
  t.equal(driverCode(noRights), '42501', 'the driver\'s error is the cause')
  checkNoPassword(t, noRights)

  // With CREATE on the database the role can make the bookkeeping schema, but not the tables in public.
  await admin.query(`GRANT CREATE ON DATABASE ${name} TO ${role}`)
  const noSchemaRights = await registrationError(drizzlePg(pool))
  t.equal(noSchemaRights.message, `fastify-securelogin: could not create its tables in ${where} through node-postgres (permission denied for schema public); run migrate(db) with an owner role, or register with migrate: false`)

  const client = postgres(url, { max: 2 })
  server.beforeDrop.push(() => client.end({ timeout: 1 }))
  const throughPostgresJs = await registrationError(drizzlePostgresJs(client))
  t.equal(throughPostgresJs.message, `fastify-securelogin: could not create its tables in ${where} through postgres-js (permission denied for schema public); run migrate(db) with an owner role, or register with migrate: false`)
  checkNoPassword(t, throughPostgresJs)
})

t.test('node-postgres and postgres-js instances migrating one empty database at once all succeed', { ...realServer }, async (t) => {
  const server = await createServerDatabase(t)
  // Separate clients, as separate instances would have: nothing in-process serialises them.
  const clients = Array.from({ length: 3 }, () => postgres(server.url, { max: 3 }))
  const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: server.url, max: 3 }))
  server.beforeDrop.push(() => Promise.all([...clients.map((client) => client.end({ timeout: 1 })), ...pools.map((pool) => pool.end())]))
  const dbs: SecureLoginDatabase[] = [...clients.map((client) => drizzlePostgresJs(client)), ...pools.map((pool) => drizzlePg(pool))]
  const results = await Promise.allSettled([...dbs, ...dbs].map((db) => migrate(db)))
  t.same(results.map((result) => result.status), Array(12).fill('fulfilled'), inspect(results.find((result) => result.status === 'rejected')))

  const [client] = clients as [postgres.Sql]
  const tables = await client`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`
  t.same(tables.map((row) => row.table_name), PLUGIN_TABLES)
  t.equal((await client`SELECT hash FROM drizzle.__securelogin_migrations`).length, shippedMigrations('postgres'), 'each migration is recorded once')
  // This database's only: test files running at the same time migrate databases of their own.
  const locks = await client`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
  t.equal(locks[0]?.n, 0, 'no advisory lock is left behind')
  const settings = await client`SELECT current_setting('client_min_messages') AS level`
  t.equal(settings[0]?.level, 'notice', 'the client is back at the default message level')
})

t.test('postgres-js: the plugin migrates and signs a user in', { ...realServer }, async (t) => {
  const server = await createServerDatabase(t)
  const client = postgres(server.url, { max: 4 })
  const database: TestDatabase = {
    db: drizzlePostgresJs(client),
    beforeClose: [],
    query: async (text, params = []) => [...await client.unsafe(text, params as never[])] as Array<Record<string, unknown>>,
  }
  server.beforeDrop.push(async () => {
    for (const close of database.beforeClose) await close()
    await client.end({ timeout: 1 })
  })
  const test = await buildApp(t, 'postgres', {}, database)
  const phone = testPhone()
  const tokens = await signIn(test, phone)
  const me = await test.app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.access_token}` } })
  t.equal(me.json().phone, phone)
  const refreshed = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${tokens.refresh_token}` } })
  t.equal(refreshed.statusCode, 200, refreshed.body)
})

t.test('a number with no account: no SMS, and an info log line with the number masked', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const file = join(t.testdir(), 'log.db')
  const sqlite = new Database(file)
  const outbox = createOutbox()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(async () => {
    await app.close()
    sqlite.close()
  })
  await app.register(secureLogin, { db: drizzleSqlite(sqlite), sms: outbox.provider, jwt: { secret: TEST_SECRET } })
  await app.ready()

  const stranger = '+14155550177'
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone: stranger } })
  t.equal(login.statusCode, 200, login.body)
  t.same(outbox.messages, [], 'no SMS')
  const entries = lines.map((line) => JSON.parse(line) as { level: number, msg: string, phone?: string })
  const noSms = entries.filter((entry) => entry.msg === 'fastify-securelogin: no SMS sent: the number has no account (register it first)')
  t.equal(noSms.length, 1, 'one line says why no SMS was sent')
  t.equal(noSms[0]?.level, 30, 'at info level')
  t.equal(noSms[0]?.phone, '+14*******77', 'with the number masked')
  t.notOk(lines.join('').includes(stranger.slice(3, -2)), 'the full number appears nowhere in the log')

  const member = '+14155550178'
  await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: member } })
  const before = lines.length
  await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone: member } })
  t.equal(outbox.messages.length, 1, 'a number with an account gets its code')
  t.notOk(lines.slice(before).some((line) => line.includes('no SMS sent')), 'and no such line')
})
