import { createHash } from 'node:crypto'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js'
import Fastify from 'fastify'
import pg from 'pg'
import postgres from 'postgres'
import t from 'tap'
import secureLogin from '../lib/index.js'
import { buildApp, createTestDatabase, postgresUrl, post, signIn, testPhone, type TestDatabase } from './helper.js'

// `postgres.namedStatements`: the store's statements get names, so the server parses and plans each
// once per connection. Off by default, because older transaction poolers lose named statements
// (test/pgbouncer.test.ts runs the default through PgBouncer 1.18). Each name is a hash of its text.

const inCi = process.env.CI !== undefined && process.env.CI !== ''
const skip = postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false

/** A scratch database through a pool of one connection, so that the statements it holds can be listed. */
async function oneConnection (t: Parameters<typeof createTestDatabase>[0]) {
  const scratch = await createTestDatabase(t, 'postgres')
  const pool = new pg.Pool({ connectionString: scratch.url, max: 1 })
  const database: TestDatabase = { db: drizzlePg(pool), beforeClose: [], query: async (text, params) => (await pool.query(text, params)).rows }
  t.teardown(async () => {
    for (const close of database.beforeClose) await close()
    await pool.end()
  })
  const held = async () => (await pool.query<{ name: string, statement: string }>('SELECT name, statement FROM pg_prepared_statements ORDER BY name')).rows
  return { database, held }
}

t.test('postgres: with namedStatements every hot statement is named by the hash of its text, and a second sign-in reuses them', { skip }, async (t) => {
  const { database, held } = await oneConnection(t)
  const test = await buildApp(t, 'postgres', { postgres: { namedStatements: true } }, database)
  const first = await signIn(test, testPhone())
  const afterFirst = await held()
  t.ok(afterFirst.length >= 8, `${afterFirst.length} named statements held after one sign-in`)
  for (const { name, statement } of afterFirst) {
    t.equal(name, `securelogin_${createHash('sha256').update(statement).digest('base64url').slice(0, 22)}`, `named by its text: ${statement.slice(0, 60)}`)
  }
  const second = await signIn(test, testPhone())
  t.not(second.userid, first.userid)
  t.equal((await post(test.app, '/refresh', undefined, second.refresh_token)).statusCode, 200)
  t.same((await held()).filter(({ name }) => afterFirst.every((seen) => seen.name !== name)).map(({ name }) => name).length, 1, 'the second sign-in prepared nothing new; only refresh\'s statement joined')
})

t.test('postgres: a named statement whose plan a migration made stale answers 503 once, then works', { skip }, async (t) => {
  const { database } = await oneConnection(t)
  const test = await buildApp(t, 'postgres', { postgres: { namedStatements: true } }, database)
  await signIn(test, testPhone())
  // A migration while the app runs changes the type of a column that login's statements read.
  await database.query('ALTER TABLE securelogin_otp_challenges ALTER COLUMN code_hash TYPE varchar(200)')
  const phone = testPhone()
  await post(test.app, '/register', { phone })
  const stale = await post(test.app, '/login', { phone })
  t.equal(stale.statusCode, 503, 'the stale plan is a moment\'s unavailability, not a 500')
  t.equal(stale.json().code, 'SECURELOGIN_UNAVAILABLE')
  t.ok(stale.headers['retry-after'] !== undefined, 'with Retry-After')
  t.equal((await post(test.app, '/login', { phone })).statusCode, 200, 'the server planned it again: the retry works')
})

t.test('postgres: by default no statement is named', { skip }, async (t) => {
  const { database, held } = await oneConnection(t)
  const test = await buildApp(t, 'postgres', {}, database)
  const tokens = await signIn(test, testPhone())
  t.equal((await post(test.app, '/refresh', undefined, tokens.refresh_token)).statusCode, 200)
  t.same(await held(), [], 'nothing held on the connection')
})

t.test('postgres.js: with namedStatements its statements are prepared, and sign-in works', { skip }, async (t) => {
  const scratch = await createTestDatabase(t, 'postgres')
  const client = postgres(scratch.url as string, { max: 1, onnotice: () => {} })
  const database: TestDatabase = { db: drizzlePostgresJs(client), beforeClose: [], query: async (text, params) => await client.unsafe(text, params as never[]) }
  t.teardown(async () => {
    for (const close of database.beforeClose) await close()
    await client.end()
  })
  const test = await buildApp(t, 'postgres', { postgres: { namedStatements: true } }, database)
  const tokens = await signIn(test, testPhone())
  t.equal((await post(test.app, '/refresh', undefined, tokens.refresh_token)).statusCode, 200)
  const held = await client`SELECT count(*)::int AS n FROM pg_prepared_statements`
  t.ok((held[0]?.n as number) >= 8, 'postgres.js prepared the store\'s statements')
})

t.test('the postgres option is checked', async (t) => {
  for (const postgresOption of [{ namedStatements: 'yes' }, { namedStatement: true }, true]) {
    const app = Fastify()
    t.teardown(() => app.close())
    const database = await createTestDatabase(t, 'sqlite')
    await t.rejects(async () => { await app.register(secureLogin, { db: database.db, sms: { send: async () => {} }, jwt: { secret: 'a'.repeat(48) }, postgres: postgresOption } as never).ready() }, /postgres/, JSON.stringify(postgresOption))
  }
})
