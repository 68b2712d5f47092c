import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import secureLogin, { type SmsMessage } from '../lib/index.js'
import { parseClientAddress } from '../lib/client-ip.js'
import { clientLimitKeys } from '../lib/rate-limit.js'

/** The narrowest key a client address counts under (IPv4 as it is, IPv6 per /64). */
const clientKey = (ip: string): string | undefined => { const address = parseClientAddress(ip); return address === undefined ? undefined : clientLimitKeys(address)[0]!.key }
import { buildApp, createTestDatabase, dialects, post, signIn, testPhone, TEST_SECRET } from './helper.js'

// Bugs found in review, each with the test that failed before its fix.

for (const dialect of dialects) {
  t.test(`${dialect}: a revocation that commits late is still seen by every instance`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const a = await buildApp(t, dialect, { revocationMaxDelay: 1 }, database)
    const b = await buildApp(t, dialect, { revocationMaxDelay: 1 }, database)
    const tokens = await signIn(a, testPhone())
    const me = () => b.app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.access_token}` } })
    t.equal((await me()).statusCode, 200)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // As if an UPDATE stamped 3 s ago (before instance B's last reads) committed only now.
    const stamped = dialect === 'sqlite' ? Date.now() - 3000 : new Date(Date.now() - 3000)
    await database.query("UPDATE securelogin_sessions SET revoked_at = $1, revoked_reason = 'logout'", [stamped])
    let refused = false
    for (const started = Date.now(); Date.now() - started < 3000 && !refused;) {
      refused = (await me()).statusCode === 401
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.ok(refused, 'instance B refuses the token')
  })

  t.test(`${dialect}: IPv6 clients are limited per /64, not per address`, async (t) => {
    const test = await buildApp(t, dialect, { rateLimit: { sendsPerIp: { max: 1, window: '1h' }, registersPerIp: { max: 1, window: '1h' } } })
    const login = (ip: string) => test.app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone: testPhone() }, remoteAddress: ip })
    t.equal((await login('2001:db8:1:2::1')).statusCode, 200)
    t.equal((await login('2001:db8:1:2::2')).statusCode, 429, 'another address of the same /64 shares the budget')
    t.equal((await login('2001:db8:1:3::1')).statusCode, 200, 'another /64 does not')
  })

  t.test(`${dialect}: registrations are limited per client`, async (t) => {
    const test = await buildApp(t, dialect, { rateLimit: { registersPerIp: { max: 2, window: '1h' } } })
    const register = () => test.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone() }, remoteAddress: '198.51.100.23' })
    t.equal((await register()).statusCode, 201)
    t.equal((await register()).statusCode, 201)
    const third = await register()
    t.equal(third.statusCode, 429)
    t.equal(third.json().code, 'SECURELOGIN_RATE_LIMITED')
    t.equal((await test.database.query('SELECT id FROM securelogin_users')).length, 2, 'the refused registration created nothing')
  })

  t.test(`${dialect}: a database failure logs the statement but not its parameters, and the client gets neither`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    let logged = ''
    const stream = new Writable({ write (chunk, _encoding, done) { logged += chunk.toString(); done() } })
    const app = Fastify({ logger: { level: 'error', stream }, pluginTimeout: 60_000 })
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: { async send () {} }, jwt: { secret: TEST_SECRET } })
    await app.ready()
    await database.query('DROP TABLE securelogin_rate_limits')
    const phone = testPhone()
    const answer = await post(app, '/login', { phone })
    t.equal(answer.statusCode, 500)
    t.equal(answer.json().code, 'SECURELOGIN_INTERNAL')
    t.notMatch(answer.body, /securelogin_rate_limits|select|insert|\+1415/i, 'no SQL or number reaches the client')
    t.match(logged, /fastify-securelogin: request failed/, 'the failure is logged')
    t.match(logged, /securelogin_rate_limits/, 'with what failed')
    t.notOk(logged.includes(phone.slice(1)), 'the phone number is not in the log')
    t.notMatch(logged, /params/, 'no parameters are in the log')
  })

  t.test(`${dialect}: only a well-formed Accept-Language reaches the SMS provider`, async (t) => {
    const sent: SmsMessage[] = []
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 }, sms: { async send (message) { sent.push(message) } } })
    const phone = testPhone()
    await post(test.app, '/register', { phone })
    for (const header of ['fr-CA,fr;q=0.9', '"><script>', 'en-US-x-a-very-long-private-use-tag-that-is-not-a-locale']) {
      await test.app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone }, headers: { 'accept-language': header } })
    }
    t.same(sent.map((message) => message.locale), ['fr-CA', undefined, undefined])
  })
}

t.test('the narrowest client key folds IPv6 to its /64 and keeps IPv4 as it is', async (t) => {
  t.equal(clientKey('203.0.113.9'), '203.0.113.9')
  t.equal(clientKey('::ffff:203.0.113.9'), '203.0.113.9')
  t.equal(clientKey('2001:db8:1:2::1'), '2001:0db8:0001:0002::/64')
  t.equal(clientKey('2001:DB8:1:2:aaaa:bbbb:cccc:dddd'), '2001:0db8:0001:0002::/64')
  t.equal(clientKey('::1'), '0000:0000:0000:0000::/64')
  t.equal(clientKey('fe80::1%eth0'), 'fe80:0000:0000:0000::/64')
})

t.test('options that would misbehave are refused at registration', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  const register = async (extra: Record<string, unknown>) => {
    const app = Fastify()
    t.teardown(() => app.close())
    try {
      await app.register(secureLogin, { db: database.db, sms: { async send () {} }, jwt: { secret: TEST_SECRET }, ...extra } as never)
      await app.ready()
    } catch (error) {
      return (error as Error).message
    }
    return undefined
  }
  t.match(await register({ jwt: { secret: TEST_SECRET, accessTokenTtl: '500ms' } }), /jwt.accessTokenTtl must be at least 1 second/)
  t.match(await register({ otp: { hashKey: TEST_SECRET } }), /otp.hashKey must differ from jwt.secret/)
  t.match(await register({ migrate: 'false' }), /migrate must be true or false/)
  t.match(await register({ jwt: { secret: TEST_SECRET, issuer: '' } }), /jwt.issuer must be a non-empty string/)
})
