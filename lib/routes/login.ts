import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { LoginBody, LoginResponse, VerifySmsCookieResponse, VerifySmsResponse } from '../../schemas/auth.js'
import { sendLoginCode } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { sendTokensAsCookies, usesCookies } from '../cookies.js'
import { signInWithPassword } from '../passwords/accounts.js'
import { normalizePhone } from '../phone.js'
import { refusePasswordWhileDisabled } from './password-disabled.js'
import { cookieOriginRefusal, errorResponses, operationIdFor, refTo, swaggerConfig, UNAVAILABLE } from './responses.js'

const LoginHeaders = Type.Object({
  'accept-language': Type.Optional(Type.String({ description: 'The language of the SMS, for providers that translate it (Twilio Verify); its first tag is used', examples: ['fr-CA'] })),
})

/**
 * Sends a one-time code, or (`auth_type: "PASSWORD"`) signs in with an email and password;
 * `/login_sms` is the same route under the Flask library's other name.
 */
export const loginRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  const awaitsVendor = ctx.options.smsDelivery === 'await'
  const SignedIn = cookies === undefined ? VerifySmsResponse : VerifySmsCookieResponse as unknown as typeof VerifySmsResponse
  for (const url of ['login', 'login_sms']) {
    fastify.post(`/${url}`, {
      config: swaggerConfig,
      preValidation: refusePasswordWhileDisabled(ctx),
      schema: {
        tags: ['auth'],
        operationId: operationIdFor(fastify.prefix, url),
        summary: url === 'login' ? 'Send a one-time code by SMS to the number' : 'Send a one-time code by SMS (the Flask library\'s name for login)',
        description: 'Opens a sign-in for the number (replacing any earlier code) and texts it a code. A number without an account gets the same answer, limits and cooldown, and no SMS, so the answer never tells whether the number is registered.' +
          ' With `auth_type: "PASSWORD"` (and `password.enabled`), signs in with an email and password instead and answers the tokens of a new session, as verify_sms does; a wrong password, an unknown email and an account without a password answer alike.' +
          (url === 'login' ? '' : ' Identical to login.'),
        headers: LoginHeaders,
        body: refTo(LoginBody),
        response: {
          // The serializer writes an answer with the first member it matches: the tokens first (see register.ts).
          200: { ...Type.Union([refTo(SignedIn), refTo(LoginResponse)]), description: 'The code is on its way (if the number has an account); or, for an email and password, signed in' },
          ...errorResponses({
            400: 'The body does not match the schema (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY) or the phone number is not a valid number (SECURELOGIN_PHONE_INVALID), or not one the server serves (SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED, SECURELOGIN_PHONE_TYPE_NOT_ALLOWED), or the client address is not an IP address (SECURELOGIN_CLIENT_ADDRESS_INVALID); for `auth_type: "PASSWORD"`, password accounts are off (SECURELOGIN_PASSWORD_DISABLED) or the email is not valid (SECURELOGIN_EMAIL_INVALID)',
            401: 'The email or password is incorrect, or the account has no password (SECURELOGIN_CREDENTIALS_INVALID)',
            403: [
              ctx.options.beforeSend === undefined ? undefined : 'The app\'s beforeSend check refused to send a code (SECURELOGIN_SEND_REFUSED)',
              'the password is right but the app has disabled the account (SECURELOGIN_ACCOUNT_INACTIVE)',
              cookieOriginRefusal(cookies),
            ].filter((text) => text !== undefined).join('; '),
          429: 'A code was sent to the number moments ago (SECURELOGIN_OTP_RESEND_TOO_SOON), too many codes were requested for the number, its neighbours or from the client address (SECURELOGIN_RATE_LIMITED), or the number is locked after too many wrong codes (SECURELOGIN_PHONE_LOCKED); for an email and password, too many sign-ins from the client address (SECURELOGIN_RATE_LIMITED) or too many wrong passwords for the email (SECURELOGIN_LOGIN_LOCKED, even for the right one); `Retry-After` says when to try again',
            503: `The app's SMS budget is spent (SECURELOGIN_SMS_BUDGET_EXHAUSTED), or ${UNAVAILABLE[0]!.toLowerCase()}${UNAVAILABLE.slice(1)}`,
            // With smsDelivery 'background' (the default) the vendor is called after the answer.
            502: awaitsVendor ? 'The SMS provider failed to send the code (SECURELOGIN_SMS_SEND_FAILED); the code is withdrawn and a new one may be requested at once' : undefined,
            504: awaitsVendor ? 'The SMS provider did not answer in time (SECURELOGIN_SMS_TIMEOUT); the code is withdrawn' : undefined,
          }),
        },
      },
    }, async (request, reply) => {
      const { body } = request
      if (body.auth_type === 'PASSWORD') {
        // Before the password is checked: a refused origin spends nothing.
        const inCookies = usesCookies(request, cookies)
        const { user, issued } = await signInWithPassword(ctx, { email: body.email, password: body.password, request })
        ctx.events.emit(request, { type: 'login', userid: user.id, sid: issued.sessionId, phone: user.phone, reason: 'password' })
        const answer = { userid: user.id, ...issued.tokens }
        return inCookies ? sendTokensAsCookies(reply, cookies, prefix, answer, issued.sessionExpiresAt) : answer
      }
      const phone = normalizePhone(body.phone, ctx.options.phonePolicy)
      const locale = preferredLocale(request.headers['accept-language'])
      const { userid } = await sendLoginCode({ ...ctx, log: request.log }, { phone, locale, request })
      return { phone, userid }
    })
  }
}

const LANGUAGE_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$/

/** The first tag of Accept-Language when it is a well-formed language tag; anything else is dropped, not forwarded to a vendor. */
function preferredLocale (header: string | undefined): string | undefined {
  const tag = header?.split(',')[0]?.split(';')[0]?.trim()
  return tag !== undefined && LANGUAGE_TAG.test(tag) ? tag : undefined
}
