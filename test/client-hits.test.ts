import t from 'tap'
import { buildApp, createTestDatabase, dialects, post, testPhone, type Dialect, type TestDatabase } from './helper.js'

// The client's first rate-limit hit is counted by the statement it guards (register: the number's
// history; login: the reads before a send; verify_sms: the take of a wrong-code slot), on
// PostgreSQL in the same round trip. These tests pin the round trips a step costs there, and that
// a client refused on the way still changes nothing else.

/** Statements the plugin ran, without the background reads of the revocation log (the purge is off where this counts). */
function statementLog () {
  const seen: string[] = []
  let recording = false
  return {
    logger: { logQuery: (query: string) => { if (recording && !/securelogin_revocations|txid_/i.test(query)) seen.push(query) } },
    async during (step: () => Promise<{ statusCode: number }>): Promise<{ statusCode: number, statements: number }> {
      seen.length = 0
      recording = true
      try {
        return { statusCode: (await step()).statusCode, statements: seen.length }
      } finally {
        recording = false
      }
    },
  }
}

t.test('postgres: the round trips of each sign-in step', async (t) => {
  const log = statementLog()
  const database = await createTestDatabase(t, 'postgres', undefined, { logger: log.logger })
  // No housekeeping purge, whose statements would be counted whenever its first run fell within the test.
  const test = await buildApp(t, 'postgres', { otp: { resendInterval: 0.001 }, purgeInterval: false }, database)
  const phone = testPhone()
  t.same(await log.during(() => post(test.app, '/register', { phone })), { statusCode: 201, statements: 3 }, 'register: client + history, insert, history again')
  t.same(await log.during(() => post(test.app, '/login', { phone })), { statusCode: 200, statements: 2 }, 'login: client + reads, then the challenge with its counted sends')
  const first = await log.during(() => post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) }))
  t.same(first, { statusCode: 200, statements: 5 }, 'a first verify_sms: client + slot, attempt + account, the number proven, slot back, session')
  await post(test.app, '/login', { phone })
  const verify = await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })
  t.equal(verify.statusCode, 200)
  await post(test.app, '/login', { phone })
  t.same(await log.during(() => post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })), { statusCode: 200, statements: 4 }, 'verify_sms after that: one fewer')
  t.same(await log.during(() => post(test.app, '/refresh', undefined, verify.json().refresh_token)), { statusCode: 200, statements: 1 }, 'refresh: the rotation')
})

/** The number's wrong-code slots taken (a slot given back is stamped at the epoch). */
const slotsInUse = async (database: TestDatabase, dialect: Dialect, phone: string) =>
  (await database.query('SELECT key FROM securelogin_rate_limits WHERE key LIKE $1 AND window_start > $2', [`verify:fail:phone:${phone}#%`, dialect === 'sqlite' ? 0 : new Date(0)])).length
const attemptsOf = async (database: TestDatabase, phone: string) =>
  Number((await database.query('SELECT attempts FROM securelogin_otp_challenges WHERE phone = $1', [phone]))[0]?.attempts)

for (const dialect of dialects) {
  t.test(`${dialect}: a check refused for its client takes no wrong-code slot and spends no attempt, also when a wider IPv6 network refuses it`, async (t) => {
    const test = await buildApp(t, dialect, { rateLimit: { verifiesPerIp: { max: 1, window: '1h' } } })
    const { app, database } = test
    const phone = testPhone()
    await post(app, '/register', { phone })
    await post(app, '/login', { phone })
    const code = test.outbox.lastCodeFor(phone)
    const verifyFrom = (remoteAddress: string, payload: object) => app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload, remoteAddress })

    // IPv4: the client's only counter is counted by the slot's statement.
    t.equal((await verifyFrom('192.0.2.10', { phone: testPhone(), token: '000000' })).statusCode, 401, 'a first check from the address')
    const refused = await verifyFrom('192.0.2.10', { phone, token: code })
    t.equal(refused.json().code, 'SECURELOGIN_RATE_LIMITED', 'its second is refused')
    t.equal(await slotsInUse(database, dialect, phone), 0, 'no slot of the number taken')
    t.equal(await attemptsOf(database, phone), 0, 'no attempt spent')

    // IPv6: a fifth /64 of one /56 passes its own counter and is refused at the /56.
    for (const network of ['2001:db8:1:200', '2001:db8:1:201', '2001:db8:1:202', '2001:db8:1:203']) {
      t.equal((await verifyFrom(`${network}::1`, { phone: testPhone(), token: '000000' })).statusCode, 401)
    }
    const wider = await verifyFrom('2001:db8:1:204::1', { phone, token: code })
    t.equal(wider.json().code, 'SECURELOGIN_RATE_LIMITED', 'the fifth /64 of the /56 is refused')
    t.equal(await slotsInUse(database, dialect, phone), 0, 'no slot of the number taken')
    t.equal(await attemptsOf(database, phone), 0, 'no attempt spent')

    t.equal((await verifyFrom('192.0.2.11', { phone, token: code })).statusCode, 200, 'the owner, from another address, signs in with the code')
  })

  // Found in review: when the wider networks were counted after the slot's take, a flood of checks,
  // each refused for its client, held the number's slots for moments at a time on PostgreSQL (each
  // statement commits on its own), and the owner's right code, sent meanwhile, was refused
  // PHONE_LOCKED (6 of 8 trials).
  t.test(`${dialect}: a flood of checks refused for their clients never locks the number: the owner's right code, sent meanwhile, is accepted`, async (t) => {
    const floods = [
      // Four /64s fill their /56 (4 times the rule's max); the flood comes from others of it.
      { name: 'IPv6 /64s of a full /56', verifiesPerIp: { max: 1, window: '1h' }, fill: ['2001:db8:2:0::1', '2001:db8:2:1::1', '2001:db8:2:2::1', '2001:db8:2:3::1'], floodFrom: (i: number) => `2001:db8:2:${(16 + i).toString(16)}::1` },
      { name: 'an IPv4 address whose second rule is full', verifiesPerIp: [{ max: 100, window: '1h' }, { max: 1, window: '1d' }], fill: ['203.0.113.7'], floodFrom: () => '203.0.113.7' },
    ]
    for (const { name, verifiesPerIp, fill, floodFrom } of floods) {
      const test = await buildApp(t, dialect, { rateLimit: { verifiesPerIp, failedVerifiesPerPhone: { max: 5, window: '1h' } }, otp: { resendInterval: 0.001 } })
      const verify = (payload: object, remoteAddress: string) => test.app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload, remoteAddress })
      for (const address of fill) t.equal((await verify({ phone: testPhone(), token: '000000' }, address)).statusCode, 401)
      const refused: string[] = []
      for (let trial = 0; trial < 8; trial++) {
        const phone = testPhone()
        await post(test.app, '/register', { phone })
        await post(test.app, '/login', { phone })
        const code = test.outbox.lastCodeFor(phone)
        const flood = Array.from({ length: 25 }, (_, i) => verify({ phone, token: code === '000000' ? '111111' : '000000' }, floodFrom(trial * 25 + i)))
        const owner = verify({ phone, token: code }, `198.51.100.${trial + 1}`)
        t.ok((await Promise.all(flood)).every((answer) => answer.json().code === 'SECURELOGIN_RATE_LIMITED'), `${name}: every check of the flood is refused for its client`)
        const answer = await owner
        if (answer.statusCode !== 200) refused.push(`${answer.statusCode} ${answer.json().code}`)
      }
      t.same(refused, [], `${name}: the owner's right code is accepted in every trial`)
    }
  })

  t.test(`${dialect}: a registration or a send refused for its client creates nothing`, async (t) => {
    const test = await buildApp(t, dialect, { rateLimit: { registersPerIp: { max: 1, window: '1h' }, sendsPerIp: { max: 1, window: '1h' } } })
    const { app, database } = test
    const from = (url: string, phone: string) => app.inject({ method: 'POST', url: `/api/auth${url}`, payload: { phone }, remoteAddress: '192.0.2.20' })
    t.equal((await from('/register', testPhone())).statusCode, 201)
    const phone = testPhone()
    t.equal((await from('/register', phone)).json().code, 'SECURELOGIN_RATE_LIMITED')
    t.same(await database.query('SELECT id FROM securelogin_users WHERE phone = $1', [phone]), [], 'no account')
    t.equal((await from('/login', testPhone())).statusCode, 200)
    t.equal((await from('/login', phone)).json().code, 'SECURELOGIN_RATE_LIMITED')
    t.same(await database.query('SELECT phone FROM securelogin_otp_challenges WHERE phone = $1', [phone]), [], 'no code opened')
    t.same(await database.query(`SELECT key FROM securelogin_rate_limits WHERE key LIKE 'send:phone:%' AND key LIKE $1`, [`%${phone}%`]), [], 'no send counted against the number')
  })
}
