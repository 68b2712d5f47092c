import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RegisterBody, RegisterResponse } from '../../schemas/auth.js'
import { accountIdFor } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { normalizePhone } from '../phone.js'
import { errorResponses } from './responses.js'

/**
 * Creates the account of a number, or answers with the existing one: registering proves nothing
 * about the number, so it must neither block its owner nor reveal whether it was taken.
 */
export const registerRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/register', {
    schema: {
      tags: ['auth'],
      summary: 'Create an account for a phone number',
      body: RegisterBody,
      response: { 201: RegisterResponse, ...errorResponses(400, 413, 415) },
    },
  }, async (request, reply) => {
    const phone = normalizePhone(request.body.phone, ctx.options.defaultCountry)
    const user = await ctx.store.registerUser(accountIdFor(ctx.hashKey, phone), phone, request.body.username, new Date())
    return reply.code(201).send({ message: 'registered successfully', userid: user.id })
  })
}
