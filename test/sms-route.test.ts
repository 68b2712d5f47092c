import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import t, { type Test } from 'tap'
import { routeSms, type SmsFallbackEvent } from '../lib/sms/route.js'
import { twilioMessaging } from '../lib/sms/twilio-messaging.js'
import { twilioVerify } from '../lib/sms/twilio-verify.js'
import { SmsDeliveryError } from '../lib/sms/errors.js'
import type { SmsMessage, TextingSmsProvider, VerifyingSmsProvider } from '../lib/sms/types.js'
import { fakeTwilioClient, startTwilioFake, type TwilioFake } from './fixtures/twilio-fake.js'
import { caught } from './helper.js'

const US = '+14155550123'
const CN = '+8613812345678'
const GB = '+447911123456'
const never = (): AbortSignal => new AbortController().signal
const message = (to: string): SmsMessage => ({ to, body: 'Your code is 482910', code: '482910' })


/** Three Twilio accounts, each its own fake: one for China, the default, and the fallback. */
async function accounts (tt: Test): Promise<{ china: TwilioFake, main: TwilioFake, backup: TwilioFake }> {
  const [china, main, backup] = await Promise.all([startTwilioFake(), startTwilioFake(), startTwilioFake()])
  tt.teardown(async () => { await Promise.all([china.close(), main.close(), backup.close()]) })
  return { china, main, backup }
}

const messaging = (fake: TwilioFake, options: Parameters<typeof fakeTwilioClient>[1] = {}): TextingSmsProvider =>
  twilioMessaging({ client: fakeTwilioClient(fake, options), from: '+15005550006' })
const verifying = (fake: TwilioFake, options: Parameters<typeof fakeTwilioClient>[1] = {}): VerifyingSmsProvider =>
  twilioVerify({ client: fakeTwilioClient(fake, options), serviceSid: fake.serviceSid })

t.test('texting: a number goes to its country\'s provider, any other to the default', async (t) => {
  const { china, main, backup } = await accounts(t)
  const sms = routeSms({ byCountry: { CN: messaging(china) }, default: messaging(main), fallback: messaging(backup) })
  t.equal(sms.name, 'route')
  await sms.send(message(CN), never())
  await sms.send(message(US), never())
  await sms.send(message(GB), never())
  t.same(china.sent.map((s) => s.to), [CN])
  t.same(main.sent.map((s) => s.to), [US, GB])
  t.equal(backup.sent.length, 0)
})

t.test('texting: a transient failure (vendor down, 429, dropped connection) goes to the fallback', async (t) => {
  const { china, main, backup } = await accounts(t)
  const events: SmsFallbackEvent[] = []
  const sms = routeSms({ byCountry: { CN: messaging(china) }, default: messaging(main), fallback: messaging(backup), onFallback: (e) => { events.push(e) } })
  for (const mode of ['down', 'rate-limited', 'hang-up'] as const) {
    main.setMode(mode)
    await sms.send(message(US), never())
  }
  china.setMode('down')
  await sms.send(message(CN), never())
  t.same(backup.sent.map((s) => s.to), [US, US, US, CN])
  t.equal(main.sent.length + china.sent.length, 0)
  t.same(events.map((e) => [e.from, e.to, e.country]), Array(3).fill(['twilio-messaging', 'twilio-messaging', 'US']).concat([['twilio-messaging', 'twilio-messaging', 'CN']]))
  t.type(events[0]?.error, SmsDeliveryError)
  t.notOk(JSON.stringify(events.map((e) => e.country)).includes('+'), 'the event names a country, not the number')
})

t.test('texting: a non-transient failure (bad credentials, refused number) does not go to the fallback', async (t) => {
  const { main, backup } = await accounts(t)
  const sms = routeSms({ default: messaging(main, { authToken: 'wrong' }), fallback: messaging(backup) })
  await t.rejects(sms.send(message(US), never()), { name: 'SmsDeliveryError', transient: false, status: 401 })
  main.setMode({ messageStatus: 'failed', errorCode: 30007 }, 'messages')
  const refused = routeSms({ default: messaging(main), fallback: messaging(backup) })
  await t.rejects(refused.send(message(US), never()), { name: 'SmsDeliveryError', transient: false, vendorCode: 30007 })
  t.equal(backup.requests.length, 0)
})

t.test('texting: a stalled provider gets attemptTimeout, then the fallback gets the rest of the time', async (t) => {
  const { main, backup } = await accounts(t)
  main.setMode('stall')
  // 500 ms: time for a busy machine's client to reach the stalled fake, so that there is a request to cancel.
  const sms = routeSms({ default: messaging(main), fallback: messaging(backup), attemptTimeout: 500 })
  const started = Date.now()
  await sms.send(message(US), AbortSignal.timeout(5000))
  t.ok(Date.now() - started < 2500)
  t.equal(backup.sent.length, 1)
  for (let i = 0; i < 50 && main.stalls.closedByClient === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(main.stalls.closedByClient, 1, 'the stalled request was cancelled')
})

t.test('texting: attemptTimeout still fires when a garbage collection runs during the attempt', async (t) => {
  // Node 20's AbortSignal.any holds its sources weakly: built that way, a collection took the
  // timeout and the stalled attempt ran on until the plugin's own timeout (a CI failure).
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const stalls: TextingSmsProvider = {
    name: 'stalls',
    send: async (_message, signal) => { await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) }) },
  }
  const sent: string[] = []
  const backup: TextingSmsProvider = { name: 'backup', send: async ({ to }) => { sent.push(to) } }
  const sms = routeSms({ default: stalls, fallback: backup, attemptTimeout: 200 })
  const collect = setInterval(gc, 20)
  t.teardown(() => { clearInterval(collect) })
  const started = Date.now()
  await sms.send(message(US), AbortSignal.timeout(3000))
  t.ok(Date.now() - started < 2000, 'the fallback was tried after attemptTimeout')
  t.same(sent, [US])
})

t.test("texting: when the plugin's own timeout fires there is no fallback", async (t) => {
  const { main, backup } = await accounts(t)
  main.setMode('stall')
  const events: SmsFallbackEvent[] = []
  const sms = routeSms({ default: messaging(main), fallback: messaging(backup), onFallback: (e) => { events.push(e) } })
  const error = await caught(sms.send(message(US), AbortSignal.timeout(200)))
  t.equal((error as Error).name, 'TimeoutError')
  t.equal(backup.requests.length, 0)
  t.equal(events.length, 0, 'no switch was attempted')
})

t.test('texting: when the fallback fails too, its error is thrown', async (t) => {
  const { main, backup } = await accounts(t)
  main.setMode('down')
  backup.setMode({ status: 400, code: 21211 })
  const sms = routeSms({ default: messaging(main), fallback: messaging(backup) })
  await t.rejects(sms.send(message(US), never()), { name: 'SmsDeliveryError', vendorCode: 21211 })
  t.equal(backup.requests.length, 1)
})

t.test('texting: custom providers throwing plain errors are not failed over; SmsDeliveryError and AbortError are', async (t) => {
  const calls: string[] = []
  const provider = (name: string, fail?: () => never): TextingSmsProvider => ({
    name,
    async send ({ to }) { calls.push(`${name} ${to}`); fail?.() },
  })
  const plain = routeSms({ default: provider('a', () => { throw new Error('boom') }), fallback: provider('b') })
  await t.rejects(plain.send(message(US), never()), { message: 'boom' })
  const delivery = routeSms({ default: provider('a', () => { throw new SmsDeliveryError('a: HTTP 503', { transient: true, status: 503 }) }), fallback: provider('b') })
  await delivery.send(message(US), never())
  const aborted = routeSms({ default: provider('a', () => { throw new DOMException('timed out', 'TimeoutError') }), fallback: provider('b') })
  await aborted.send(message(US), never())
  t.same(calls, [`a ${US}`, `a ${US}`, `b ${US}`, `a ${US}`, `b ${US}`])
})

t.test('verifying: routed by country, and check goes where start went', async (t) => {
  const { china, main, backup } = await accounts(t)
  const sms = routeSms({ byCountry: { CN: verifying(china) }, default: verifying(main), fallback: verifying(backup) })
  await sms.start({ to: CN }, never())
  await sms.start({ to: US, channel: 'whatsapp' }, never())
  t.same(china.sent.map((s) => [s.to, s.channel]), [[CN, 'sms']])
  t.same(main.sent.map((s) => [s.to, s.channel]), [[US, 'whatsapp']])
  t.equal(await sms.check({ to: CN, code: china.lastCodeFor(CN)! }, never()), true)
  t.equal(await sms.check({ to: US, code: main.lastCodeFor(US)! }, never()), true)
  t.equal(backup.requests.length, 0)
})

t.test('verifying: after a fallback start, check asks the fallback, even with an old code pending at the primary', async (t) => {
  const { main, backup } = await accounts(t)
  const sms = routeSms({ default: verifying(main), fallback: verifying(backup) })
  await sms.start({ to: US }, never())
  main.setMode('down', 'verifications')
  await sms.start({ to: US }, never())
  t.equal(backup.sent.length, 1)
  const checksAtMain = main.requests.filter((r) => r.path.endsWith('/VerificationCheck')).length
  t.equal(await sms.check({ to: US, code: backup.lastCodeFor(US)! }, never()), true)
  t.equal(main.requests.filter((r) => r.path.endsWith('/VerificationCheck')).length, checksAtMain, 'the primary was not asked')

  main.setMode('normal')
  await sms.start({ to: US }, never())
  t.equal(await sms.check({ to: US, code: main.lastCodeFor(US)! }, never()), true, 'a later start on the primary is checked there')
})

t.test('verifying: another instance that did not see the start finds the code at the fallback', async (t) => {
  const { main, backup } = await accounts(t)
  const providers = { default: verifying(main), fallback: verifying(backup) }
  main.setMode('down', 'verifications')
  await routeSms(providers).start({ to: US }, never())
  const other = routeSms(providers)
  t.equal(await other.check({ to: US, code: backup.lastCodeFor(US)! }, never()), true)
  await t.rejects(other.check({ to: GB, code: '123456' }, never()), { code: 'SECURELOGIN_OTP_EXPIRED' }, 'expired at both')
})

t.test("verifying: Twilio's own limits are answers, not failures: no fallback", async (t) => {
  const { main, backup } = await accounts(t)
  const sms = routeSms({ default: verifying(main), fallback: verifying(backup) })
  main.setMode({ status: 429, code: 60203 }, 'verifications')
  await t.rejects(sms.start({ to: US }, never()), { code: 'SECURELOGIN_RATE_LIMITED' })
  main.setMode({ status: 429, code: 60202 }, 'checks')
  await t.rejects(sms.check({ to: US, code: '123456' }, never()), { code: 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED' })
  main.setMode('down', 'checks')
  await t.rejects(sms.check({ to: US, code: '123456' }, never()), { name: 'SmsDeliveryError', transient: true }, 'a check is never moved to a vendor that has no code')
  t.equal(backup.requests.length, 0)
})

t.test('options are checked when the route is made', async (t) => {
  const texting: TextingSmsProvider = { name: 't', send: async () => {} }
  const verifyingProvider: VerifyingSmsProvider = { name: 'v', start: async () => {}, check: async () => true }
  const cases: Array<[string, unknown, RegExp]> = [
    ['no options', undefined, /options are required/],
    ['no default', {}, /default must be a provider/],
    ['a default that is not a provider', { default: { send: 'x' } }, /default must be a provider with send\(\), or with start\(\) and check\(\)/],
    ['a lower-case country', { byCountry: { cn: texting }, default: texting }, /ISO 3166-1 alpha-2 codes such as 'CN' \(got 'cn'\)/],
    ['a country without a provider', { byCountry: { CN: null }, default: texting }, /byCountry\.CN must be a provider/],
    ['mixed kinds', { byCountry: { CN: verifyingProvider }, default: texting }, /all providers must be of one kind/],
    ['a fallback of the other kind', { default: verifyingProvider, fallback: texting }, /all providers must be of one kind/],
    ['a bad attemptTimeout', { default: texting, fallback: texting, attemptTimeout: 0 }, /attemptTimeout must be a positive number/],
  ]
  for (const [what, options, expected] of cases) {
    const error = await caught((async () => routeSms(options as Parameters<typeof routeSms>[0]))())
    t.type(error, TypeError, what)
    t.match((error as Error).message, /^fastify-securelogin: routeSms\(\): /, what)
    t.match((error as Error).message, expected, what)
  }
  t.type(routeSms({ default: verifyingProvider }).start, 'function', 'verifying providers make a verifying route')
  t.type((routeSms({ default: texting }) as TextingSmsProvider).send, 'function', 'texting providers make a texting route')
})
