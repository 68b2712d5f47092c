import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import { InternalError, OtpInvalidError, RateLimitedError, SmsSendFailedError, SmsTimeoutError } from '../lib/errors.js'
import { callSmsVendor } from '../lib/sms/deliver.js'

// callSmsVendor on its own, with vendor calls the test writes: which errors reach the client as
// they are, which are replaced (and logged, masked), and the time bound with its abort signal.

const TO = '+14155550123'

/** A logger that keeps its error lines. */
function logDouble () {
  const errors: Array<{ fields: Record<string, unknown>, message: string }> = []
  const log = { error: (fields: Record<string, unknown>, message: string) => { errors.push({ fields, message }) } } as unknown as FastifyBaseLogger
  return { log, errors }
}

/** What callSmsVendor throws for a vendor call that fails with `thrown`, and what it logged. */
async function failureOf (thrown: unknown, timeoutMs = 1000) {
  const { log, errors } = logDouble()
  const error = await callSmsVendor({ to: TO, timeoutMs, log, provider: 'test-vendor', call: async () => { throw thrown } })
    .then(() => undefined, (rejection: unknown) => rejection)
  return { error, errors }
}

t.test('a vendor answer is returned as it is, and its time bound ends with it', async (t) => {
  const { log, errors } = logDouble()
  let signal: AbortSignal | undefined
  const answer = await callSmsVendor({ to: TO, timeoutMs: 50, log, provider: 'test-vendor', call: async (given) => { signal = given; return 'delivered' } })
  t.equal(answer, 'delivered')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(signal?.aborted, false, 'the call is not aborted after it answered: its timer was cleared')
  t.same(errors, [], 'nothing logged')
})

t.test('a vendor error becomes SMS_SEND_FAILED, logged with the number masked', async (t) => {
  const vendorError = Object.assign(new Error(`The 'To' number ${TO} is not a valid phone number`), { statusCode: 400, code: 21211 })
  const { error, errors } = await failureOf(vendorError)
  t.type(error, SmsSendFailedError, 'the client gets a text the plugin wrote, not the vendor\'s')
  t.equal(errors.length, 1, 'one error line')
  t.equal(errors[0]?.message, 'fastify-securelogin: SMS vendor call failed')
  const fields = errors[0]?.fields as { err: Error, to: string, provider: string, timedOut: boolean }
  t.equal(fields.to, '+14*******23', 'the number masked')
  t.equal(fields.provider, 'test-vendor')
  t.equal(fields.timedOut, false)
  t.match(fields.err.message, /is not a valid phone number/, 'the vendor\'s error is logged')
  t.notMatch(fields.err.message, /4155550123/, 'with the number in it masked')
})

t.test('a vendor that throws nothing at all still gets SMS_SEND_FAILED', async (t) => {
  for (const thrown of [undefined, null]) {
    const { error, errors } = await failureOf(thrown)
    t.type(error, SmsSendFailedError, `thrown ${String(thrown)}`)
    t.equal(errors.length, 1, 'and is logged')
  }
})

t.test('the plugin\'s own 4xx errors pass through unchanged and unlogged', async (t) => {
  for (const own of [new OtpInvalidError(), new RateLimitedError(3)]) {
    const { error, errors } = await failureOf(own)
    t.equal(error, own, `${own.code} reaches the client as it is`)
    t.same(errors, [], 'not logged as a vendor failure')
  }
})

t.test('errors that only look like the plugin\'s client errors are replaced', async (t) => {
  const lookalikes: Array<[string, unknown]> = [
    ['a plugin error of status 500', new InternalError()],
    ['a status of exactly 500', Object.assign(new Error('x'), { statusCode: 500, code: 'SECURELOGIN_OTP_INVALID' })],
    ['a 4xx status written as a string', Object.assign(new Error('x'), { statusCode: '400', code: 'SECURELOGIN_OTP_INVALID' })],
    ['no status', Object.assign(new Error('x'), { code: 'SECURELOGIN_OTP_INVALID' })],
    ['a vendor\'s own code', Object.assign(new Error('x'), { statusCode: 400, code: 'INVALID_NUMBER' })],
    ['the prefix elsewhere than at the start', Object.assign(new Error('x'), { statusCode: 400, code: 'VENDOR_SECURELOGIN_' })],
    ['a numeric code', Object.assign(new Error('x'), { statusCode: 400, code: 400 })],
    ['no code', Object.assign(new Error('x'), { statusCode: 400 })],
  ]
  for (const [what, thrown] of lookalikes) {
    const { error, errors } = await failureOf(thrown)
    t.type(error, SmsSendFailedError, `${what}: replaced`)
    t.equal(errors.length, 1, `${what}: logged`)
  }
})

t.test('a vendor that does not answer in time is aborted and answered SMS_TIMEOUT', async (t) => {
  const { log, errors } = logDouble()
  let signal: AbortSignal | undefined
  const startedAt = Date.now()
  const error = await callSmsVendor({
    to: TO,
    timeoutMs: 100,
    log,
    provider: 'test-vendor',
    call: (given) => { signal = given; return new Promise<never>(() => {}) },
  }).then(() => undefined, (rejection: unknown) => rejection)
  const waited = Date.now() - startedAt
  t.type(error, SmsTimeoutError)
  t.ok(waited >= 90 && waited < 2000, `after about timeoutMs: ${waited} ms`)
  t.equal(signal?.aborted, true, 'the vendor call is told to stop')
  t.equal(errors.length, 1, 'logged')
  t.equal((errors[0]?.fields as { timedOut: boolean }).timedOut, true, 'as a timeout')
})

t.test('a vendor that fails after being aborted is still answered SMS_TIMEOUT', async (t) => {
  const { log, errors } = logDouble()
  const error = await callSmsVendor({
    to: TO,
    timeoutMs: 50,
    log,
    provider: 'test-vendor',
    // Like fetch, the call rejects with its own error once its signal is aborted.
    call: (signal) => new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted by the caller')))),
  }).then(() => undefined, (rejection: unknown) => rejection)
  t.type(error, SmsTimeoutError, 'the vendor\'s abort error is not what the client is told')
  t.equal((errors[0]?.fields as { timedOut: boolean }).timedOut, true)
})
