import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import pg from 'pg'
import Fastify from 'fastify'
import t from 'tap'
import secureLogin, { migrate, type SecureLoginOptions } from '../lib/index.js'
import { buildApp, createOutbox, createTestDatabase, dialects, post, signIn, TEST_SECRET, testPhone, type Dialect, type TestDatabase } from './helper.js'

const TABLES_SQL: Record<Dialect, string> = {
  sqlite: "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'securelogin%'",
  postgres: "SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'securelogin%'",
}

/** Registers the plugin with `options` (a valid set with `change` applied) and returns the error. */
async function registrationError (database: TestDatabase, change: (options: Record<string, any>) => void): Promise<Error | undefined> {
  const options: Record<string, any> = { db: database.db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET } }
  change(options)
  const app = Fastify({ pluginTimeout: 60_000 })
  database.beforeClose.push(() => app.close())
  try {
    await app.register(secureLogin, options as SecureLoginOptions)
    await app.ready()
  } catch (error) {
    return error as Error
  }
  return undefined
}

const sevenSymbols = 'abcdefg'.repeat(6)
const invalid: Array<[string, (o: Record<string, any>) => void, RegExp]> = [
  ['no options at all', (o) => { for (const key of Object.keys(o)) delete o[key] }, /db must be a Drizzle database/],
  ['jwt missing', (o) => { delete o.jwt }, /jwt\.secret is required/],
  ['jwt.secret missing', (o) => { o.jwt = {} }, /jwt\.secret is required/],
  ['jwt.secret empty', (o) => { o.jwt.secret = '' }, /jwt\.secret must be at least 32 bytes/],
  ['jwt.secret a number', (o) => { o.jwt.secret = 12345678901234567890123456789012 }, /jwt\.secret is required/],
  ['jwt.secret of 31 bytes', (o) => { o.jwt.secret = randomBytes(31) }, /jwt\.secret must be at least 32 bytes long \(got 31\)/],
  ['jwt.secret "secret"', (o) => { o.jwt.secret = 'secret' }, /jwt\.secret must be at least 32 bytes/],
  ['jwt.secret of one repeated letter', (o) => { o.jwt.secret = 'a'.repeat(64) }, /jwt\.secret is too weak/],
  ['jwt.secret of seven distinct letters', (o) => { o.jwt.secret = sevenSymbols }, /jwt\.secret is too weak/],
  ['jwt.secret a zero Buffer', (o) => { o.jwt.secret = Buffer.alloc(64) }, /jwt\.secret is too weak/],
  ['otp.hashKey too short', (o) => { o.otp = { hashKey: 'short' } }, /otp\.hashKey must be at least 32 bytes/],
  ['db missing', (o) => { delete o.db }, /db must be a Drizzle database/],
  ['db an empty object', (o) => { o.db = {} }, /db must be a Drizzle database/],
  ['db a connection string', (o) => { o.db = 'sqlite://app.db' }, /db must be a Drizzle database/],
  ['db a raw better-sqlite3 connection', (o) => { o.db = new Database(':memory:') }, /db must be a Drizzle database/],
  ['db a raw pg Pool', (o) => { o.db = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' }) }, /db must be a Drizzle database/],
  ['sms missing', (o) => { delete o.sms }, /sms is required/],
  ['sms null', (o) => { o.sms = null }, /sms is required/],
  ['sms without send()', (o) => { o.sms = { name: 'nothing' } }, /sms must have an async send/],
  ['sms.send not a function', (o) => { o.sms = { send: 'yes' } }, /sms must have an async send/],
  ['sms with start() but no check()', (o) => { o.sms = { start: async () => {} } }, /sms must have an async send/],
  ['prefix without a leading /', (o) => { o.prefix = 'api/auth' }, /prefix must be a path starting with \//],
  ['prefix a number', (o) => { o.prefix = 5 }, /prefix must be a path starting with \//],
  ['defaultCountry lower case', (o) => { o.defaultCountry = 'us' }, /defaultCountry must be a two-letter country code/],
  ['defaultCountry of three letters', (o) => { o.defaultCountry = 'USA' }, /defaultCountry must be a two-letter country code/],
  ['defaultCountry a number', (o) => { o.defaultCountry = 1 }, /defaultCountry must be a two-letter country code/],
  // BUG (defaultCountry not checked against real countries): 'XX' passes the /^[A-Z]{2}$/ check and
  // every national number then answers SECURELOGIN_PHONE_INVALID.
  ['defaultCountry not a country (XX)', (o) => { o.defaultCountry = 'XX' }, /defaultCountry must be a two-letter country code/],
  ['otp.length 3', (o) => { o.otp = { length: 3 } }, /otp\.length must be an integer from 4 to 10 \(got 3\)/],
  ['otp.length 11', (o) => { o.otp = { length: 11 } }, /otp\.length must be an integer from 4 to 10/],
  ['otp.length 6.5', (o) => { o.otp = { length: 6.5 } }, /otp\.length must be an integer from 4 to 10/],
  ['otp.length "6"', (o) => { o.otp = { length: '6' } }, /otp\.length must be an integer from 4 to 10/],
  ['otp.maxAttempts 0', (o) => { o.otp = { maxAttempts: 0 } }, /otp\.maxAttempts must be an integer from 1 to 10/],
  ['otp.maxAttempts 11', (o) => { o.otp = { maxAttempts: 11 } }, /otp\.maxAttempts must be an integer from 1 to 10/],
  ['otp.maxAttempts -1', (o) => { o.otp = { maxAttempts: -1 } }, /otp\.maxAttempts must be an integer from 1 to 10/],
  ['otp.maxAttempts NaN', (o) => { o.otp = { maxAttempts: Number.NaN } }, /otp\.maxAttempts must be an integer from 1 to 10/],
  ['otp.message not a function', (o) => { o.otp = { message: 'your code' } }, /otp\.message must be a function/],
  ['refreshTokenTtl shorter than accessTokenTtl', (o) => { o.jwt.accessTokenTtl = '1h'; o.jwt.refreshTokenTtl = '30m' }, /jwt\.refreshTokenTtl must not be shorter than jwt\.accessTokenTtl/],
  ['rateLimit.sendsPerPhone.max 0', (o) => { o.rateLimit = { sendsPerPhone: { max: 0, window: '1h' } } }, /rateLimit\.sendsPerPhone\.max must be an integer/],
  ['rateLimit.sendsPerIp not an object', (o) => { o.rateLimit = { sendsPerIp: 5 } }, /rateLimit\.sendsPerIp must be \{ max, window \}/],
]
const durationOptions: Array<[string, (o: Record<string, any>, value: unknown) => void]> = [
  ['jwt.accessTokenTtl', (o, v) => { o.jwt.accessTokenTtl = v }],
  ['jwt.refreshTokenTtl', (o, v) => { o.jwt.refreshTokenTtl = v }],
  ['otp.ttl', (o, v) => { o.otp = { ttl: v } }],
  ['otp.resendInterval', (o, v) => { o.otp = { resendInterval: v } }],
  ['revocationMaxDelay', (o, v) => { o.revocationMaxDelay = v }],
  ['smsTimeout', (o, v) => { o.smsTimeout = v }],
  ['rateLimit.verifiesPerIp.window', (o, v) => { o.rateLimit = { verifiesPerIp: { max: 5, window: v } } }],
]
for (const [name, set] of durationOptions) {
  // BUG (unclear duration message): an object reaches @lukeed/ms, which throws "val.toLowerCase is
  // not a function" instead of naming the option. (null, like undefined, means the default.)
  for (const value of ['abc', -1, 0, '', '-5m', Number.NaN, Number.POSITIVE_INFINITY, {}, ['10m']]) {
    const escaped = name.replace(/\./g, '\\.')
    invalid.push([`${name} ${JSON.stringify(value) ?? String(value)}`, (o) => set(o, value), new RegExp(`${escaped} must be a positive number of seconds or a duration such as '10m'`)])
  }
}

for (const dialect of dialects) {
  t.test(`${dialect}: invalid options fail at registration with a message naming the option`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    for (const [name, change, message] of invalid) {
      const error = await registrationError(database, change)
      t.ok(error, `${name}: registration fails`)
      t.match(error?.message, /^fastify-securelogin: /, `${name}: the message names the plugin`)
      t.match(error?.message, message, `${name}: ${error?.message}`)
    }
  })

  t.test(`${dialect}: options are checked before any table is created`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    for (const change of [(o: Record<string, any>) => { o.jwt.secret = 'short' }, (o: Record<string, any>) => { delete o.sms }, (o: Record<string, any>) => { o.otp = { length: 12 } }]) {
      t.ok(await registrationError(database, change))
    }
    t.same(await database.query(TABLES_SQL[dialect]), [])
  })

  t.test(`${dialect}: defaults — 10-minute access tokens, 6-digit codes, routes under /api/auth`, async (t) => {
    const test = await buildApp(t, dialect)
    const phone = testPhone()
    const tokens = await signIn(test, phone)
    t.equal(tokens.expires_in, 600)
    t.match(test.outbox.lastCodeFor(phone), /^\d{6}$/)
    const sms = test.outbox.messages.at(-1)!
    t.match(sms.body, /expires in 10 minutes/, 'the default text gives the lifetime in minutes')
    const access = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString())
    const refresh = JSON.parse(Buffer.from(tokens.refresh_token.split('.')[1]!, 'base64url').toString())
    t.equal(access.exp - access.iat, 600)
    t.equal(refresh.exp - refresh.iat, 60 * 24 * 3600, 'a refresh token lives 60 days')
    const [row] = await test.database.query('SELECT sent_at, expires_at FROM securelogin_otp_challenges WHERE phone = $1', [phone])
    t.equal(new Date(row!.expires_at as any).getTime() - new Date(row!.sent_at as any).getTime(), 600_000, 'a code lives 10 minutes')
  })

  t.test(`${dialect}: custom values are applied`, async (t) => {
    const message = ({ code, ttlMinutes }: { code: string, ttlMinutes: number }) => `Your ACME code: ${code} (${ttlMinutes} min)`
    const test = await buildApp(t, dialect, {
      prefix: '/auth',
      otp: { length: 8, ttl: '3m', message },
      jwt: { accessTokenTtl: '2m', refreshTokenTtl: 3600 },
    })
    const phone = testPhone()
    const register = await test.app.inject({ method: 'POST', url: '/auth/register', payload: { phone } })
    t.equal(register.statusCode, 201, 'routes live under the custom prefix')
    t.equal((await post(test.app, '/register', { phone })).statusCode, 404, 'and no longer under /api/auth')
    t.equal((await test.app.inject({ method: 'POST', url: '/auth/login', payload: { phone } })).statusCode, 200)
    const code = test.outbox.lastCodeFor(phone)
    t.match(code, /^\d{8}$/, 'an 8-digit code')
    t.equal(test.outbox.messages.at(-1)!.body, `Your ACME code: ${code} (3 min)`, 'the custom text is exactly what is sent')
    const verify = await test.app.inject({ method: 'POST', url: '/auth/verify_sms', payload: { phone, token: code } })
    t.equal(verify.statusCode, 200, verify.body)
    t.equal(verify.json().expires_in, 120, "accessTokenTtl '2m' gives expires_in 120")
    const refresh = JSON.parse(Buffer.from(verify.json().refresh_token.split('.')[1], 'base64url').toString())
    t.equal(refresh.exp - refresh.iat, 3600, 'refreshTokenTtl as a number of seconds')
    const refreshed = await test.app.inject({ method: 'POST', url: '/auth/refresh', headers: { authorization: `Bearer ${verify.json().refresh_token}` } })
    t.equal(refreshed.statusCode, 200)
    t.equal(refreshed.json().expires_in, 120)
  })

  t.test(`${dialect}: a 4-digit and a 10-digit code work end to end`, async (t) => {
    for (const length of [4, 10]) {
      const test = await buildApp(t, dialect, { otp: { length } })
      const phone = testPhone()
      const tokens = await signIn(test, phone)
      t.match(test.outbox.lastCodeFor(phone), new RegExp(`^\\d{${length}}$`))
      t.ok(tokens.access_token)
    }
  })

  // BUG (numeric duration strings): @lukeed/ms reads '600' as 600 milliseconds, so
  // accessTokenTtl: '600' (as read from an environment variable) silently issues tokens that
  // expire at once. Seconds as a number or as a digit string must mean the same.
  t.test(`${dialect}: a duration given as a digit string means seconds, like a number`, async (t) => {
    const test = await buildApp(t, dialect, { jwt: { accessTokenTtl: '600' } })
    const tokens = await signIn(test, testPhone())
    t.equal(tokens.expires_in, 600)
  })

  t.test(`${dialect}: a prefix with a trailing slash still serves /auth/register`, async (t) => {
    const test = await buildApp(t, dialect, { prefix: '/auth/' })
    const res = await test.app.inject({ method: 'POST', url: '/auth/register', payload: { phone: testPhone() } })
    t.equal(res.statusCode, 201, res.body)
  })

  t.test(`${dialect}: migrate: false leaves an empty database alone; migrate(db) then makes the plugin work`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const error = await registrationError(database, (o) => { o.migrate = false })
    t.ok(error, 'without its tables the plugin cannot start')
    t.same(await database.query(TABLES_SQL[dialect]), [], 'migrate: false created no table')
    // BUG (unclear startup error): the error is the driver's "no such table: securelogin_sessions"
    // (SQLite) / 'relation "securelogin_sessions" does not exist' (PostgreSQL) instead of a message
    // that says what to do.
    t.match(error?.message, /^fastify-securelogin: .*migrate/, `the message says to run migrate: ${error?.message}`)

    await migrate(database.db)
    t.same((await database.query(TABLES_SQL[dialect])).map((row) => row.name).sort(),
      ['securelogin_otp_challenges', 'securelogin_rate_limits', 'securelogin_sessions', 'securelogin_users'])
    const test = await buildApp(t, dialect, { migrate: false }, database)
    const tokens = await signIn(test, testPhone())
    t.equal(tokens.expires_in, 600, 'the plugin works on the migrated database')
  })
}
