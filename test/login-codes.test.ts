import { createHmac, randomUUID } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import { accountIdFor } from '../lib/accounts.js'
import { createDeliveryTracker, createSmsBudget, sendLoginCode, sendPhoneChangeCode, verifyLoginCode, type ChallengeContext } from '../lib/challenges.js'
import { migrate, type SmsMessage } from '../lib/index.js'
import type { EventFields } from '../lib/events.js'
import { resolveOptions, type SecureLoginOptions } from '../lib/options.js'
import { createStore } from '../lib/store/index.js'
import { createTestDatabase, dialects, TEST_SECRET, type Dialect } from './helper.js'

// lib/challenges.ts on its own, on a real store of each dialect and with the clock passed through
// Date: the public account id, the SMS budget's log line, and the details of a send and a check
// that the route tests do not look at (the message text, the locale, what is logged, the seconds
// a client is told to wait).

const HASH_KEY = Buffer.from('a key for code hashes and account ids, 32+ bytes long')
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** A logger that keeps its lines by level. */
function logDouble () {
  const lines: Array<{ level: string, fields: Record<string, unknown>, message: string }> = []
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => { lines.push({ level, fields, message }) }
  const log = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } as unknown as FastifyBaseLogger
  return { log, lines }
}

/** Moves `Date.now()` only when the test says, until the test ends. */
function fakeClock (t: Test): { now: number } {
  const realNow = Date.now
  const clock = { now: realNow() }
  Date.now = () => clock.now
  t.teardown(() => { Date.now = realNow })
  return clock
}

t.test('accountIdFor: a UUID v4 of the number under the key, the same every time, another for another number or key', async (t) => {
  const ids = new Set<string>()
  for (let i = 0; i < 64; i++) {
    const phone = `+1415555${String(1000 + i)}`
    const id = accountIdFor(HASH_KEY, phone)
    t.match(id, UUID_V4, `${phone}: ${id}`)
    t.equal(accountIdFor(HASH_KEY, phone), id, 'the same again')
    ids.add(id)
  }
  t.equal(ids.size, 64, 'each number its own id')
  t.not(accountIdFor(Buffer.from('another key'), '+14155551000'), accountIdFor(HASH_KEY, '+14155551000'), 'another key, another id')
  // The id carries 122 bits of the keyed hash: its first 32 hex digits, less the version and variant bits.
  const hex = createHmac('sha256', HASH_KEY).update('account-id\n+14155551000').digest('hex')
  t.equal(accountIdFor(HASH_KEY, '+14155551000').replace(/-/g, '').slice(0, 12), hex.slice(0, 12), 'made of the keyed hash of the number')
})

t.test('the SMS budget is logged once per window at error level, and always refused with its seconds', async (t) => {
  const clock = fakeClock(t)
  const { log, lines } = logDouble()
  const budget = createSmsBudget()
  const first = budget.exhausted(60, log) as { code?: string, retryAfter?: number }
  t.match(first, { code: 'SECURELOGIN_SMS_BUDGET_EXHAUSTED', retryAfter: 60, statusCode: 503 })
  t.same(lines, [{ level: 'error', fields: { retryAfterSeconds: 60 }, message: 'fastify-securelogin: the SMS budget (rateLimit.sendsGlobal) is spent: no code is sent until the window ends' }])
  clock.now += 60_000 - 1
  t.match(budget.exhausted(1, log), { retryAfter: 1 }, 'refused again')
  t.equal(lines.length, 1, 'not logged again within the window')
  clock.now += 1
  budget.exhausted(30, log)
  t.equal(lines.length, 2, 'logged again once the window has passed')
  clock.now += 30_000 - 1
  budget.exhausted(30, log)
  t.equal(lines.length, 2, 'the next window is the one the last line told')
})

t.test('the delivery tracker waits for every delivery still running', async (t) => {
  const deliveries = createDeliveryTracker()
  let release!: () => void
  deliveries.track(new Promise<void>((resolve) => { release = resolve }))
  deliveries.track(Promise.resolve())
  let settled = false
  const waiting = deliveries.settled().then(() => { settled = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(settled, false, 'not while one runs')
  release()
  await waiting
  t.equal(settled, true, 'once all have ended')
})

/**
 * Makes `new Date()` answer `clock.at` until the test ends (a date of a given time is left alone,
 * and every date is still an instance of Date): the check reads its moment that way.
 */
function frozenDate (t: Test, at: number): { at: number } {
  const RealDate = Date
  const clock = { at }
  class FrozenDate extends RealDate {
    constructor (...args: unknown[]) {
      if (args.length === 0) super(clock.at)
      else super(...(args as [number]))
    }

    static [Symbol.hasInstance] (value: unknown): boolean { return value instanceof RealDate }
  }
  globalThis.Date = FrozenDate as DateConstructor
  t.teardown(() => { globalThis.Date = RealDate })
  return clock
}

t.test('the delivery tracker lets go of a delivery once it has ended', async (t) => {
  // A tracker lives as long as the app: one that kept every ended delivery would grow with every SMS.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const deliveries = createDeliveryTracker()
  const ended = (() => {
    const delivery = Promise.resolve()
    deliveries.track(delivery)
    return new WeakRef(delivery)
  })()
  await deliveries.settled()
  await new Promise((resolve) => setTimeout(resolve, 0))
  gc()
  t.equal(ended.deref(), undefined, 'collected: the tracker no longer holds it')
})

interface Sent { message: SmsMessage, signal: AbortSignal }

/** A challenge context on a fresh database of the dialect, with an SMS provider the test controls. */
async function contextFor (t: Test, dialect: Dialect, overrides: Partial<SecureLoginOptions> = {}) {
  const database = await createTestDatabase(t, dialect)
  await migrate(database.db)
  const sent: Sent[] = []
  const provider = { name: 'test-sms', failure: undefined as Error | undefined, async send (message: SmsMessage, signal: AbortSignal) { sent.push({ message, signal }); if (provider.failure !== undefined) throw provider.failure } }
  const options = resolveOptions({ db: database.db, sms: provider, jwt: { secret: TEST_SECRET }, smsDelivery: 'await', ...overrides })
  const { log, lines } = logDouble()
  const events: EventFields[] = []
  const ctx: ChallengeContext = {
    options,
    store: createStore(database.db, dialect),
    hashKey: HASH_KEY,
    log,
    deliveries: createDeliveryTracker(),
    budget: createSmsBudget(),
    events: { emit: (_request: unknown, fields: EventFields) => { events.push(fields) } } as unknown as ChallengeContext['events'],
  }
  const request = { ip: '203.0.113.9' } as FastifyRequest
  return { ctx, sent, provider, lines, events, request, database }
}

for (const dialect of dialects) {
  t.test(`${dialect}: a send: the text, the locale, the account's id, and the cooldown's seconds`, async (t) => {
    const { ctx, sent, request, lines, database } = await contextFor(t, dialect, { otp: { ttl: '90s', resendInterval: '30s' } })
    const phone = '+14155550181'
    const { user } = await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    const answer = await sendLoginCode(ctx, { phone, locale: 'fr-CA', request })
    t.same(answer, { userid: user.id })
    t.equal(sent.length, 1)
    const { message } = sent[0]!
    t.equal(message.to, phone)
    t.equal(message.locale, 'fr-CA', 'the locale reaches the provider')
    t.match(message.code, /^\d{6}$/)
    t.match(message.body, message.code, 'the text holds the code')
    t.match(message.body, /2 minutes/, 'and the code\'s lifetime, 90 s, rounded up to whole minutes')
    t.same(lines, [], 'nothing logged')

    // The code was sent earlier: moved back in the database (the send reads the system clock).
    const sentAgo = (ms: number) => database.query('UPDATE securelogin_otp_challenges SET sent_at = $1 WHERE phone = $2', [dialect === 'sqlite' ? Date.now() - ms : new Date(Date.now() - ms), phone])
    // 10.001 s and the moments until the send reads the clock: 19.999 s or a little less left,
    // which rounds up to 20 for any delay under 999 ms, and down would always give 19.
    await sentAgo(10_001)
    const tooSoon = await sendLoginCode(ctx, { phone, request }).then(() => undefined, (error: { code?: string, retryAfter?: number }) => error)
    t.match(tooSoon, { code: 'SECURELOGIN_OTP_RESEND_TOO_SOON', retryAfter: 20 }, 'just over 10 s into a 30 s cooldown: 20 s to wait, rounded up')
    t.equal(sent.length, 1, 'and nothing sent')
    await sentAgo(30_001)
    await sendLoginCode(ctx, { phone, request })
    t.equal(sent.length, 2, 'after the cooldown a new code is sent')
  })

  t.test(`${dialect}: a number that gets no SMS is logged at info level, masked, and answered its account id`, async (t) => {
    const { ctx, sent, request, lines } = await contextFor(t, dialect, { testNumbers: { '+14155550182': '123456' }, allowTestNumbersInProduction: true })
    const unknown = await sendLoginCode(ctx, { phone: '+14155550183', request })
    t.same(unknown, { userid: accountIdFor(HASH_KEY, '+14155550183') }, 'a number without an account: the id it would get')
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', '+14155550182', undefined, new Date())
    await sendLoginCode(ctx, { phone: '+14155550182', request })
    t.same(sent, [], 'no SMS to either')
    t.same(lines, [
      { level: 'info', fields: { phone: '+14*******83' }, message: 'fastify-securelogin: no SMS sent: the number has no account (register it first)' },
      { level: 'info', fields: { phone: '+14*******82' }, message: 'fastify-securelogin: no SMS sent: a test number, whose code is fixed' },
    ])
  })

  t.test(`${dialect}: a vendor without a name is logged as 'custom'; its failure is an event with the code`, async (t) => {
    const { ctx, provider, request, lines, events } = await contextFor(t, dialect)
    const nameless = { send: provider.send }
    ctx.options = { ...ctx.options, sms: nameless }
    provider.failure = new Error('vendor down')
    const phone = '+14155550184'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    const failed = await sendLoginCode(ctx, { phone, request }).then(() => undefined, (error: { code?: string }) => error)
    t.match(failed, { code: 'SECURELOGIN_SMS_SEND_FAILED' })
    t.match(lines, [{ level: 'error', fields: { provider: 'custom' } }])
    t.match(events, [{ type: 'sms.failed', phone, reason: 'SECURELOGIN_SMS_SEND_FAILED' }])
    t.equal(await ctx.store.findChallenge(phone), undefined, 'awaited: the challenge is withdrawn, a new code may be asked at once')
  })

  t.test(`${dialect}: in the background, a failed delivery leaves a challenge no code can answer`, async (t) => {
    const { ctx, provider, request, lines, sent } = await contextFor(t, dialect, { smsDelivery: 'background' })
    provider.failure = new Error('vendor down')
    const phone = '+14155550185'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    await ctx.deliveries.settled()
    t.equal(lines.filter((line) => line.level === 'error').length, 1, 'the vendor failure logged once (by the vendor call, not again by the delivery)')
    const challenge = await ctx.store.findChallenge(phone)
    t.ok(challenge !== undefined, 'the challenge stays, with its cooldown')
    const checked = await verifyLoginCode(ctx, { phone, code: sent[0]!.message.code, request }, async () => 'signed in').then(() => undefined, (error: { code?: string }) => error)
    t.match(checked, { code: 'SECURELOGIN_OTP_INVALID' }, 'even the code that was to be sent does not work')
  })

  t.test(`${dialect}: a verifying vendor without a name whose check fails is logged as 'custom'`, async (t) => {
    const vendor = { async start () {}, async check (): Promise<boolean> { throw new Error('vendor down') } }
    const { ctx, request, lines } = await contextFor(t, dialect, { sms: vendor })
    const phone = '+14155550187'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    const checked = await verifyLoginCode(ctx, { phone, code: '123456', request }, async () => 'signed in').then(() => undefined, (error: { code?: string }) => error)
    t.match(checked, { code: 'SECURELOGIN_SMS_SEND_FAILED' })
    t.match(lines, [{ level: 'error', fields: { provider: 'custom' }, message: 'fastify-securelogin: SMS vendor call failed' }])
  })

  t.test(`${dialect}: a code is open until the millisecond before its expiry; at that millisecond it has expired (not run out of attempts)`, async (t) => {
    const { ctx, request } = await contextFor(t, dialect)
    const phone = '+14155550188'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    const expiresAt = Date.now() + 60_000
    await ctx.store.openChallenge({ phone, challengeId: randomUUID(), codeHash: 'a hash no code has', now: new Date(), expiresAt: new Date(expiresAt), resendIntervalMs: 0 })
    const check = () => verifyLoginCode(ctx, { phone, code: '123456', request }, async () => 'signed in').then(() => undefined, (error: { code?: string }) => error)
    const clock = frozenDate(t, expiresAt - 1)
    t.match(await check(), { code: 'SECURELOGIN_OTP_INVALID' }, 'a millisecond before: compared, and wrong')
    clock.at = expiresAt
    t.match(await check(), { code: 'SECURELOGIN_OTP_EXPIRED' }, 'at its expiry: expired')
  })

  t.test(`${dialect}: in the background, a failure other than the vendor's is logged, with the number masked`, async (t) => {
    const { ctx, provider, request, lines } = await contextFor(t, dialect, { smsDelivery: 'background' })
    provider.failure = new Error('vendor down')
    ctx.store = { ...ctx.store, killChallenge: async () => { throw new Error('database gone') } }
    const phone = '+14155550189'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    await ctx.deliveries.settled()
    const errors = lines.filter((line) => line.level === 'error')
    t.equal(errors.length, 2, 'the vendor\'s failure, logged by the vendor call, and the one after it')
    t.match(errors[1], { fields: { err: { message: 'database gone' }, phone: '+14*******89' }, message: 'fastify-securelogin: SMS delivery failed' })
  })

  t.test(`${dialect}: with a verifying vendor a sign-in's challenge stores no hash, and a change of number's a mark of its account`, async (t) => {
    const vendor = { name: 'test-verify', async start () {}, async check () { return true } }
    const { ctx, request } = await contextFor(t, dialect, { sms: vendor })
    const phone = '+14155550190'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    t.equal((await ctx.store.findChallenge(phone))?.codeHash, null, 'a sign-in: nothing')
    const newPhone = '+14155550192'
    await sendPhoneChangeCode(ctx, { phone: newPhone, request, userId: '6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e' })
    t.match((await ctx.store.findChallenge(newPhone))?.codeHash, /^owner:[A-Za-z0-9_-]{43}$/, 'a change: the mark')
  })

  t.test(`${dialect}: a resend is refused until the cooldown's last millisecond, and allowed at its end`, async (t) => {
    const { ctx, sent, request } = await contextFor(t, dialect, { otp: { resendInterval: '30s' } })
    const phone = '+14155550193'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    const clock = frozenDate(t, Date.now())
    const start = clock.at
    await sendLoginCode(ctx, { phone, request })
    clock.at = start + 30_000 - 1
    const tooSoon = await sendLoginCode(ctx, { phone, request }).then(() => undefined, (error: { code?: string, retryAfter?: number }) => error)
    t.match(tooSoon, { code: 'SECURELOGIN_OTP_RESEND_TOO_SOON', retryAfter: 1 }, 'a millisecond before its end')
    clock.at = start + 30_000
    await sendLoginCode(ctx, { phone, request })
    t.equal(sent.length, 2, 'at its end a new code is sent')
  })

  t.test(`${dialect}: inside the cooldown the answer is the cooldown's, even once the number's allowance is spent`, async (t) => {
    const { ctx, sent, request } = await contextFor(t, dialect, { otp: { resendInterval: '30s' }, rateLimit: { sendsPerPhone: { max: 1, window: '1h' } } })
    const phone = '+14155550194'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    const again = await sendLoginCode(ctx, { phone, request }).then(() => undefined, (error: { code?: string, retryAfter?: number }) => error)
    t.match(again, { code: 'SECURELOGIN_OTP_RESEND_TOO_SOON' }, 'told to wait for the cooldown, not the hour')
    t.ok((again?.retryAfter ?? Infinity) <= 30, `${again?.retryAfter} s`)
    t.equal(sent.length, 1)
  })

  t.test(`${dialect}: a change of number to a number that has an account sends nothing and logs why`, async (t) => {
    const { ctx, sent, request, lines } = await contextFor(t, dialect)
    const holder = '+14155550195'
    const { user } = await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', holder, undefined, new Date())
    await ctx.store.markPhoneVerified(user.id, new Date())
    await sendPhoneChangeCode(ctx, { phone: holder, request, userId: '7a2d2c6f-3e4b-4c8d-8e9f-1a2b3c4d5e6f' })
    t.same(sent, [])
    t.same(lines, [{ level: 'info', fields: { phone: '+14*******95' }, message: 'fastify-securelogin: no SMS sent: a change of number to a number that has an account' }])
  })

  t.test(`${dialect}: a login refused by a send counter filled after its read leaves the owner's pending code as it was`, async (t) => {
    const { ctx, sent, request } = await contextFor(t, dialect, { otp: { resendInterval: '1ms' }, rateLimit: { sendsPerPrefix: { max: 3, window: '1h' } } })
    const phone = '+14155550189'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    const ownersCode = sent[0]!.message.code
    t.equal((await verifyLoginCode(ctx, { phone, code: ownersCode === '000000' ? '111111' : '000000', request }, async () => 'signed in').then(() => 200, (error: { statusCode: number }) => error.statusCode)), 401, 'one wrong guess at it')
    const pending = await ctx.store.findChallenge(phone)
    await new Promise((resolve) => setTimeout(resolve, 5))
    // Other numbers of the prefix fill its counter between this login's read and its take, as a
    // concurrent burst would on PostgreSQL.
    const store = ctx.store
    ctx.store = {
      ...store,
      openChallengeTaking: async (args, counters) => {
        for (let other = 0; other < 2; other++) await store.takeRateLimits(counters.filter((counter) => counter.key.startsWith('send:prefix:')), new Date())
        return store.openChallengeTaking(args, counters)
      },
    }
    const refused = await sendLoginCode(ctx, { phone, request }).then(() => undefined, (error: { code?: string }) => error)
    t.match(refused, { code: 'SECURELOGIN_RATE_LIMITED' }, 'refused by the full prefix counter')
    t.equal(sent.length, 1, 'no second code sent')
    t.same(await store.findChallenge(phone), pending, 'the pending code, its attempts and its cooldown are as they were')
    ctx.store = store
    const signedIn = await verifyLoginCode(ctx, { phone, code: ownersCode, request }, async () => 'signed in')
    t.equal(signedIn.opened, 'signed in', 'and the owner\'s code still signs in')
  })

  t.test(`${dialect}: a check that cannot give back its wrong-code slot is logged as a warning, and still answers`, async (t) => {
    const { ctx, sent, request, lines } = await contextFor(t, dialect)
    const phone = '+14155550186'
    await ctx.store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, new Date())
    await sendLoginCode(ctx, { phone, request })
    ctx.store = { ...ctx.store, freeSlot: async () => { throw new Error('database gone') } }
    const approved = await verifyLoginCode(ctx, { phone, code: sent[0]!.message.code, request }, async () => 'signed in')
    t.same([approved.approved.user.phone, approved.opened], [phone, 'signed in'], 'the right code is approved, and the session opened')
    t.match(lines, [{ level: 'warn', fields: { err: { message: 'database gone' } }, message: 'fastify-securelogin: could not give back a wrong-code slot' }])
  })
}
