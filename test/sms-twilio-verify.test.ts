import t, { type Test } from 'tap'
import { twilioVerify } from '../lib/sms/twilio-verify.js'
import { SmsDeliveryError } from '../lib/sms/errors.js'
import { fakeTwilioClient, loggedError, sid, startTwilioFake, timeoutOnceStalled, type TwilioFake } from './fixtures/twilio-fake.js'
import { caught } from './helper.js'

const PHONE = '+14155550123'
const never = (): AbortSignal => new AbortController().signal


async function setup (tt: Test, options: Parameters<typeof fakeTwilioClient>[1] & { channel?: 'sms' | 'whatsapp' | 'call' } = {}): Promise<{ fake: TwilioFake, verify: ReturnType<typeof twilioVerify> }> {
  const fake = await startTwilioFake()
  tt.teardown(() => fake.close())
  const { channel, ...clientOptions } = options
  const verify = twilioVerify({ client: fakeTwilioClient(fake, clientOptions), serviceSid: fake.serviceSid, ...(channel === undefined ? {} : { channel }) })
  return { fake, verify }
}

/** The error's message (what could reach a client) holds no credential, SID or URL, and no log line holds the token. */
function assertSafe (tt: Test, err: unknown, fake: TwilioFake): void {
  const message = (err as Error).message
  for (const secret of [fake.accountSid, fake.authToken, fake.serviceSid, fake.url, '127.0.0.1', 'twilio.com', 'Authenticate', 'Service unavailable']) {
    tt.notOk(message.includes(secret), `message does not contain ${secret}`)
  }
  const log = loggedError(err)
  tt.notOk(log.includes(fake.authToken), 'the log line does not contain the auth token')
  tt.notOk(log.includes(Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64')), 'the log line does not contain the Basic credentials')
}

t.test('start sends through Verify and check approves the code Twilio made', async (t) => {
  const { fake, verify } = await setup(t)
  t.equal(verify.name, 'twilio-verify')
  await verify.start({ to: PHONE }, never())
  t.equal(fake.sent.length, 1)
  t.match(fake.sent[0], { kind: 'verification', to: PHONE, channel: 'sms' })
  const [request] = fake.requests
  t.match(request, { method: 'POST', path: `/v2/Services/${fake.serviceSid}/Verifications`, twilioHost: 'verify.twilio.com', username: fake.accountSid, authorized: true })
  t.same(request?.body, { To: PHONE, Channel: 'sms' })

  const code = fake.lastCodeFor(PHONE)
  t.match(code, /^\d{6}$/)
  t.equal(await verify.check({ to: PHONE, code: code! }, never()), true)
  t.match(fake.requests[1], { path: `/v2/Services/${fake.serviceSid}/VerificationCheck`, body: { To: PHONE, Code: code } })
})

t.test("a wrong code is Twilio's 'pending': false, and the right code still passes afterwards", async (t) => {
  const { fake, verify } = await setup(t)
  await verify.start({ to: PHONE }, never())
  const code = fake.lastCodeFor(PHONE)!
  const wrong = code === '000000' ? '111111' : '000000'
  t.equal(await verify.check({ to: PHONE, code: wrong }, never()), false)
  t.equal(fake.requests.length, 2, 'the wrong code was sent to Twilio')
  t.equal(await verify.check({ to: PHONE, code }, never()), true)
})

t.test('a code Twilio cannot have made is rejected without spending a Twilio check', async (t) => {
  const { fake, verify } = await setup(t)
  await verify.start({ to: PHONE }, never())
  for (const code of ['12', '12345678901', '12 34', '']) t.equal(await verify.check({ to: PHONE, code }, never()), false)
  t.equal(fake.requests.length, 1)
})

t.test('WhatsApp as the default channel, and a channel per request', async (t) => {
  const { fake, verify } = await setup(t, { channel: 'whatsapp' })
  await verify.start({ to: PHONE }, never())
  t.equal(fake.sent[0]?.channel, 'whatsapp')
  t.equal(fake.requests[0]?.body.Channel, 'whatsapp')
  t.equal(await verify.check({ to: PHONE, code: fake.lastCodeFor(PHONE)! }, never()), true)

  await verify.start({ to: '+14155550124', channel: 'call' }, never())
  t.equal(fake.sent[1]?.channel, 'call')
  await t.rejects(verify.start({ to: PHONE, channel: 'email' }, never()), { code: 'SECURELOGIN_BAD_REQUEST', statusCode: 400 })
  t.equal(fake.sent.length, 2, 'an unknown channel never reaches Twilio')
})

t.test('the locale is passed on; one Twilio has no translation for is dropped, as Twilio advises', async (t) => {
  const { fake, verify } = await setup(t)
  await verify.start({ to: PHONE, locale: 'fr' }, never())
  t.equal(fake.sent[0]?.locale, 'fr')
  await verify.start({ to: '+14155550124', locale: 'tlh' }, never())
  t.same(fake.requests.slice(1).map((r) => r.body.Locale), ['tlh', undefined])
  t.equal(fake.sent.length, 2)
  t.equal(fake.sent[1]?.locale, undefined)
})

t.test('a wrong auth token or account SID is a non-transient failure that leaks nothing', async (t) => {
  for (const [what, credentials] of [['token', { authToken: 'not-the-token' }], ['sid', { accountSid: sid('AC') }]] as const) {
    const { fake, verify } = await setup(t, credentials)
    const error = await caught(verify.start({ to: PHONE }, never()))
    t.type(error, SmsDeliveryError, what)
    t.match(error, { transient: false, status: 401, vendorCode: 20003, provider: 'twilio-verify' }, what)
    t.equal(fake.sent.length, 0)
    assertSafe(t, error, fake)
    t.match(loggedError(error), /Authenticate/, 'the vendor text is kept for the server log')
  }
})

t.test('Twilio down (5xx with a Twilio body, or an HTML page) is transient and leaks nothing', async (t) => {
  const { fake, verify } = await setup(t)
  fake.setMode('down')
  const down = await caught(verify.start({ to: PHONE }, never()))
  t.match(down, { name: 'SmsDeliveryError', transient: true, status: 503, vendorCode: 20503 })
  assertSafe(t, down, fake)

  fake.setMode('down-html')
  const html = await caught(verify.check({ to: PHONE, code: '123456' }, never()))
  t.match(html, { name: 'SmsDeliveryError', transient: true, status: 502 })
  t.notMatch((html as Error).message, /\u001b|<html/)
  assertSafe(t, html, fake)
})

t.test('429 from Twilio is transient', async (t) => {
  const { fake, verify } = await setup(t)
  fake.setMode('rate-limited')
  const error = await caught(verify.start({ to: PHONE }, never()))
  t.match(error, { name: 'SmsDeliveryError', transient: true, status: 429, vendorCode: 20429 })
  assertSafe(t, error, fake)
})

t.test('a dropped connection is a transient network error without the Authorization header in its cause', async (t) => {
  const { fake, verify } = await setup(t)
  fake.setMode('hang-up')
  const error = await caught(verify.start({ to: PHONE }, never()))
  t.match(error, { name: 'SmsDeliveryError', transient: true, message: /could not reach Twilio \(ECONNRESET\)/ })
  t.notOk('config' in ((error as Error).cause as object), 'the axios config is not kept')
  assertSafe(t, error, fake)
})

t.test('a stalled Twilio: the call ends when the signal fires, and the HTTP request is cancelled', async (t) => {
  const { fake, verify } = await setup(t)
  fake.setMode('stall')
  const started = Date.now()
  const error = await caught(verify.start({ to: PHONE }, timeoutOnceStalled(fake)))
  t.equal((error as Error).name, 'TimeoutError', "rejects with the signal's reason")
  t.ok(Date.now() - started < 2000, 'promptly')
  for (let i = 0; i < 50 && fake.stalls.closedByClient === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(fake.stalls.closedByClient, 1, 'the connection to Twilio was closed')
})

t.test('a stalled Twilio behind an http client we cannot cancel: the call still ends in time', async (t) => {
  const { fake, verify } = await setup(t, { abortable: false })
  fake.setMode('stall')
  const controller = new AbortController()
  setTimeout(() => { controller.abort() }, 200)
  const started = Date.now()
  const error = await caught(verify.check({ to: PHONE, code: '123456' }, controller.signal))
  t.equal((error as Error).name, 'AbortError')
  t.ok(Date.now() - started < 2000)
  t.equal(fake.stalls.closedByClient, 0, 'this client could only be raced')
})

t.test('an already aborted signal sends nothing', async (t) => {
  const { fake, verify } = await setup(t)
  await t.rejects(verify.start({ to: PHONE }, AbortSignal.abort()), { name: 'AbortError' })
  t.equal(fake.requests.length, 0)
})

t.test('60203: a sixth send within the verification answers SECURELOGIN_RATE_LIMITED', async (t) => {
  const { fake, verify } = await setup(t)
  for (let i = 0; i < 5; i++) await verify.start({ to: PHONE }, never())
  t.equal(fake.sent.length, 5)
  t.equal(new Set(fake.sent.map((s) => s.code)).size, 1, 'Twilio resends the same code')
  const error = await caught(verify.start({ to: PHONE }, never()))
  t.match(error, { code: 'SECURELOGIN_RATE_LIMITED', statusCode: 429, message: /600 seconds/ })
  t.equal(fake.sent.length, 5)
})

t.test('60202: after five wrong codes Twilio refuses checks: SECURELOGIN_OTP_ATTEMPTS_EXCEEDED', async (t) => {
  const { fake, verify } = await setup(t)
  await verify.start({ to: PHONE }, never())
  const code = fake.lastCodeFor(PHONE)!
  const wrong = code === '000000' ? '111111' : '000000'
  for (let i = 0; i < 5; i++) t.equal(await verify.check({ to: PHONE, code: wrong }, never()), false)
  await t.rejects(verify.check({ to: PHONE, code }, never()), { code: 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED', statusCode: 429 })
})

t.test('20404: no pending verification (never started, expired, already used) is SECURELOGIN_OTP_EXPIRED', async (t) => {
  const { fake, verify } = await setup(t)
  const expired = { code: 'SECURELOGIN_OTP_EXPIRED', statusCode: 401 }
  await t.rejects(verify.check({ to: PHONE, code: '123456' }, never()), expired, 'never started')

  await verify.start({ to: PHONE }, never())
  fake.expire(PHONE)
  await t.rejects(verify.check({ to: PHONE, code: fake.lastCodeFor(PHONE)! }, never()), expired, 'expired')

  await verify.start({ to: PHONE }, never())
  const code = fake.lastCodeFor(PHONE)!
  t.equal(await verify.check({ to: PHONE, code }, never()), true)
  await t.rejects(verify.check({ to: PHONE, code }, never()), expired, 'a code is approved once')
})

t.test('the same Twilio codes forced on any answer map the same way', async (t) => {
  const { fake, verify } = await setup(t)
  fake.setMode({ status: 429, code: 60203, message: 'Max send attempts reached' }, 'verifications')
  await t.rejects(verify.start({ to: PHONE }, never()), { code: 'SECURELOGIN_RATE_LIMITED' })
  fake.setMode({ status: 429, code: 60202, message: 'Max check attempts reached' }, 'checks')
  await t.rejects(verify.check({ to: PHONE, code: '123456' }, never()), { code: 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED' })
  fake.setMode({ status: 404, code: 20404 }, 'checks')
  await t.rejects(verify.check({ to: PHONE, code: '123456' }, never()), { code: 'SECURELOGIN_OTP_EXPIRED' })
  fake.setMode({ status: 400, code: 60410, message: `Verification delivery attempt blocked for ${PHONE}` }, 'verifications')
  const blocked = await caught(verify.start({ to: PHONE }, never()))
  t.match(blocked, { name: 'SmsDeliveryError', transient: false, status: 400, vendorCode: 60410 })
  assertSafe(t, blocked, fake)
})

t.test('a Verify service that does not exist is a non-transient failure', async (t) => {
  const fake = await startTwilioFake()
  t.teardown(() => fake.close())
  const verify = twilioVerify({ client: fakeTwilioClient(fake), serviceSid: sid('VA') })
  await t.rejects(verify.start({ to: PHONE }, never()), { name: 'SmsDeliveryError', transient: false, status: 404 })
})

t.test('options are checked when the provider is made', async (t) => {
  const fake = await startTwilioFake()
  t.teardown(() => fake.close())
  const client = fakeTwilioClient(fake)
  const serviceSid = fake.serviceSid
  const token = 'a-secret-token-value'
  const cases: Array<[string, unknown, RegExp]> = [
    ['no options', undefined, /options are required/],
    ['no serviceSid', { client }, /serviceSid must be a Twilio SID: 'VA'/],
    ['a serviceSid of another kind', { client, serviceSid: sid('MG') }, /serviceSid/],
    ['an unknown channel', { client, serviceSid, channel: 'email' }, /channel must be one of sms, whatsapp, call/],
    ['client and credentials', { client, accountSid: fake.accountSid, authToken: token, serviceSid }, /either client or accountSid and authToken/],
    ['no credentials', { serviceSid }, /accountSid must be a Twilio SID/],
    ['a token in place of the SID', { accountSid: token, authToken: token, serviceSid }, /accountSid must be a Twilio SID/],
    ['no token', { accountSid: fake.accountSid, serviceSid }, /authToken is required/],
    ['a client that is not one', { client: {}, serviceSid }, /client must be a client made by the twilio package/],
  ]
  for (const [what, options, message] of cases) {
    const error = await caught((async () => twilioVerify(options as Parameters<typeof twilioVerify>[0]))())
    t.type(error, TypeError, what)
    t.match((error as Error).message, /^fastify-securelogin: twilioVerify\(\): /, what)
    t.match((error as Error).message, message, what)
    t.notOk((error as Error).message.includes(token), `${what}: the value is not echoed`)
  }
  t.equal(twilioVerify({ accountSid: fake.accountSid, authToken: fake.authToken, serviceSid }).name, 'twilio-verify', 'credentials make their own client')
})
