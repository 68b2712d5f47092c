import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RegisterBody, RegisterResponse } from '../../schemas/auth.js'
import { registerAccount } from '../accounts.js'
import type { SecureLoginContext } from '../context.js'
import { clientAddress } from '../client-ip.js'
import { normalizePhone } from '../phone.js'
import { enforceClientLimit } from '../rate-limit.js'
import { normalizeUsername } from '../username.js'
import { errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/**
 * Creates the account of a number, or answers with the existing one: registering proves nothing
 * about the number, so it must neither block its owner nor reveal whether it was taken, nor name
 * an account someone else registered (see `registerUser`).
 */
export const registerRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/register', {
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'register'),
      summary: 'Create an account for a phone number',
      description: 'Creates the account of the number, or answers with the existing one: the answer never tells whether the number was already registered. Registering proves nothing about the number; the first verify_sms does.',
      body: refTo(RegisterBody),
      response: {
        201: { ...refTo(RegisterResponse), description: 'The account of the number' },
        ...errorResponses({
          400: 'The body does not match the schema, or the username is blank or holds control, invisible or direction-changing characters (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY), the client address is not an IP address (SECURELOGIN_CLIENT_ADDRESS_INVALID), or the phone number is not a valid number (SECURELOGIN_PHONE_INVALID), or not one the server serves (SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED, SECURELOGIN_PHONE_TYPE_NOT_ALLOWED)',
          429: 'Too many registrations from this client (SECURELOGIN_RATE_LIMITED); see Retry-After',
        }),
      },
    },
  }, async (request, reply) => {
    const address = clientAddress(request)
    const phone = normalizePhone(request.body.phone, ctx.options.phonePolicy)
    // With signUp 'on-verify' the owner need never call /register, so a name given here could be
    // anyone's: it is checked, and not kept.
    const username = request.body.username === undefined || ctx.options.signUp === 'on-verify' ? undefined : normalizeUsername(request.body.username)
    const now = new Date()
    await enforceClientLimit(ctx.store, 'register', address, ctx.options.rateLimit.registersPerIp, now)
    const user = await registerAccount(ctx, phone, username, now)
    return reply.code(201).send({ message: 'registered successfully', userid: user.id })
  })
}
