import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { drizzle } from 'drizzle-orm/node-postgres'
import Fastify from 'fastify'
import pg from 'pg'
import t from 'tap'
import secureLogin from '../lib/index.js'
import { createOutbox, dropDatabase, postgresUrl, signIn, TEST_SECRET, testPhone } from './helper.js'

// A database restart, failover or idle-connection reaper closes the pool's idle connections, and
// node-postgres emits 'error' on the pool: with no listener Node ends the process. Needs a real
// PostgreSQL server (CI always has one).
const inCi = process.env.CI !== undefined && process.env.CI !== ''

t.test('connections cut under the pool neither end the process nor stop sign-in', { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }, async (t) => {
  const admin = new pg.Client({ connectionString: postgresUrl })
  await admin.connect()
  const name = `securelogin_faults_${randomBytes(4).toString('hex')}`
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(postgresUrl as string)
  url.pathname = `/${name}`
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 })
  let logged = ''
  const app = Fastify({ logger: { level: 'warn', stream: new Writable({ write (chunk, _encoding, done) { logged += chunk.toString(); done() } }) } })
  t.teardown(async () => {
    await app.close()
    await pool.end()
    await dropDatabase(admin, name)
    await admin.end()
  })
  const outbox = createOutbox()
  t.equal(pool.listenerCount('error'), 0, 'the app attached no error listener of its own')
  // 'await': the code is in the outbox when /login answers, even while the pool reconnects.
  await app.register(secureLogin, { db: drizzle(pool), sms: outbox.provider, jwt: { secret: TEST_SECRET }, smsDelivery: 'await' })
  await app.ready()
  t.equal(pool.listenerCount('error'), 1, 'the plugin attached one')

  const before = await signIn({ app, outbox, database: undefined as never }, testPhone())
  t.ok(before.access_token, 'signed in before the cut')
  t.ok(pool.idleCount > 0, 'the pool holds idle connections')
  // Only an idle connection's loss reaches the pool's 'error' event (a busy one's fails its query):
  // cut when no query of the plugin (the revocation list's refresh) holds a connection.
  for (let waited = 0; pool.idleCount < pool.totalCount && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  const cut = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
  t.ok(cut.rowCount! > 0, `cut ${cut.rowCount} connections`)
  for (let waited = 0; !logged.includes('a database connection was closed under the pool') && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
  t.match(logged, /a database connection was closed under the pool/, 'the loss was logged as a warning')
  t.notMatch(logged, /\+1415/, 'with no number in the log')

  const after = await signIn({ app, outbox, database: undefined as never }, testPhone())
  t.ok(after.access_token, 'sign-in works again on new connections, with no restart')
})

t.test('an app that listens for pool errors itself keeps its own listener alone', { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }, async (t) => {
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 1 })
  const own = () => {}
  pool.on('error', own)
  const app = Fastify()
  t.teardown(async () => {
    await app.close()
    await pool.end()
  })
  try {
    await app.register(secureLogin, { db: drizzle(pool), sms: createOutbox().provider, jwt: { secret: TEST_SECRET }, migrate: false })
    await app.ready()
  } catch {
    // Startup may fail (no tables in this database): the listeners are what this test looks at.
  }
  t.same(pool.listeners('error'), [own], 'no second listener')
})
