import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RegisterBody, RegisterResponse } from '../../schemas/auth.js'
import { accountIdFor } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { normalizePhone } from '../phone.js'
import { clientKey, enforceRateLimit } from '../rate-limit.js'
import { errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/**
 * Creates the account of a number, or answers with the existing one: registering proves nothing
 * about the number, so it must neither block its owner nor reveal whether it was taken.
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
          400: 'The body does not match the schema (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY) or the phone number is not a valid number (SECURELOGIN_PHONE_INVALID)',
          429: 'Too many registrations from this client (SECURELOGIN_RATE_LIMITED); see Retry-After',
        }),
      },
    },
  }, async (request, reply) => {
    const phone = normalizePhone(request.body.phone, ctx.options.defaultCountry)
    const now = new Date()
    await enforceRateLimit(ctx.store, `register:ip:${clientKey(request.ip)}`, ctx.options.rateLimit.registersPerIp, now)
    const user = await ctx.store.registerUser(accountIdFor(ctx.hashKey, phone), phone, request.body.username, now)
    return reply.code(201).send({ message: 'registered successfully', userid: user.id })
  })
}
