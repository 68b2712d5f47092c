import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { PasswordRegisterCookieResponse, PasswordRegisterResponse, RegisterBody, RegisterResponse } from '../../schemas/auth.js'
import { registerAccount } from '../accounts.js'
import type { SecureLoginContext } from '../context.js'
import { clientAddress } from '../client-ip.js'
import { sendTokensAsCookies, usesCookies } from '../cookies.js'
import { registerWithPassword } from '../passwords/accounts.js'
import { normalizePhone } from '../phone.js'
import { clientLimitHits } from '../rate-limit.js'
import { normalizeUsername } from '../username.js'
import { refusePasswordWhileDisabled } from './password-disabled.js'
import { cookieOriginRefusal, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/**
 * Creates the account of a number, or answers with the existing one: registering proves nothing
 * about the number, so it must neither block its owner nor reveal whether it was taken, nor name
 * an account someone else registered (see `registerUser`). With `auth_type: "PASSWORD"`, creates
 * an email-and-password account and signs it in.
 */
export const registerRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  const PasswordAnswer = cookies === undefined ? PasswordRegisterResponse : PasswordRegisterCookieResponse as unknown as typeof PasswordRegisterResponse
  fastify.post('/register', {
    config: swaggerConfig,
    preValidation: refusePasswordWhileDisabled(ctx),
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'register'),
      summary: 'Create an account for a phone number, or an email-and-password account',
      description: 'A phone account: creates the account of the number, or answers with the existing one; the answer never tells whether the number was already registered. Registering proves nothing about the number; the first verify_sms does. ' +
        'An email-and-password account (`auth_type: "PASSWORD"`, with `password.enabled`): created and signed in at once (a fresh session); an email that has an account is refused (409).',
      body: refTo(RegisterBody),
      response: {
        // The serializer writes an answer with the first member it matches: the one with tokens
        // first, since a phone answer lacks its required fields but it has every one of the other's.
        201: { ...Type.Union([refTo(PasswordAnswer), refTo(RegisterResponse)]), description: 'The account of the number; or the new email-and-password account with its tokens' },
        ...errorResponses({
          400: 'The body does not match the schema, or the username is blank or holds control, invisible or direction-changing characters (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY), the client address is not an IP address (SECURELOGIN_CLIENT_ADDRESS_INVALID), or the phone number is not a valid number (SECURELOGIN_PHONE_INVALID), or not one the server serves (SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED, SECURELOGIN_PHONE_TYPE_NOT_ALLOWED); ' +
            'for `auth_type: "PASSWORD"`: password accounts are off (SECURELOGIN_PASSWORD_DISABLED), the email is not valid (SECURELOGIN_EMAIL_INVALID), or the password is not 8 to 128 characters (SECURELOGIN_PASSWORD_POLICY) or is known from breaches (SECURELOGIN_PASSWORD_BREACHED)',
          403: cookieOriginRefusal(cookies),
          409: 'The email has an account already (SECURELOGIN_EMAIL_TAKEN)',
          429: 'Too many registrations from this client (SECURELOGIN_RATE_LIMITED); see Retry-After',
        }),
      },
    },
  }, async (request, reply) => {
    const { body } = request
    if (body.auth_type === 'PASSWORD') {
      // Before anything is created: a refused origin changes nothing.
      const inCookies = usesCookies(request, cookies)
      const username = body.username === undefined ? undefined : normalizeUsername(body.username)
      const { user, issued } = await registerWithPassword(ctx, { email: body.email, password: body.password, username, request })
      ctx.events.emit(request, { type: 'login', userid: user.id, sid: issued.sessionId, reason: 'password' })
      const answer = { message: 'registered successfully' as const, userid: user.id, ...issued.tokens }
      reply.code(201)
      return inCookies ? sendTokensAsCookies(reply, cookies, prefix, answer, issued.sessionExpiresAt) : answer
    }
    const address = clientAddress(request)
    const phone = normalizePhone(body.phone, ctx.options.phonePolicy)
    // With signUp 'on-verify' the owner need never call /register, so a name given here could be
    // anyone's: it is checked, and not kept.
    const username = body.username === undefined || ctx.options.signUp === 'on-verify' ? undefined : normalizeUsername(body.username)
    const now = new Date()
    const clientHits = clientLimitHits('register', address, ctx.options.rateLimit.registersPerIp, now)
    // Counted and registered with the writes committed together (both only await the store).
    const user = await ctx.store.unitOfWork(async () => registerAccount(ctx, phone, username, now, clientHits))
    return reply.code(201).send({ message: 'registered successfully', userid: user.id })
  })
}
