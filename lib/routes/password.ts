import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PasswordChangeBody, PasswordChangeResponse } from '../../schemas/auth.js'
import type { SecureLoginContext } from '../context.js'
import { PasswordDisabledError } from '../errors.js'
import { changePassword } from '../passwords/accounts.js'
import { ACCESS_TOKEN_REFUSED, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/** Changes the caller's password, or adds a first one to a phone account (the Flask library's /password). */
export const passwordRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/password', {
    preHandler: ctx.hooks.authenticateFresh,
    config: swaggerConfig,
    schema: {
      tags: ['account'],
      security: [{ accessToken: [] }],
      operationId: operationIdFor(fastify.prefix, 'password'),
      summary: 'Change the caller\'s password, or add one; needs a fresh access token',
      description: 'With `password.enabled`. An account that signs in with its password only sends the current one (`oldpassword`) and the new one; a wrong `oldpassword` counts against the email\'s budget of wrong passwords, as at login. An account with a number may leave `oldpassword` out (its fresh access token already controls the account): that is how its owner, signed in by SMS, replaces a password set by someone else. An account without a password adds one the same way. `email` sets the email the account signs in with: required when it has none, and then counted like a registration. Every other session of the account ends; the caller\'s goes on.',
      body: refTo(PasswordChangeBody),
      response: {
        200: { ...refTo(PasswordChangeResponse), description: 'The password is changed; every other session has ended' },
        ...errorResponses({
          400: 'The body does not match the schema, `oldpassword` is missing for an account that signs in with its password only (or given for one without a password), or `email` is missing for an account without one (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY); password accounts are off (SECURELOGIN_PASSWORD_DISABLED); the email is not valid (SECURELOGIN_EMAIL_INVALID); the new password is not 8 to 128 characters (SECURELOGIN_PASSWORD_POLICY) or is known from breaches (SECURELOGIN_PASSWORD_BREACHED)',
          401: `${ACCESS_TOKEN_REFUSED}; or the access token came from refresh (SECURELOGIN_FRESH_TOKEN_REQUIRED)`,
          403: '`oldpassword` is not the current password, or the password changed meanwhile (SECURELOGIN_PASSWORD_INCORRECT); or the account is disabled (SECURELOGIN_ACCOUNT_INACTIVE)',
          409: 'The email given has another account (SECURELOGIN_EMAIL_TAKEN)',
          429: 'Too many wrong passwords for the account\'s email (SECURELOGIN_LOGIN_LOCKED), or too many emails asked for from the client address (SECURELOGIN_RATE_LIMITED); see Retry-After',
        }),
      },
    },
  }, async (request) => {
    if (!ctx.options.password.enabled) throw new PasswordDisabledError()
    const { userid, sid } = request.user
    const { oldpassword, newpassword, email } = request.body
    await changePassword(ctx, { userId: userid, sid, oldPassword: oldpassword, newPassword: newpassword, email, request })
    ctx.events.emit(request, { type: 'password.changed', userid, sid, phone: request.user.phone })
    return { message: 'changed password successfully' as const }
  })
}
