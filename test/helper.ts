import { readFileSync } from 'node:fs'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import Fastify, { type FastifyInstance } from 'fastify'
import secureLogin, { type SecureLoginDatabase, type SecureLoginOptions, type SmsMessage } from '../lib/index.js'
import type { Store, User } from '../lib/store/index.js'

export type Dialect = 'sqlite' | 'postgres'
export const dialects: Dialect[] = ['sqlite', 'postgres']

export const TEST_SECRET = randomBytes(48).toString('base64')

/**
 * PostgreSQL for tests: the server named by SECURELOGIN_TEST_POSTGRES_URL (each test gets its own
 * database on it), otherwise an in-memory PGlite. CI must test the real server, so there the
 * variable is required.
 */
export const postgresUrl = process.env.SECURELOGIN_TEST_POSTGRES_URL
if (process.env.CI !== undefined && process.env.CI !== '' && postgresUrl === undefined) {
  throw new Error('CI is set but SECURELOGIN_TEST_POSTGRES_URL is not: the PostgreSQL tests must run against a real server in CI')
}

type Tap = { testdir: () => string, teardown: (fn: () => unknown) => void }

export interface TestDatabase {
  db: SecureLoginDatabase
  /** Run before the database closes: apps using it must stop first. */
  beforeClose: Array<() => Promise<unknown>>
  /** Runs raw SQL, for tests that inspect or age rows directly. */
  query: (text: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>
  /** The connection string of a real PostgreSQL test database (absent for SQLite and PGlite). */
  url?: string
}

/** What a test may ask of its database's Drizzle instance: a logger sees every statement the plugin runs. */
export interface TestDatabaseOptions { logger?: { logQuery: (query: string, params: unknown[]) => void } }

/**
 * Drops a scratch database once its last connection is gone. pg's pool.end() resolves before its
 * sockets have closed, and FORCE would kill them mid-close, so it retries for a few seconds.
 */
export async function dropDatabase (admin: pg.Client, name: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${name}`)
      return
    } catch (error) {
      if (attempt === 50) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

/** A fresh, empty database of the dialect, removed when the test ends. */
export async function createTestDatabase (t: Tap, dialect: Dialect, file?: string, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const sqlite = new Database(file ?? join(t.testdir(), 'test.db'))
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('busy_timeout = 5000')
    const beforeClose: TestDatabase['beforeClose'] = []
    t.teardown(async () => {
      for (const close of beforeClose) await close()
      sqlite.close()
    })
    return {
      db: drizzleSqlite(sqlite, options),
      beforeClose,
      query: async (text, params = []) => {
        const statement = sqlite.prepare(text.replace(/\$\d+/g, '?'))
        return statement.reader ? statement.all(...params) as Array<Record<string, unknown>> : (statement.run(...params), [])
      },
    }
  }
  if (postgresUrl !== undefined) {
    const name = `securelogin_test_${randomBytes(6).toString('hex')}`
    const admin = new pg.Client({ connectionString: postgresUrl })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    const url = new URL(postgresUrl)
    url.pathname = `/${name}`
    const pool = new pg.Pool({ connectionString: url.toString(), max: 10 })
    const beforeClose: TestDatabase['beforeClose'] = []
    t.teardown(async () => {
      for (const close of beforeClose) await close()
      await pool.end()
      await dropDatabase(admin, name)
      await admin.end()
    })
    return { db: drizzlePg(pool, options), beforeClose, query: async (text, params) => (await pool.query(text, params)).rows, url: url.toString() }
  }
  const client = new PGlite()
  const beforeClose: TestDatabase['beforeClose'] = []
  t.teardown(async () => {
    for (const close of beforeClose) await close()
    await client.close()
  })
  return { db: drizzlePglite(client, options), beforeClose, query: async (text, params) => (await client.query<Record<string, unknown>>(text, params)).rows }
}

/** An SMS provider that keeps what it was asked to send, for tests to read the code. */
export function createOutbox () {
  const messages: SmsMessage[] = []
  return {
    messages,
    provider: { name: 'outbox', async send (message: SmsMessage) { messages.push(message) } },
    lastCodeFor (phone: string): string {
      const message = messages.filter((m) => m.to === phone).at(-1)
      if (message === undefined) throw new Error(`no SMS was sent to ${phone}`)
      return message.code
    },
  }
}

export type Outbox = ReturnType<typeof createOutbox>

export interface TestApp {
  app: FastifyInstance
  outbox: Outbox
  database: TestDatabase
}

type Overrides = Partial<Omit<SecureLoginOptions, 'db' | 'jwt'>> & { jwt?: Partial<SecureLoginOptions['jwt']> }

/** A Fastify app with the plugin and a protected route, closed when the test ends. */
export async function buildApp (t: Tap, dialect: Dialect, overrides: Overrides = {}, database?: TestDatabase): Promise<TestApp> {
  const db = database ?? await createTestDatabase(t, dialect)
  const outbox = createOutbox()
  // Generous: the suite runs files in parallel on two cores, and PGlite starts slowly.
  const app = Fastify({ pluginTimeout: 60_000 })
  db.beforeClose.push(() => app.close())
  await app.register(secureLogin, {
    db: db.db,
    sms: outbox.provider,
    ...overrides,
    jwt: { secret: TEST_SECRET, ...overrides.jwt },
  })
  app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
  app.get('/fresh', { preHandler: app.authenticateFresh }, async (request) => request.user)
  await app.ready()
  return { app, outbox, database: db }
}

let phoneCounter = 0
/** A distinct valid US number per call. */
export function testPhone (): string {
  phoneCounter += 1
  return `+1415555${String(1000 + (process.pid * 7 + phoneCounter) % 9000).padStart(4, '0')}`
}

export function post (app: FastifyInstance, url: string, payload?: object, token?: string) {
  return app.inject({
    method: 'POST',
    url: `/api/auth${url}`,
    payload,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
}

/** The claims of a JWT (its payload, not verified). */
export function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8'))
}

/** Opens a code for `phone` in the store the way /login and /phone do; its challenge id. */
export async function openCode (store: Store, phone: string): Promise<string> {
  const now = new Date()
  const challengeId = randomUUID()
  await store.openChallenge({ phone, challengeId, codeHash: 'x', now, expiresAt: new Date(now.getTime() + 60_000), resendIntervalMs: 0 })
  return challengeId
}

/** A live session of `user`, opened in the store as verify_sms opens one; its id. */
export async function sessionOf (store: Store, user: User): Promise<string> {
  const now = new Date()
  const challengeId = await openCode(store, user.phone as string)
  const session = await store.consumeIntoSession({ phone: user.phone as string, challengeId, userId: user.id, now, expiresAt: new Date(now.getTime() + 60_000), device: { userAgent: null, ip: null } })
  if (session === undefined) throw new Error('no session opened')
  return session.id
}

/** Registers (if needed), sends a code and verifies it; returns the verify_sms answer. */
export async function signIn (test: TestApp, phone: string): Promise<{ userid: string, access_token: string, refresh_token: string, expires_in: number }> {
  await post(test.app, '/register', { phone })
  const login = await post(test.app, '/login', { phone })
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.body}`)
  const verify = await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })
  if (verify.statusCode !== 200) throw new Error(`verify failed: ${verify.body}`)
  return verify.json()
}

/** The rejection of a promise that must reject, for tests that inspect the error itself. */
export async function caught (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

/**
 * PostgreSQL: waits until a statement of the current database waits for a row lock (or for 5 s, or
 * until `settled()`), for a test that holds a lock and must release it only once the write it
 * races is blocked on it. `query` runs SQL on any connection to that database and answers its rows.
 */
export async function lockWaited (query: (text: string) => Promise<Array<Record<string, unknown>>>, settled: () => boolean = () => false): Promise<boolean> {
  const waiting = async () => Number((await query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))[0]?.n) > 0
  for (let waited = 0; !settled() && waited < 5000; waited += 20) {
    if (await waiting()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return waiting()
}

/** Waits until `condition` holds, checking every 20 ms, for at most `ms`; answers whether it held. */
export async function waitFor (condition: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (!condition() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
  return condition()
}

/** A TCP port free on 127.0.0.1 right now, for a server the test starts in another process. */
export async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

/** The plugin's tables, as migrate() creates them, in name order. */
export const PLUGIN_TABLES = ['securelogin_otp_challenges', 'securelogin_phone_history', 'securelogin_rate_limits', 'securelogin_revocations', 'securelogin_sessions', 'securelogin_users']

/** How many migrations the package ships for the dialect (each recorded once when applied). */
export function shippedMigrations (dialect: Dialect): number {
  return JSON.parse(readFileSync(new URL(`../migrations/${dialect}/meta/_journal.json`, import.meta.url), 'utf8')).entries.length
}
