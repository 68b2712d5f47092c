import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import secureLogin, { consoleSms, twilioMessaging, type SecureLoginOptions } from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { fakeTwilioClient, startTwilioFake } from './fixtures/twilio-fake.js'
import { createOutbox, createTestDatabase, dialects, TEST_SECRET, testPhone, type Dialect, type TestDatabase } from './helper.js'

// Findings of the hostile review of issue 8 (client addresses, numbers in logs, usernames,
// consoleSms outside development, weak secrets), each with the test that failed before its fix.

interface LoggedApp {
  app: ReturnType<typeof Fastify>
  database: TestDatabase
  outbox: ReturnType<typeof createOutbox>
  /** Every log line written so far. */
  logs: () => string
}

type PluginOverrides = Partial<Omit<SecureLoginOptions, 'db' | 'jwt'>> & { jwt?: Partial<SecureLoginOptions['jwt']> }

/** buildApp with Fastify options of the test's choice and the log lines captured. */
async function loggedApp (t: Test, dialect: Dialect, fastifyOptions: FastifyServerOptions = {}, overrides: PluginOverrides = {}, before?: (app: FastifyInstance) => void): Promise<LoggedApp> {
  const database = await createTestDatabase(t, dialect)
  const outbox = createOutbox()
  let logged = ''
  const stream = new Writable({ write (chunk, _encoding, done) { logged += chunk.toString(); done() } })
  const app = Fastify({ pluginTimeout: 60_000, logger: { level: 'info', stream }, ...fastifyOptions })
  database.beforeClose.push(() => app.close())
  before?.(app)
  await app.register(secureLogin, { db: database.db, sms: outbox.provider, ...overrides, jwt: { secret: TEST_SECRET, ...overrides.jwt } })
  await app.ready()
  return { app, database, outbox, logs: () => logged }
}

async function rateLimitKeys (database: TestDatabase): Promise<string[]> {
  return (await database.query('SELECT key FROM securelogin_rate_limits')).map((row) => row.key as string)
}

async function usernames (database: TestDatabase): Promise<unknown[]> {
  return (await database.query('SELECT username FROM securelogin_users')).map((row) => row.username)
}

for (const dialect of dialects) {
  // ---------------------------------------------------------------- 1. client addresses

  // Each route with a per-client limit: how to call it, what it answers when served, and its rule.
  const clientLimited = [
    { url: '/register', action: 'register', rule: 'registersPerIp', served: 201, payload: () => ({ phone: testPhone() }) },
    { url: '/login', action: 'send', rule: 'sendsPerIp', served: 200, payload: () => ({ phone: testPhone() }) },
    { url: '/verify_sms', action: 'verify', rule: 'verifiesPerIp', served: 401, payload: () => ({ phone: testPhone(), token: '123456' }) },
  ] as const

  for (const route of clientLimited) {
    const limitedTo = (max: number) => ({ rateLimit: { [route.rule]: { max, window: '1h' } } }) as PluginOverrides

    t.test(`${dialect}: ${route.url}: a forwarded address that is not an IP gets no allowance and is not stored`, async (t) => {
      const { app, database } = await loggedApp(t, dialect, { trustProxy: true }, limitedTo(1))
      const call = (forwarded: string) => app.inject({ method: 'POST', url: `/api/auth${route.url}`, payload: route.payload(), headers: { 'x-forwarded-for': forwarded } })
      for (const forwarded of ['not-an-ip', 'x'.repeat(2000), '203.0.113.7:80', '999.1.1.1']) {
        const answer = await call(forwarded)
        t.equal(answer.statusCode, 400, `${forwarded.slice(0, 20)}: refused`)
        t.equal(answer.json().code, 'SECURELOGIN_CLIENT_ADDRESS_INVALID')
      }
      t.same(await rateLimitKeys(database), [], 'no key was stored for them')
      t.same(await usernames(database), [], 'and nothing was created')
      t.equal((await call('203.0.113.7')).statusCode, route.served, 'a real address is served')
    })

    t.test(`${dialect}: ${route.url}: a client whose connection is gone by the time the route runs is still counted under its own address`, async (t) => {
      // As when a client resets the connection right after sending: the socket no longer knows its peer.
      const { app, database } = await loggedApp(t, dialect, {}, limitedTo(1), (root) => {
        root.addHook('preValidation', async (request) => { Object.defineProperty(request.raw.socket, 'remoteAddress', { value: undefined, configurable: true }) })
      })
      const call = (ip: string) => app.inject({ method: 'POST', url: `/api/auth${route.url}`, payload: route.payload(), remoteAddress: ip })
      t.equal((await call('198.51.100.1')).statusCode, route.served)
      t.equal((await call('198.51.100.2')).statusCode, route.served, 'another client does not share a bucket with it')
      const keys = (await rateLimitKeys(database)).filter((key) => key.startsWith(`${route.action}:ip:`)).sort()
      t.same(keys, [`${route.action}:ip:198.51.100.1`, `${route.action}:ip:198.51.100.2`])
    })

    t.test(`${dialect}: ${route.url}: IPv6 clients also count per /56 (4x) and per /48 (16x)`, async (t) => {
      const { app, database } = await loggedApp(t, dialect, {}, limitedTo(1))
      const call = (ip: string) => app.inject({ method: 'POST', url: `/api/auth${route.url}`, payload: route.payload(), remoteAddress: ip })
      const inSite = (net56: number, net64: number) => `2001:db8:1:${((net56 << 8) | net64).toString(16)}::1`
      for (let net56 = 0; net56 < 4; net56++) {
        for (let net64 = 0; net64 < 4; net64++) t.equal((await call(inSite(net56, net64))).statusCode, route.served, `/56 #${net56}, /64 #${net64}`)
      }
      t.equal((await call(inSite(0, 4))).statusCode, 429, 'a fifth /64 of one /56 is refused')
      t.equal((await call(inSite(4, 0))).statusCode, 429, 'a 17th /64 of one /48 is refused')
      t.equal((await call('2001:db8:2::1')).statusCode, route.served, 'another /48 is not')
      const keys = await rateLimitKeys(database)
      t.ok(keys.includes(`${route.action}:ip:2001:0db8:0001:0000::/64`), 'the /64 key is as before')
      t.ok(keys.includes(`${route.action}:ip:2001:0db8:0001:0000::/56`), 'a /56 key')
      t.ok(keys.includes(`${route.action}:ip:2001:0db8:0001::/48`), 'a /48 key')
    })
  }

  t.test(`${dialect}: trustProxy: true is warned about once`, async (t) => {
    const trusting = await loggedApp(t, dialect, { trustProxy: true })
    await trusting.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone() }, headers: { 'x-forwarded-for': '203.0.113.7' } })
    await trusting.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone() } })
    const warnings = trusting.logs().split('\n').filter((line) => line.includes('"level":40') && line.includes('trustProxy'))
    t.equal(warnings.length, 1, 'one warning')
    t.match(warnings[0], /address or the number of hops/, 'saying what to give instead')
    for (const trustProxy of ['127.0.0.1', 1, false] as const) {
      const careful = await loggedApp(t, dialect, { trustProxy } as FastifyServerOptions)
      await careful.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone() }, headers: { 'x-forwarded-for': '203.0.113.7' } })
      t.notMatch(careful.logs(), /trustProxy/, `no warning with trustProxy: ${String(trustProxy)}`)
    }
  })

  // ---------------------------------------------------------------- 2. numbers in logs

  t.test(`${dialect}: a vendor error that quotes the number logs it masked, and no account SID`, async (t) => {
    const fake = await startTwilioFake()
    t.teardown(() => fake.close())
    const phone = testPhone()
    const sms = twilioMessaging({ client: fakeTwilioClient(fake), from: '+15005550006' })
    const { app, logs } = await loggedApp(t, dialect, {}, { sms })
    t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone } })).statusCode, 201)
    fake.setMode({ status: 400, code: 21211, message: `The 'To' number ${phone} is not a valid phone number (account ${fake.accountSid}, call 0044 20 7946 0958)` }, 'messages')
    const answer = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    t.equal(answer.statusCode, 200, 'background delivery: the answer does not wait for the vendor')
    await app.close() // waits for the delivery still in flight
    const logged = logs()
    t.match(logged, /SMS vendor call failed/, 'the failure is logged')
    t.match(logged, /21211/, 'with the vendor code')
    t.match(logged, /is not a valid phone number/, 'and the vendor text')
    t.notOk(logged.includes(phone.slice(2)), 'the number is not in the log')
    t.notOk(logged.includes('7946'), 'nor a number written with spaces')
    t.notOk(logged.includes(fake.accountSid), 'nor the account SID')
    t.notOk(logged.includes(fake.accountSid.slice(2)), 'not even without its prefix')
  })

  t.test(`${dialect}: the error handler's log masks numbers too`, async (t) => {
    const phone = testPhone()
    const { app, outbox, logs } = await loggedApp(t, dialect, {}, { jwt: { claims: (user) => { throw new Error(`no roles found for ${user.phone}`) } } })
    await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone } })
    await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    const answer = await app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone, token: outbox.lastCodeFor(phone) } })
    t.equal(answer.statusCode, 500)
    t.match(logs(), /no roles found for/, 'the error is logged')
    t.notOk(logs().includes(phone.slice(2)), 'without the number')
  })

  // ---------------------------------------------------------------- 3. usernames

  t.test(`${dialect}: usernames with control, format, surrogate or private-use characters are refused`, async (t) => {
    const { app, database } = await loggedApp(t, dialect)
    const refused = {
      'a NUL byte': 'Ada\u0000',
      'a bell': 'Ada\u0007',
      'a C1 control': 'Ada\u0085x',
      'a right-to-left override': 'Ada\u202Egnp.exe',
      'a left-to-right isolate': '\u2066Ada',
      'a zero-width space': 'A\u200Bda',
      'a lone zero-width joiner': 'Ada\u200D',
      'a byte-order mark inside': 'A\uFEFFda',
      'a soft hyphen': 'A\u00ADda',
      'a tag character': 'Ada\u{E0041}',
      'a lone high surrogate': 'Ada\uD800',
      'a lone low surrogate': '\uDC00Ada',
      'a line separator': 'Ada\u2028Lovelace',
      'a private-use character': 'Ada\uE000',
      'only spaces': '   ',
      // Blank or invisible though no control or format character (hostile review 2026-12-05).
      'a Hangul filler': '\u3164',
      'a Hangul filler after a name': 'admin\u3164',
      'a Hangul choseong filler': 'Ada\u115F',
      'a Hangul jungseong filler': '\u1160Ada',
      'a halfwidth Hangul filler': 'Ada\uFFA0',
      'a braille blank': '\u2800',
      'a combining grapheme joiner': 'Ad\u034Fa',
      'a variation selector after a letter': 'admin\uFE0F',
      'two variation selectors after an emoji': '\u2764\uFE0F\uFE0F',
      'a variation selector first': '\uFE0FAda',
      'a Mongolian variation selector after a Latin letter': 'Ada\u180B',
      'two Mongolian variation selectors in a row': '\u182D\u180B\u180B',
      'a variation selector after a digit without a keycap': 'admin1\uFE0F',
    }
    for (const [name, username] of Object.entries(refused)) {
      const answer = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone(), username } })
      t.equal(answer.statusCode, 400, `${name}: 400`)
      t.equal(answer.json().code, 'SECURELOGIN_BAD_REQUEST', `${name}: SECURELOGIN_BAD_REQUEST`)
    }
    t.same(await usernames(database), [], 'nothing was stored')
  })

  t.test(`${dialect}: usernames are stored in NFC without surrounding spaces; joiners inside words and emoji stay`, async (t) => {
    const { app, database } = await loggedApp(t, dialect)
    const cases: Array<[string, string]> = [
      ['  Ame\u0301lie\u00A0', 'Am\u00E9lie'],
      ['\u0639\u0644\u06CC\u200C\u0627\u06A9\u0628\u0631', '\u0639\u0644\u06CC\u200C\u0627\u06A9\u0628\u0631'], // Persian: a ZWNJ between letters
      ['\u{1F468}\u200D\u{1F469}\u200D\u{1F467} family', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467} family'],
      ['\u{1F469}\u{1F3FD}\u200D\u{1F4BB}', '\u{1F469}\u{1F3FD}\u200D\u{1F4BB}'],
      ['\u{1F3F3}\uFE0F\u200D\u{1F308}', '\u{1F3F3}\uFE0F\u200D\u{1F308}'],
      ['\u0915\u094D\u200D\u0937', '\u0915\u094D\u200D\u0937'], // Devanagari: a ZWJ after a virama
      ['Ada \u2764\uFE0F', 'Ada \u2764\uFE0F'], // emoji style
      ['1\uFE0F\u20E3', '1\uFE0F\u20E3'], // a keycap
      ['\u845B\u{E0100}\u98FE', '\u845B\u{E0100}\u98FE'], // a Han glyph variant (Japanese)
      ['\u182D\u180B\u1820', '\u182D\u180B\u1820'], // Mongolian: a free variation selector after a letter
    ]
    for (const [given, stored] of cases) {
      const phone = testPhone()
      const answer = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone, username: given } })
      t.equal(answer.statusCode, 201, JSON.stringify(given))
      const rows = await database.query('SELECT username FROM securelogin_users WHERE phone = $1', [phone])
      t.equal(rows[0]?.username, stored, `${JSON.stringify(given)} is stored as ${JSON.stringify(stored)}`)
    }
  })

  t.test(`${dialect}: a later /register cannot rename an account nobody has verified yet`, async (t) => {
    const { app, database, outbox } = await loggedApp(t, dialect)
    const phone = testPhone()
    const register = (username?: string) => app.inject({ method: 'POST', url: '/api/auth/register', payload: username === undefined ? { phone } : { phone, username } })
    t.equal((await register('Ada')).statusCode, 201)
    t.equal((await register('Ada')).statusCode, 201, 'the same name again')
    t.same(await usernames(database), ['Ada'], 'agreeing registrations keep it')
    t.equal((await register('Mallory')).statusCode, 201)
    t.same(await usernames(database), [null], 'a disagreeing one leaves the account with no name, not the newcomer\'s')
    t.equal((await register('Mallory')).statusCode, 201)
    t.same(await usernames(database), [null], 'and it stays without one')
    await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    t.equal((await app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone, token: outbox.lastCodeFor(phone) } })).statusCode, 200)
    t.equal((await register('Eve')).statusCode, 201)
    t.same(await usernames(database), [null], 'a verified account is never renamed by /register')
    // Second hostile review: a squatter names the number first, the owner registers without a name.
    const other = testPhone()
    await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: other, username: 'Official Support' } })
    await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: other } })
    t.same((await database.query('SELECT username FROM securelogin_users WHERE phone = $1', [other])).map((row) => row.username), [null], 'a registration without a name also takes the squatter\'s away')
  })

  t.test(`${dialect}: with signUp 'on-verify' a name given to /register is not kept (the owner may never register)`, async (t) => {
    const { app, database, outbox } = await loggedApp(t, dialect, {}, { signUp: 'on-verify' })
    const phone = testPhone()
    t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone, username: 'Official Support' } })).statusCode, 201)
    await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    t.equal((await app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone, token: outbox.lastCodeFor(phone) } })).statusCode, 200)
    t.same(await usernames(database), [null], 'the owner signed in to an account nobody named')
  })
}

// ---------------------------------------------------------------- 4. consoleSms outside development

t.test('consoleSms() runs only when NODE_ENV is development or test, unless allowed explicitly', async (t) => {
  const saved = process.env.NODE_ENV
  t.teardown(() => { if (saved === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = saved })
  const withEnv = (value: string | undefined, make: () => unknown) => {
    if (value === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = value
    return make
  }
  for (const value of [undefined, '', 'production', 'Production', 'staging', 'prod', 'dev']) {
    t.throws(withEnv(value, () => consoleSms()), /consoleSms\(\) prints codes.*NODE_ENV=development.*allowInProduction: true/s, `NODE_ENV ${JSON.stringify(value)}: refused`)
    t.doesNotThrow(withEnv(value, () => consoleSms({ allowInProduction: true })), `NODE_ENV ${JSON.stringify(value)} with allowInProduction: true`)
  }
  for (const value of ['development', 'test']) t.doesNotThrow(withEnv(value, () => consoleSms()), `NODE_ENV=${value}`)
})

t.test('npm run example starts on a machine without NODE_ENV (the README\'s first command)', async (t) => {
  const script = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts.example!
  const [runner, ...args] = script.split(' ')
  t.equal(runner, 'tsx', 'the script runs tsx')
  // `tsx <node flags> <file>` as `node <node flags> --import tsx <file>`, so that killing it ends it.
  const nodeFlags = args.filter((arg) => arg.startsWith('--'))
  const file = args.filter((arg) => !arg.startsWith('--'))
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATABASE_URL: join(t.testdir(), 'example.db'), JWT_SECRET: randomBytes(48).toString('base64') }
  delete env.NODE_ENV
  const server = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', ...file], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { server.kill('SIGTERM') })
  let output = ''
  server.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  server.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  for (const started = Date.now(); !output.includes('Server listening') && server.exitCode === null && Date.now() - started < 60_000;) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(output, /Server listening/, 'the server started', { output: output.slice(-2000) })
})

// ---------------------------------------------------------------- 5. weak secrets

t.test('secrets must be random: human-written ones are refused with a way to make one', async (t) => {
  const options = (secret: unknown) => ({ db: {} as never, sms: createOutbox().provider, jwt: { secret } }) as unknown as SecureLoginOptions
  // A real database is not needed to check a secret: the database check fails too, in the same message.
  const problem = (secret: unknown) => {
    try {
      resolveOptions(options(secret))
    } catch (error) {
      return (error as Error).message.split('\n').find((line) => line.includes('jwt.secret')) ?? ''
    }
    return ''
  }
  const weak = [
    'my-super-secret-jwt-key-for-prod!',
    'another-secret-that-is-long-enough-0123456789',
    'MySuperSecretJwtKey2024!ForProduction',
    'thisisaverylongsecretthatnobodywillguessever',
    'correct horse battery staple correct horse battery staple',
    'P@ssw0rd!P@ssw0rd!P@ssw0rd!P@ssw0rd!',
    '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
    'qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfghjklzxcvbnm',
    Buffer.from('foobar-secret-key-that-is-long-enough').toString('base64'),
    Buffer.from('my-super-secret-jwt-key-for-production!').toString('hex'),
    Buffer.from('my-super-secret-jwt-key-for-production!'),
    Buffer.from(Array.from({ length: 64 }, (_, i) => i)),
    'a'.repeat(64),
  ]
  for (const secret of weak) {
    const message = problem(secret)
    t.match(message, /jwt\.secret is too weak/, `refused: ${String(secret).slice(0, 40)}`)
    t.match(message, /openssl rand -base64 48/, 'the message shows how to make one')
    t.notOk(message.includes(String(secret).slice(0, 12)), 'and does not quote it')
  }
  const strong = [
    TEST_SECRET,
    randomBytes(32).toString('base64'),
    randomBytes(32).toString('base64url'),
    randomBytes(32).toString('hex'),
    randomBytes(32),
    `${randomUUID()}${randomUUID()}`,
  ]
  for (const secret of strong) t.equal(problem(secret), '', `accepted: ${typeof secret === 'string' ? secret.slice(0, 12) : 'a Buffer'}…`)
  let refused = 0
  for (let i = 0; i < 2000; i++) {
    for (const secret of [randomBytes(32).toString('base64'), randomBytes(48).toString('base64'), randomBytes(32).toString('hex'), randomBytes(32).toString('base64url'), randomBytes(32)]) {
      if (problem(secret) !== '') refused++
    }
  }
  t.equal(refused, 0, 'none of 10,000 random secrets of 32 or 48 bytes is refused')
})
