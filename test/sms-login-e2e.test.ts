// The whole login through each Twilio provider, the real SDK and the local Twilio fake.
import t, { type Test } from 'tap'
import { twilioMessaging } from '../lib/sms/twilio-messaging.js'
import { twilioVerify } from '../lib/sms/twilio-verify.js'
import { routeSms } from '../lib/sms/route.js'
import type { SmsProvider } from '../lib/sms/types.js'
import { buildApp, post, testPhone, type TestApp } from './helper.js'
import { fakeTwilioClient, startTwilioFake, type TwilioFake } from './fixtures/twilio-fake.js'

async function fakeTwilio (tt: Test): Promise<TwilioFake> {
  const fake = await startTwilioFake()
  tt.teardown(() => fake.close())
  return fake
}

async function app (tt: Test, sms: SmsProvider, smsTimeout: string = '2s'): Promise<TestApp> {
  // 'await': these tests follow each vendor answer into the route's answer (the default, 'background', is tested in abuse.test.ts).
  return await buildApp(tt as never, 'sqlite', { sms, smsTimeout, smsDelivery: 'await' })
}

const verifyWith = (fake: TwilioFake, options: Parameters<typeof fakeTwilioClient>[1] = {}, channel?: 'whatsapp') =>
  twilioVerify({ client: fakeTwilioClient(fake, options), serviceSid: fake.serviceSid, ...(channel === undefined ? {} : { channel }) })
const messagingWith = (fake: TwilioFake, options: Parameters<typeof fakeTwilioClient>[1] = {}) =>
  twilioMessaging({ client: fakeTwilioClient(fake, options), from: '+15005550006' })

function assertSafeBody (tt: Test, body: string, fake: TwilioFake): void {
  for (const secret of [fake.accountSid, fake.authToken, fake.serviceSid, fake.url, 'twilio.com', 'Authenticate']) {
    tt.notOk(body.includes(secret), `the answer does not contain ${secret}`)
  }
}

t.test('twilioVerify: register → login → a wrong code (Twilio pending) → the right code → signed in', async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, verifyWith(fake))
  const phone = testPhone()
  const { userid } = (await post(server, '/register', { phone })).json()

  const login = await post(server, '/login', { phone })
  t.equal(login.statusCode, 200, login.body)
  t.match(fake.sent, [{ kind: 'verification', to: phone, channel: 'sms' }])
  const code = fake.lastCodeFor(phone)!
  const wrong = code === '000000' ? '111111' : '000000'

  const rejected = await post(server, '/verify_sms', { phone, token: wrong, userid })
  t.equal(rejected.statusCode, 401)
  t.equal(rejected.json().code, 'SECURELOGIN_OTP_INVALID')

  const verified = await post(server, '/verify_sms', { phone, token: code, userid })
  t.equal(verified.statusCode, 200, verified.body)
  t.equal(verified.json().userid, userid)
  t.equal(fake.requests.filter((r) => r.path.endsWith('/VerificationCheck')).length, 2)
})

t.test('twilioVerify over WhatsApp', async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, verifyWith(fake, {}, 'whatsapp'))
  const phone = testPhone()
  await post(server, '/register', { phone })
  t.equal((await post(server, '/login', { phone })).statusCode, 200)
  t.equal(fake.sent[0]?.channel, 'whatsapp')
  t.equal((await post(server, '/verify_sms', { phone, token: fake.lastCodeFor(phone) })).statusCode, 200)
})

t.test('twilioMessaging: the code in the text Twilio received signs in', async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, messagingWith(fake))
  const phone = testPhone()
  await post(server, '/register', { phone })
  t.equal((await post(server, '/login', { phone })).statusCode, 200)
  t.equal(fake.sent.length, 1)
  const code = fake.lastCodeFor(phone)!
  t.ok(fake.sent[0]?.body?.includes(code))
  t.equal((await post(server, '/verify_sms', { phone, token: code })).statusCode, 200)
})

t.test('wrong credentials: 502 SECURELOGIN_SMS_SEND_FAILED without vendor text', async (t) => {
  for (const provider of ['verify', 'messaging'] as const) {
    const fake = await fakeTwilio(t)
    const sms = provider === 'verify' ? verifyWith(fake, { authToken: 'wrong' }) : messagingWith(fake, { authToken: 'wrong' })
    const { app: server } = await app(t, sms)
    const phone = testPhone()
    await post(server, '/register', { phone })
    const login = await post(server, '/login', { phone })
    t.equal(login.statusCode, 502, provider)
    t.equal(login.json().code, 'SECURELOGIN_SMS_SEND_FAILED')
    assertSafeBody(t, login.body, fake)
  }
})

t.test('Twilio down: 502, and the failed send neither leaves a code nor holds back the next one', async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, messagingWith(fake))
  const phone = testPhone()
  await post(server, '/register', { phone })
  fake.setMode('down')
  const failed = await post(server, '/login', { phone })
  t.equal(failed.statusCode, 502)
  assertSafeBody(t, failed.body, fake)
  fake.setMode({ messageStatus: 'failed', errorCode: 30007 }, 'messages')
  const refused = await post(server, '/login', { phone })
  t.equal(refused.statusCode, 502, "Twilio's 'failed' status")
  const leftover = await post(server, '/verify_sms', { phone, token: fake.lastCodeFor(phone) })
  t.equal(leftover.statusCode, 401, 'the code in the refused text does not work')
  fake.setMode('normal')
  const retried = await post(server, '/login', { phone })
  t.equal(retried.statusCode, 200, 'no resend cooldown after a failed send')
  t.equal((await post(server, '/verify_sms', { phone, token: fake.lastCodeFor(phone) })).statusCode, 200)
})

t.test('a stalled Twilio: 504 SECURELOGIN_SMS_TIMEOUT after smsTimeout', async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, verifyWith(fake), '300ms')
  const phone = testPhone()
  await post(server, '/register', { phone })
  fake.setMode('stall')
  const started = Date.now()
  const login = await post(server, '/login', { phone })
  t.equal(login.statusCode, 504)
  t.equal(login.json().code, 'SECURELOGIN_SMS_TIMEOUT')
  t.ok(Date.now() - started < 3000)
})

t.test("Twilio Verify's limits answer with the plugin's codes", async (t) => {
  const fake = await fakeTwilio(t)
  const { app: server } = await app(t, verifyWith(fake))
  const phone = testPhone()
  await post(server, '/register', { phone })

  fake.setMode({ status: 429, code: 60203, message: 'Max send attempts reached' }, 'verifications')
  const tooManySends = await post(server, '/login', { phone })
  t.equal(tooManySends.statusCode, 429)
  t.equal(tooManySends.json().code, 'SECURELOGIN_RATE_LIMITED')

  fake.setMode('normal', 'verifications')
  t.equal((await post(server, '/login', { phone })).statusCode, 200)
  fake.setMode({ status: 429, code: 60202, message: 'Max check attempts reached' }, 'checks')
  const tooManyChecks = await post(server, '/verify_sms', { phone, token: fake.lastCodeFor(phone) })
  t.equal(tooManyChecks.statusCode, 429)
  t.equal(tooManyChecks.json().code, 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED')

  fake.setMode('normal', 'checks')
  fake.expire(phone)
  const expired = await post(server, '/verify_sms', { phone, token: fake.lastCodeFor(phone) })
  t.equal(expired.statusCode, 401)
  t.equal(expired.json().code, 'SECURELOGIN_OTP_EXPIRED', "Twilio's 20404")
})

t.test('routeSms: +86 through one account, +1 through another, and the fallback when the default is down', async (t) => {
  const [china, main, backup] = await Promise.all([fakeTwilio(t), fakeTwilio(t), fakeTwilio(t)])
  const sms = routeSms({ byCountry: { CN: verifyWith(china) }, default: verifyWith(main), fallback: verifyWith(backup) })
  const { app: server } = await app(t, sms)
  const cn = '+8613812345678'
  const us = testPhone()
  for (const phone of [cn, us]) await post(server, '/register', { phone })

  t.equal((await post(server, '/login', { phone: cn })).statusCode, 200)
  t.equal((await post(server, '/verify_sms', { phone: cn, token: china.lastCodeFor(cn) })).statusCode, 200)

  main.setMode('down')
  t.equal((await post(server, '/login', { phone: us })).statusCode, 200)
  t.equal(main.sent.length, 0)
  t.equal((await post(server, '/verify_sms', { phone: us, token: backup.lastCodeFor(us) })).statusCode, 200, 'checked at the fallback')
})
