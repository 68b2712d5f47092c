import t, { type Test } from 'tap'
import { twilioMessaging, type TwilioMessagingOptions } from '../lib/sms/twilio-messaging.js'
import { SmsDeliveryError } from '../lib/sms/errors.js'
import type { SmsMessage } from '../lib/sms/types.js'
import { fakeTwilioClient, loggedError, sid, startTwilioFake, timeoutOnceStalled, type TwilioFake } from './fixtures/twilio-fake.js'
import { caught } from './helper.js'

const PHONE = '+14155550123'
const FROM = '+15005550006'
const never = (): AbortSignal => new AbortController().signal
const message = (overrides: Partial<SmsMessage> = {}): SmsMessage => ({ to: PHONE, body: 'Your code is 482910', code: '482910', ...overrides })

type Sender = Omit<TwilioMessagingOptions, 'client' | 'accountSid' | 'authToken'>

async function setup (tt: Test, sender: Sender = { from: FROM }, clientOptions: Parameters<typeof fakeTwilioClient>[1] = {}): Promise<{ fake: TwilioFake, sms: ReturnType<typeof twilioMessaging> }> {
  const fake = await startTwilioFake()
  tt.teardown(() => fake.close())
  return { fake, sms: twilioMessaging({ client: fakeTwilioClient(fake, clientOptions), ...sender }) }
}

function assertSafe (tt: Test, err: unknown, fake: TwilioFake): void {
  const text = (err as Error).message
  for (const secret of [fake.accountSid, fake.authToken, fake.url, '127.0.0.1', 'twilio.com', PHONE, 'Authenticate', 'Service unavailable']) {
    tt.notOk(text.includes(secret), `message does not contain ${secret}`)
  }
  tt.notOk(loggedError(err).includes(fake.authToken), 'the log line does not contain the auth token')
}

t.test("sends the plugin's text from a number through Messages.json", async (t) => {
  const { fake, sms } = await setup(t)
  t.equal(sms.name, 'twilio-messaging')
  await sms.send(message(), never())
  t.same(fake.sent, [{ kind: 'message', to: PHONE, channel: 'sms', body: 'Your code is 482910', from: FROM }])
  t.match(fake.requests[0], {
    method: 'POST', path: `/2010-04-01/Accounts/${fake.accountSid}/Messages.json`, twilioHost: 'api.twilio.com', username: fake.accountSid, authorized: true,
  })
  t.same(fake.requests[0]?.body, { To: PHONE, Body: 'Your code is 482910', From: FROM })
  t.equal(fake.lastCodeFor(PHONE), '482910')
})

t.test('sends through a Messaging Service', async (t) => {
  const messagingServiceSid = sid('MG')
  const { fake, sms } = await setup(t, { messagingServiceSid })
  await sms.send(message(), never())
  t.same(fake.requests[0]?.body, { To: PHONE, Body: 'Your code is 482910', MessagingServiceSid: messagingServiceSid })
})

t.test('a string template replaces every {code}; a function template gets the code, number and locale', async (t) => {
  const { fake, sms } = await setup(t, { from: FROM, template: 'Acme: {code}. Never share {code}.' })
  await sms.send(message(), never())
  t.equal(fake.sent[0]?.body, 'Acme: 482910. Never share 482910.')

  const seen: unknown[] = []
  const localized = twilioMessaging({
    client: fakeTwilioClient(fake),
    from: FROM,
    template: (input) => { seen.push(input); return input.locale === 'fr' ? `Votre code : ${input.code}` : `Code: ${input.code}` },
  })
  await localized.send(message({ locale: 'fr' }), never())
  await localized.send(message(), never())
  t.same(fake.sent.slice(1).map((s) => s.body), ['Votre code : 482910', 'Code: 482910'])
  t.same(seen[0], { code: '482910', to: PHONE, locale: 'fr' })

  const empty = twilioMessaging({ client: fakeTwilioClient(fake), from: FROM, template: () => '' })
  await t.rejects(empty.send(message(), never()), { name: 'TypeError', message: /template returned no text/ })
  t.equal(fake.sent.length, 3)
})

t.test("a 'failed' or 'undelivered' status in Twilio's answer is a send failure", async (t) => {
  const { fake, sms } = await setup(t)
  const cases = [
    { messageStatus: 'failed', errorCode: 30007, transient: false },
    { messageStatus: 'undelivered', errorCode: 30003, transient: false },
    { messageStatus: 'failed', errorCode: 30001, transient: true },
  ] as const
  for (const { messageStatus, errorCode, transient } of cases) {
    fake.setMode({ messageStatus, errorCode }, 'messages')
    const error = await caught(sms.send(message(), never()))
    t.type(error, SmsDeliveryError)
    t.match(error, { transient, vendorCode: errorCode, provider: 'twilio-messaging', message: `twilio-messaging: message ${messageStatus} (code ${errorCode})` })
    assertSafe(t, error, fake)
  }
  fake.setMode('normal')
  await sms.send(message(), never())
})

t.test('a wrong auth token or account SID is a non-transient failure that leaks nothing', async (t) => {
  for (const [what, credentials] of [['token', { authToken: 'not-the-token' }], ['sid', { accountSid: sid('AC') }]] as const) {
    const { fake, sms } = await setup(t, { from: FROM }, credentials)
    const error = await caught(sms.send(message(), never()))
    t.match(error, { name: 'SmsDeliveryError', transient: false, status: 401, vendorCode: 20003 }, what)
    t.equal(fake.sent.length, 0)
    assertSafe(t, error, fake)
  }
})

t.test('Twilio down, rate limiting and a refused number', async (t) => {
  const { fake, sms } = await setup(t)
  fake.setMode('down')
  const down = await caught(sms.send(message(), never()))
  t.match(down, { name: 'SmsDeliveryError', transient: true, status: 503 })
  assertSafe(t, down, fake)

  fake.setMode('down-html')
  const html = await caught(sms.send(message(), never()))
  t.match(html, { transient: true, status: 502 })
  assertSafe(t, html, fake)

  fake.setMode('rate-limited')
  t.match(await caught(sms.send(message(), never())), { transient: true, status: 429, vendorCode: 20429 })

  fake.setMode('normal')
  const invalid = await caught(sms.send(message({ to: '+1415' }), never()))
  t.match(invalid, { name: 'SmsDeliveryError', transient: false, status: 400, vendorCode: 21211 })
  t.notOk((invalid as Error).message.includes('+1415'), 'the number is not in the message')
  t.equal(fake.sent.length, 0)
})

t.test('a stalled Twilio: the send ends when the signal fires and the request is cancelled', async (t) => {
  const { fake, sms } = await setup(t)
  fake.setMode('stall')
  const started = Date.now()
  const error = await caught(sms.send(message(), timeoutOnceStalled(fake)))
  t.equal((error as Error).name, 'TimeoutError')
  t.ok(Date.now() - started < 2000)
  for (let i = 0; i < 50 && fake.stalls.closedByClient === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(fake.stalls.closedByClient, 1)
})

t.test('options are checked when the provider is made', async (t) => {
  const fake = await startTwilioFake()
  t.teardown(() => fake.close())
  const client = fakeTwilioClient(fake)
  const cases: Array<[string, unknown, RegExp]> = [
    ['no options', undefined, /options are required/],
    ['no sender', { client }, /exactly one of from .* and messagingServiceSid/],
    ['two senders', { client, from: FROM, messagingServiceSid: sid('MG') }, /exactly one of from/],
    ['an empty from', { client, from: ' ' }, /from must be a non-empty string/],
    ['a bad messagingServiceSid', { client, messagingServiceSid: sid('VA') }, /messagingServiceSid must be a Twilio SID: 'MG'/],
    ['a template without {code}', { client, from: FROM, template: 'Your code' }, /template must contain '\{code\}'/],
    ['a template of another type', { client, from: FROM, template: 42 }, /template must be a string/],
    ['no credentials', { from: FROM }, /accountSid must be a Twilio SID/],
    ['no token', { accountSid: fake.accountSid, from: FROM }, /authToken is required/],
  ]
  for (const [what, options, expected] of cases) {
    const error = await caught((async () => twilioMessaging(options as TwilioMessagingOptions))())
    t.type(error, TypeError, what)
    t.match((error as Error).message, /^fastify-securelogin: twilioMessaging\(\): /, what)
    t.match((error as Error).message, expected, what)
  }
})
