import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PhoneChangeBody, PhoneChangeResponse, PhoneVerifyBody, PhoneVerifyCookieResponse, PhoneVerifyResponse } from '../../schemas/account.js'
import { sendPhoneChangeCode, verifyPhoneChangeCode } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { sendTokensAsCookies, usesCookies } from '../cookies.js'
import { PhoneUnchangedError } from '../errors.js'
import { normalizePhone } from '../phone.js'
import { changePhoneAndSignIn } from '../sessions.js'
import { ACCESS_TOKEN_REFUSED, cookieOriginRefusal, errorResponses, operationIdFor, refTo, swaggerConfig, UNAVAILABLE } from './responses.js'

const PHONE_REFUSED = 'the phone number is not a valid number (SECURELOGIN_PHONE_INVALID), or not one the server serves (SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED, SECURELOGIN_PHONE_TYPE_NOT_ALLOWED), or the client address is not an IP address (SECURELOGIN_CLIENT_ADDRESS_INVALID)'

/** Moving the caller's account to another number: a code to the new number, then the code back. */
export const phoneRoutes: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  const common = { tags: ['account'], security: [{ accessToken: [] }] }

  fastify.post('/phone', {
    preHandler: ctx.hooks.authenticateFresh,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'phone'),
      summary: 'Send a code to the number the account should move to; needs a fresh access token',
      description: 'Texts a code to the new number, under every limit login has. The code works only for this account, at phone/verify. A number that has a proven account gets no message, and the answer does not say so (as login does not tell who has an account): no code can move the account there. An account that never proved its number does not hold it.',
      body: refTo(PhoneChangeBody),
      response: {
        200: { ...refTo(PhoneChangeResponse), description: 'The code is on its way' },
        ...errorResponses({
          400: `The body does not match the schema (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY), the number is already the account's (SECURELOGIN_PHONE_UNCHANGED), or ${PHONE_REFUSED}`,
          401: `${ACCESS_TOKEN_REFUSED}; or the access token came from refresh (SECURELOGIN_FRESH_TOKEN_REQUIRED)`,
          403: ctx.options.beforeSend === undefined ? undefined : 'The app\'s beforeSend check refused to send a code (SECURELOGIN_SEND_REFUSED)',
          429: 'A code was sent to the number moments ago (SECURELOGIN_OTP_RESEND_TOO_SOON), too many codes were requested for it or from the client address (SECURELOGIN_RATE_LIMITED), or it is locked after too many wrong codes (SECURELOGIN_PHONE_LOCKED); `Retry-After` says when to try again',
          503: `The app's SMS budget is spent (SECURELOGIN_SMS_BUDGET_EXHAUSTED), or ${UNAVAILABLE[0]!.toLowerCase()}${UNAVAILABLE.slice(1)}`,
          502: ctx.options.smsDelivery === 'await' ? 'The SMS provider failed to send the code (SECURELOGIN_SMS_SEND_FAILED)' : undefined,
          504: ctx.options.smsDelivery === 'await' ? 'The SMS provider did not answer in time (SECURELOGIN_SMS_TIMEOUT)' : undefined,
        }),
      },
    },
  }, async (request) => {
    const phone = normalizePhone(request.body.phone, ctx.options.phonePolicy)
    if (phone === request.user.phone) throw new PhoneUnchangedError()
    await sendPhoneChangeCode({ ...ctx, log: request.log }, { phone, request, userId: request.user.userid })
    return { phone }
  })

  fastify.post('/phone/verify', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'phone verify'),
      summary: 'Move the account to the new number with the code it received',
      description: 'Checks the code sent by phone (every call spends one of its attempts, as at verify_sms), then moves the account to the number at once: every session of the account ends, this one included, and the answer carries the tokens of a new session (a fresh access token). Whoever gets the old number next gets a new user id.',
      body: refTo(PhoneVerifyBody),
      response: {
        200: { ...refTo(cookies === undefined ? PhoneVerifyResponse : PhoneVerifyCookieResponse as unknown as typeof PhoneVerifyResponse), description: 'The account has the new number' },
        ...errorResponses({
          400: `The body does not match the schema (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY), or ${PHONE_REFUSED}`,
          401: `${ACCESS_TOKEN_REFUSED}; the code is wrong (SECURELOGIN_OTP_INVALID, with \`attempts_left\`) or there is no valid code of this account for the number (SECURELOGIN_OTP_EXPIRED)`,
          403: `The account is disabled (SECURELOGIN_ACCOUNT_INACTIVE)${cookies === undefined ? '' : `, or ${cookieOriginRefusal(cookies)?.[0]?.toLowerCase()}${cookieOriginRefusal(cookies)?.slice(1)}`}`,
          409: 'The number got a proven account meanwhile (SECURELOGIN_PHONE_TAKEN)',
          429: 'Too many wrong codes (SECURELOGIN_OTP_ATTEMPTS_EXCEEDED, SECURELOGIN_PHONE_LOCKED) or checks from the client address (SECURELOGIN_RATE_LIMITED)',
          502: 'A verifying SMS provider (Twilio Verify) failed to check the code (SECURELOGIN_SMS_SEND_FAILED)',
          504: 'A verifying SMS provider did not answer in time (SECURELOGIN_SMS_TIMEOUT)',
        }),
      },
    },
  }, async (request, reply) => {
    // Before the code is spent: a refused origin changes nothing.
    const inCookies = usesCookies(request, cookies)
    const phone = normalizePhone(request.body.phone, ctx.options.phonePolicy)
    const { userid } = request.user
    const challengeId = await verifyPhoneChangeCode({ ...ctx, log: request.log }, { phone, code: request.body.token, request, userId: userid })
    const { tokens, sessionExpiresAt } = await changePhoneAndSignIn(ctx, { userId: userid, sid: request.user.sid, newPhone: phone, challengeId }, request)
    ctx.events.emit(request, { type: 'phone.changed', userid, sid: request.user.sid, phone })
    const body = { userid, phone, ...tokens }
    return inCookies ? sendTokensAsCookies(reply, cookies, prefix, body, sessionExpiresAt) : body
  })
}
