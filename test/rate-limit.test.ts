import t from 'tap'
import { buildApp, createTestDatabase, dialects, post, testPhone } from './helper.js'

function login (app: Parameters<typeof post>[0], phone: string, ip = '203.0.113.7') {
  return app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone }, remoteAddress: ip })
}

for (const dialect of dialects) {
  t.test(`${dialect}: rate limits`, async (t) => {
    t.test('codes sent to one number are capped per window, with Retry-After', async (t) => {
      const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 }, rateLimit: { sendsPerPhone: { max: 3, window: '1h' } } })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      for (let i = 0; i < 3; i++) t.equal((await login(test.app, phone)).statusCode, 200)
      const capped = await login(test.app, phone)
      t.equal(capped.statusCode, 429)
      t.equal(capped.json().code, 'SECURELOGIN_RATE_LIMITED')
      const retryAfter = Number(capped.headers['retry-after'])
      t.ok(retryAfter > 3500 && retryAfter <= 3600, `Retry-After is the rest of the hour (${retryAfter})`)
      t.equal(test.outbox.messages.length, 3, 'no fourth code was sent')
      t.equal((await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })).statusCode, 200, 'the last code sent still works')
    })

    t.test('requests refused by the cooldown do not use up the number\'s allowance', async (t) => {
      const test = await buildApp(t, dialect, { otp: { resendInterval: '30s' }, rateLimit: { sendsPerPhone: { max: 2, window: '1h' } } })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      t.equal((await login(test.app, phone)).statusCode, 200)
      for (let i = 0; i < 10; i++) t.equal((await login(test.app, phone)).json().code, 'SECURELOGIN_OTP_RESEND_TOO_SOON')
      const rows = await test.database.query("SELECT count FROM securelogin_rate_limits WHERE key LIKE 'send:phone:%'")
      t.equal(Number(rows[0]!.count), 1, 'only the code actually sent was counted')
    })

    t.test('codes requested from one IP are capped, across numbers', async (t) => {
      const test = await buildApp(t, dialect, { rateLimit: { sendsPerIp: { max: 4, window: '10m' } } })
      const answers = []
      for (let i = 0; i < 6; i++) answers.push((await login(test.app, testPhone(), '198.51.100.1')).statusCode)
      t.same(answers, [200, 200, 200, 200, 429, 429])
      t.equal((await login(test.app, testPhone(), '198.51.100.2')).statusCode, 200, 'another IP is not affected')
    })

    t.test('with a beforeSend hook the IP cap is the same: each request counts once, before the hook', async (t) => {
      const asked: string[] = []
      const beforeSend = async (_request: unknown, phone: string) => { asked.push(phone); return true }
      const test = await buildApp(t, dialect, { beforeSend, rateLimit: { sendsPerIp: { max: 4, window: '10m' } } })
      const answers = []
      for (let i = 0; i < 6; i++) answers.push((await login(test.app, testPhone(), '198.51.100.3')).statusCode)
      t.same(answers, [200, 200, 200, 200, 429, 429])
      t.equal(asked.length, 4, 'a request over the cap never reaches the hook')
    })

    t.test('concurrent requests cannot slip past the IP cap', async (t) => {
      const test = await buildApp(t, dialect, { rateLimit: { sendsPerIp: { max: 5, window: '10m' } } })
      const answers = await Promise.all(Array.from({ length: 20 }, () => login(test.app, testPhone(), '198.51.100.9')))
      t.equal(answers.filter((a) => a.statusCode === 200).length, 5)
      t.equal(answers.filter((a) => a.statusCode === 429).length, 15)
    })

    t.test('code checks from one IP are capped, across numbers', async (t) => {
      const test = await buildApp(t, dialect, { rateLimit: { verifiesPerIp: { max: 3, window: '1h' } } })
      const statuses = []
      for (let i = 0; i < 5; i++) {
        const answer = await test.app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone: testPhone(), token: '123456' }, remoteAddress: '192.0.2.44' })
        statuses.push(answer.statusCode)
      }
      t.same(statuses, [401, 401, 401, 429, 429])
    })

    t.test('a window that has passed starts a new count', async (t) => {
      const test = await buildApp(t, dialect, { rateLimit: { sendsPerIp: { max: 1, window: 1 } } })
      t.equal((await login(test.app, testPhone(), '192.0.2.80')).statusCode, 200)
      t.equal((await login(test.app, testPhone(), '192.0.2.80')).statusCode, 429)
      await new Promise((resolve) => setTimeout(resolve, 1100))
      t.equal((await login(test.app, testPhone(), '192.0.2.80')).statusCode, 200)
    })

    t.test('instances sharing a database share the counters', async (t) => {
      const database = await createTestDatabase(t, dialect)
      const limits = { rateLimit: { sendsPerIp: { max: 2, window: '1h' } } }
      const a = await buildApp(t, dialect, limits, database)
      const b = await buildApp(t, dialect, limits, database)
      t.equal((await login(a.app, testPhone(), '192.0.2.99')).statusCode, 200)
      t.equal((await login(b.app, testPhone(), '192.0.2.99')).statusCode, 200)
      t.equal((await login(a.app, testPhone(), '192.0.2.99')).statusCode, 429)
      t.equal((await login(b.app, testPhone(), '192.0.2.99')).statusCode, 429)
    })
  })
}
