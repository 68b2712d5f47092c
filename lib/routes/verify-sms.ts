import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { VerifySmsBody, VerifySmsCookieResponse, VerifySmsResponse } from '../../schemas/auth.js'
import { verifyLoginCode } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { sendTokensAsCookies, usesCookies } from '../cookies.js'
import { normalizePhone } from '../phone.js'
import { issueSessionTokens, openSignInSession } from '../sessions.js'
import { cookieOriginRefusal, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/** Checks the code and opens a session with a fresh access token and a refresh token. */
export const verifySmsRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  fastify.post('/verify_sms', {
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'verify_sms'),
      summary: 'Exchange the code for an access token and a refresh token',
      description: 'Checks the code sent by login and uses it up; every call spends one of the code\'s attempts. Opens a session: the access token is fresh (accepted by routes that need a recent sign-in).',
      body: refTo(VerifySmsBody),
      response: {
        200: { ...refTo(cookies === undefined ? VerifySmsResponse : VerifySmsCookieResponse as unknown as typeof VerifySmsResponse), description: 'Signed in' },
        ...errorResponses({
          403: `The code is right, but the app has disabled the account (SECURELOGIN_ACCOUNT_INACTIVE)${cookies === undefined ? '' : `; or ${cookieOriginRefusal(cookies)}`}`,
          400: 'The body does not match the schema (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY), the phone number is not a valid number (SECURELOGIN_PHONE_INVALID), or not one the server serves (SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED, SECURELOGIN_PHONE_TYPE_NOT_ALLOWED), or the client address is not an IP address (SECURELOGIN_CLIENT_ADDRESS_INVALID)',
          401: 'The code is wrong, or `userid` is not the number\'s (SECURELOGIN_OTP_INVALID, with `attempts_left`), or there is no valid code for the number: expired, used, or never sent (SECURELOGIN_OTP_EXPIRED)',
          429: 'Too many wrong codes: request a new one (SECURELOGIN_OTP_ATTEMPTS_EXCEEDED), too many checks from the client address (SECURELOGIN_RATE_LIMITED), or too many wrong codes for the number across codes (SECURELOGIN_PHONE_LOCKED, even for the right code); `Retry-After` with the last two',
          502: 'A verifying SMS provider (Twilio Verify) failed to check the code (SECURELOGIN_SMS_SEND_FAILED)',
          504: 'A verifying SMS provider did not answer in time (SECURELOGIN_SMS_TIMEOUT)',
        }),
      },
    },
  }, async (request, reply) => {
    // Before the code is spent: a refused origin changes nothing.
    const inCookies = usesCookies(request, cookies)
    const phone = normalizePhone(request.body.phone, ctx.options.phonePolicy)
    const { approved, opened } = await verifyLoginCode({ ...ctx, log: request.log }, { phone, code: request.body.token, userid: request.body.userid, request }, async (code) => openSignInSession(ctx, code, request))
    const { user } = approved
    // Signed after the check: on better-sqlite3 outside its unit of work (an RSA signature takes milliseconds).
    const { tokens, sessionId, sessionExpiresAt } = await issueSessionTokens(ctx, approved, request, opened)
    ctx.events.emit(request, { type: 'login', userid: user.id, sid: sessionId, phone })
    const body = { userid: user.id, ...tokens }
    return inCookies ? sendTokensAsCookies(reply, cookies, prefix, body, sessionExpiresAt) : body
  })
}
