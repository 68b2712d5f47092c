import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js'
import pg from 'pg'
import postgres from 'postgres'
import t from 'tap'
import { migrate } from '../lib/index.js'
import { buildApp, dropDatabase, freePort, postgresUrl, shippedMigrations, signIn, testPhone } from './helper.js'

// A transaction-pooling proxy (PgBouncer, Supavisor, RDS Proxy) gives each transaction whichever
// server connection is free: a session-level advisory lock taken by one statement and released by
// another can stay held on a connection nobody owns, and named prepared statements vanish. This runs
// the real PgBouncer in transaction mode in front of the real PostgreSQL server (CI installs both).
const PGBOUNCER = '/usr/sbin/pgbouncer'
const inCi = process.env.CI !== undefined && process.env.CI !== ''
const skip = (postgresUrl === undefined || !existsSync(PGBOUNCER)) && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL and pgbouncer (CI has both)' : false

/** A scratch database on the real server, and PgBouncer (transaction mode, 4 server connections) in front of it. */
async function bouncedDatabase (t: { teardown: (fn: () => Promise<void>) => void }) {
  const server = new URL(postgresUrl as string)
  const admin = new pg.Client({ connectionString: postgresUrl })
  await admin.connect()
  const name = `securelogin_bouncer_${randomBytes(4).toString('hex')}`
  await admin.query(`CREATE DATABASE ${name}`)

  const dir = mkdtempSync(join(tmpdir(), 'securelogin-pgbouncer-'))
  chmodSync(dir, 0o777) // PgBouncer refuses to run as root, and runs as postgres here
  const port = await freePort()
  const user = decodeURIComponent(server.username) || 'postgres'
  writeFileSync(join(dir, 'users.txt'), `"${user}" ""\n`)
  writeFileSync(join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `${name} = host=${server.hostname} port=${server.port || 5432} dbname=${name}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'users.txt')}`,
    'pool_mode = transaction',
    'default_pool_size = 4',
    'max_client_conn = 200',
    'ignore_startup_parameters = extra_float_digits,options',
    `logfile = ${join(dir, 'pgbouncer.log')}`,
  ].join('\n'))
  const args = process.getuid?.() === 0 ? ['-u', 'postgres', join(dir, 'pgbouncer.ini')] : [join(dir, 'pgbouncer.ini')]
  const bouncer = spawn(PGBOUNCER, args, { stdio: 'ignore' })
  const url = `postgres://${user}@127.0.0.1:${port}/${name}`
  for (let attempt = 0; ; attempt++) {
    const probe = new pg.Client({ connectionString: url })
    try {
      await probe.connect()
      await probe.end()
      break
    } catch (error) {
      await probe.end().catch(() => {})
      if (attempt === 100 || bouncer.exitCode !== null) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const closers: Array<() => Promise<unknown>> = []
  t.teardown(async () => {
    for (const close of closers.reverse()) await close()
    bouncer.kill('SIGTERM')
    if (bouncer.exitCode === null) await once(bouncer, 'exit')
    rmSync(dir, { recursive: true, force: true })
    await dropDatabase(admin, name)
    await admin.end()
  })
  return {
    url,
    closers,
    /** Advisory locks held on the real server in this database. */
    advisoryLocks: async () => Number((await admin.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = $1`, [name])).rows[0].n),
    /** Runs a statement on the real server directly, not through the proxy. */
    direct: async (text: string) => {
      const client = new pg.Client({ connectionString: postgresUrl?.replace(/\/[^/]*$/, `/${name}`) })
      await client.connect()
      try { return (await client.query(text)).rows } finally { await client.end() }
    },
  }
}

t.test('behind PgBouncer in transaction mode: instances migrating at once all succeed and no lock stays held', { skip }, async (t) => {
  const bounced = await bouncedDatabase(t)
  // Separate clients, as separate instances would have, through both drivers.
  const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: bounced.url, max: 3 }))
  const clients = Array.from({ length: 3 }, () => postgres(bounced.url, { max: 3, prepare: false, onnotice: () => {} }))
  bounced.closers.push(() => Promise.all([...pools.map((pool) => pool.end()), ...clients.map((client) => client.end({ timeout: 1 }))]))
  const dbs = [...pools.map((pool) => drizzlePg(pool)), ...clients.map((client) => drizzlePostgresJs(client))]
  const deadline = (ms: number) => new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms: a lock is held`)), ms).unref())
  const results = await Promise.allSettled([...dbs, ...dbs].map((db) => Promise.race([migrate(db), deadline(30_000)])))
  t.same(results.map((result) => result.status), Array(12).fill('fulfilled'), String((results.find((result) => result.status === 'rejected') as PromiseRejectedResult | undefined)?.reason))
  t.equal((await bounced.direct('SELECT hash FROM drizzle.__securelogin_migrations')).length, shippedMigrations('postgres'), 'each migration is recorded once')
  t.equal(await bounced.advisoryLocks(), 0, 'no advisory lock is left held on any server connection')

  // A later start (a redeploy) must not wait for a lock left behind.
  await Promise.race([migrate(drizzlePg(pools[0] as pg.Pool)), deadline(10_000)])
  t.pass('a later migration goes through')
})

t.test('behind PgBouncer in transaction mode: the plugin signs users in and rotates tokens', { skip }, async (t) => {
  const bounced = await bouncedDatabase(t)
  const pool = new pg.Pool({ connectionString: bounced.url, max: 8 })
  const database = { db: drizzlePg(pool), beforeClose: [] as Array<() => Promise<unknown>>, query: async (text: string, params?: unknown[]) => (await pool.query(text, params)).rows }
  bounced.closers.push(async () => {
    for (const close of database.beforeClose) await close()
    await pool.end()
  })
  const test = await buildApp(t, 'postgres', {}, database)
  // Concurrent sign-ins spread the statements over PgBouncer's server connections.
  const signedIn = await Promise.all(Array.from({ length: 12 }, () => signIn(test, testPhone())))
  t.equal(signedIn.filter((tokens) => typeof tokens.access_token === 'string').length, 12, 'every sign-in succeeded')
  for (const tokens of signedIn.slice(0, 4)) {
    const refreshed = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${tokens.refresh_token}` } })
    t.equal(refreshed.statusCode, 200, refreshed.body)
  }
})
