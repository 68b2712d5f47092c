import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LoginBody, LoginResponse } from '../../schemas/auth.js'
import { sendLoginCode } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { normalizePhone } from '../phone.js'
import { errorResponses } from './responses.js'

/** Sends a one-time code; `/login_sms` is the same route under the Flask library's other name. */
export const loginRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  for (const url of ['/login', '/login_sms']) {
    fastify.post(url, {
      schema: {
        tags: ['auth'],
        summary: 'Send a one-time code by SMS to the number',
        body: LoginBody,
        response: { 200: LoginResponse, ...errorResponses(400, 413, 415, 429, 502, 504) },
      },
    }, async (request) => {
      const phone = normalizePhone(request.body.phone, ctx.options.defaultCountry)
      const locale = request.headers['accept-language']?.split(',')[0]?.split(';')[0]?.trim() || undefined
      const { userid } = await sendLoginCode({ ...ctx, log: request.log }, { phone, ip: request.ip, locale })
      return { phone, userid }
    })
  }
}
