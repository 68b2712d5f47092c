import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import * as lib from '../lib/index.js'
import { errors } from '../lib/index.js'
import { buildApp, dialects, post, signIn, testPhone } from './helper.js'

// The codes and statuses clients rely on. Changing one here is a breaking change for clients.
const expected: Record<keyof typeof errors, [code: string, status: number]> = {
  BadRequestError: ['SECURELOGIN_BAD_REQUEST', 400],
  PhoneInvalidError: ['SECURELOGIN_PHONE_INVALID', 400],
  PhoneCountryNotAllowedError: ['SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED', 400],
  PhoneTypeNotAllowedError: ['SECURELOGIN_PHONE_TYPE_NOT_ALLOWED', 400],
  ClientAddressInvalidError: ['SECURELOGIN_CLIENT_ADDRESS_INVALID', 400],
  UserMismatchError: ['SECURELOGIN_USER_MISMATCH', 400],
  PasswordDisabledError: ['SECURELOGIN_PASSWORD_DISABLED', 400],
  EmailInvalidError: ['SECURELOGIN_EMAIL_INVALID', 400],
  PasswordPolicyError: ['SECURELOGIN_PASSWORD_POLICY', 400],
  PasswordBreachedError: ['SECURELOGIN_PASSWORD_BREACHED', 400],
  CredentialsInvalidError: ['SECURELOGIN_CREDENTIALS_INVALID', 401],
  LoginLockedError: ['SECURELOGIN_LOGIN_LOCKED', 429],
  OtpInvalidError: ['SECURELOGIN_OTP_INVALID', 401],
  OtpExpiredError: ['SECURELOGIN_OTP_EXPIRED', 401],
  OtpAttemptsExceededError: ['SECURELOGIN_OTP_ATTEMPTS_EXCEEDED', 429],
  OtpResendTooSoonError: ['SECURELOGIN_OTP_RESEND_TOO_SOON', 429],
  RateLimitedError: ['SECURELOGIN_RATE_LIMITED', 429],
  PhoneLockedError: ['SECURELOGIN_PHONE_LOCKED', 429],
  SmsBudgetExhaustedError: ['SECURELOGIN_SMS_BUDGET_EXHAUSTED', 503],
  SendRefusedError: ['SECURELOGIN_SEND_REFUSED', 403],
  TokenMissingError: ['SECURELOGIN_TOKEN_MISSING', 401],
  TokenInvalidError: ['SECURELOGIN_TOKEN_INVALID', 401],
  TokenExpiredError: ['SECURELOGIN_TOKEN_EXPIRED', 401],
  SessionRevokedError: ['SECURELOGIN_SESSION_REVOKED', 401],
  SessionExpiredError: ['SECURELOGIN_SESSION_EXPIRED', 401],
  FreshTokenRequiredError: ['SECURELOGIN_FRESH_TOKEN_REQUIRED', 401],
  SessionMismatchError: ['SECURELOGIN_SESSION_MISMATCH', 403],
  RefreshSupersededError: ['SECURELOGIN_REFRESH_SUPERSEDED', 409],
  CookieOriginRefusedError: ['SECURELOGIN_COOKIE_ORIGIN_REFUSED', 403],
  AccountInactiveError: ['SECURELOGIN_ACCOUNT_INACTIVE', 403],
  PhoneTakenError: ['SECURELOGIN_PHONE_TAKEN', 409],
  PhoneUnchangedError: ['SECURELOGIN_PHONE_UNCHANGED', 400],
  SessionNotFoundError: ['SECURELOGIN_SESSION_NOT_FOUND', 404],
  EmailTakenError: ['SECURELOGIN_EMAIL_TAKEN', 409],
  PasswordIncorrectError: ['SECURELOGIN_PASSWORD_INCORRECT', 403],
  SmsSendFailedError: ['SECURELOGIN_SMS_SEND_FAILED', 502],
  SmsTimeoutError: ['SECURELOGIN_SMS_TIMEOUT', 504],
  UnavailableError: ['SECURELOGIN_UNAVAILABLE', 503],
  InternalError: ['SECURELOGIN_INTERNAL', 500],
}

/** The `| \`CODE\` | status |` rows of docs/errors.md. */
function documentedCodes (): Map<string, number> {
  const markdown = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const rows = new Map<string, number>()
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`((?:SECURELOGIN|FST)_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|(.*)\|(.*)\|\s*$/.exec(line)
    if (match === null) continue
    const [, code, status, when, what] = match as unknown as [string, string, string, string, string]
    if (rows.has(code)) throw new Error(`${code} is documented twice`)
    if (when.trim().length < 20 || what.trim().length < 10) throw new Error(`${code}: say when it happens and what a client should do`)
    rows.set(code, Number(status))
  }
  return rows
}

t.test('every error class has its code and status, and is an Error in the one shape', async (t) => {
  t.same(Object.keys(errors).sort(), Object.keys(expected).sort(), 'the errors table lists exactly the expected classes')
  const codes = new Set<string>()
  for (const [name, ErrorClass] of Object.entries(errors)) {
    const [code, status] = expected[name as keyof typeof errors]
    const error = new ErrorClass('field', 30)
    t.ok(error instanceof Error, `${name} is an Error`)
    t.ok(error instanceof ErrorClass, `${name} instanceof works`)
    t.equal(error.code, code, `${name}.code`)
    t.equal(error.statusCode, status, `${name}.statusCode`)
    t.ok(STATUS_CODES[status], `${status} is a real HTTP status`)
    t.notMatch(error.message, /%[sdj]/, `${name}: the message has no unfilled placeholder`)
    t.ok(error.message.length > 5, `${name} has a message`)
    t.notOk(codes.has(code), `${code} is used once`)
    codes.add(code)
  }
  t.match(new errors.OtpResendTooSoonError(17).message, /17 seconds/)
  t.match(new errors.RateLimitedError(42).message, /42 seconds/)
  t.equal(new errors.BadRequestError('body/phone must be string').message, 'body/phone must be string')
})

t.test('every error class the package exports is in the errors table', async (t) => {
  const tabled = new Set<unknown>(Object.values(errors))
  for (const [name, value] of Object.entries(lib)) {
    if (typeof value !== 'function' || !name.endsWith('Error')) continue
    let instance: unknown
    try {
      instance = new (value as new (...args: unknown[]) => unknown)('x', 1)
    } catch {
      continue
    }
    const code = (instance as { code?: unknown }).code
    if (typeof code === 'string' && code.startsWith('SECURELOGIN_')) t.ok(tabled.has(value), `${name} (${code}) is in errors`)
  }
})

t.test('docs/errors.md documents every code with its status, and nothing else', async (t) => {
  const documented = documentedCodes()
  for (const [name, [code, status]] of Object.entries(expected)) {
    t.equal(documented.get(code), status, `${code} (${name}) is documented with status ${status}`)
    t.equal(new errors[name as keyof typeof errors]('x', 1).statusCode, documented.get(code), `${code}: lib and docs agree`)
  }
  const ours = new Set<string>(Object.values(errors).map((ErrorClass) => new ErrorClass('x', 1).code))
  for (const code of documented.keys()) {
    if (code.startsWith('SECURELOGIN_')) t.ok(ours.has(code), `documented ${code} exists in lib/errors.ts`)
  }
  t.same(
    [...documented].filter(([code]) => code.startsWith('FST_')).sort(),
    [
      ['FST_ERR_CTP_BODY_TOO_LARGE', 413],
      ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400],
      ['FST_ERR_CTP_INVALID_JSON_BODY', 400],
      ['FST_ERR_CTP_INVALID_MEDIA_TYPE', 415],
    ],
    'the Fastify codes a client can meet are documented',
  )
})

for (const dialect of dialects) {
  t.test(`${dialect}: the documented Fastify codes really occur on our routes, with the documented status`, async (t) => {
    const documented = documentedCodes()
    const { app } = await buildApp(t, dialect)
    const json = { 'content-type': 'application/json' }
    const requests: Record<string, InjectOptions> = {
      FST_ERR_CTP_INVALID_JSON_BODY: { method: 'POST', url: '/api/auth/register', payload: '{"phone":', headers: json },
      FST_ERR_CTP_INVALID_CONTENT_LENGTH: { method: 'POST', url: '/api/auth/register', payload: '{"phone":"+14155550100"}', headers: { ...json, 'content-length': '3' } },
      FST_ERR_CTP_BODY_TOO_LARGE: { method: 'POST', url: '/api/auth/register', payload: JSON.stringify({ phone: 'x'.repeat(20_000) }), headers: json },
      FST_ERR_CTP_INVALID_MEDIA_TYPE: { method: 'POST', url: '/api/auth/register', payload: 'phone=%2B14155550100', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    }
    for (const [code, request] of Object.entries(requests)) {
      const res = await app.inject(request)
      t.same(res.json(), { statusCode: documented.get(code), code, error: STATUS_CODES[documented.get(code)!], message: res.json().message }, code)
    }
    const empty = await app.inject({ method: 'POST', url: '/api/auth/register', payload: '', headers: json })
    t.equal(empty.json().code, 'SECURELOGIN_BAD_REQUEST', 'an empty JSON body is read as {} and fails the schema, not FST_ERR_CTP_EMPTY_JSON_BODY')
    const validation = await post(app, '/register', { phone: 5 as unknown as string, auth_type: 'PHONE' })
    t.equal(validation.json().code, 'SECURELOGIN_BAD_REQUEST', 'schema errors are SECURELOGIN_BAD_REQUEST, not FST_ERR_VALIDATION')
  })

  t.test(`${dialect}: our codes reach clients with the documented status, error text and Retry-After`, async (t) => {
    const documented = documentedCodes()
    const test = await buildApp(t, dialect)
    const phone = testPhone()
    const tokens = await signIn(test, phone)
    const refreshed = (await post(test.app, '/refresh', undefined, tokens.refresh_token)).json()
    const answers = {
      SECURELOGIN_BAD_REQUEST: await post(test.app, '/register', {}),
      SECURELOGIN_PHONE_INVALID: await post(test.app, '/register', { phone: 'abc' }),
      SECURELOGIN_PHONE_TYPE_NOT_ALLOWED: await post(test.app, '/register', { phone: '+19005551234' }),
      SECURELOGIN_OTP_EXPIRED: await post(test.app, '/verify_sms', { phone, token: '123456' }),
      SECURELOGIN_OTP_RESEND_TOO_SOON: await post(test.app, '/login', { phone }),
      SECURELOGIN_TOKEN_MISSING: await post(test.app, '/refresh'),
      SECURELOGIN_TOKEN_INVALID: await post(test.app, '/refresh', undefined, tokens.access_token),
      SECURELOGIN_FRESH_TOKEN_REQUIRED: await post(test.app, '/logout_all_other_sessions', {}, refreshed.access_token),
      SECURELOGIN_REFRESH_SUPERSEDED: await post(test.app, '/refresh', undefined, tokens.refresh_token),
      SECURELOGIN_SESSION_REVOKED: await post(test.app, '/refresh', undefined, refreshed.refresh_token).then(() => post(test.app, '/refresh', undefined, tokens.refresh_token)),
    }
    for (const [code, res] of Object.entries(answers)) {
      const status = documented.get(code)!
      t.same(res.json(), { statusCode: status, code, error: STATUS_CODES[status], message: res.json().message }, code)
      t.equal(res.statusCode, status, `${code} status`)
    }
    t.match(answers.SECURELOGIN_OTP_RESEND_TOO_SOON.headers['retry-after'], /^\d+$/, 'a 429 carries Retry-After')
  })
}
