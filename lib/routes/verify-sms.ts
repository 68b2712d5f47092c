import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { VerifySmsBody, VerifySmsResponse } from '../../schemas/auth.js'
import { verifyLoginCode } from '../challenges.js'
import type { SecureLoginContext } from '../context.js'
import { normalizePhone } from '../phone.js'
import { issueSessionTokens } from '../sessions.js'
import { errorResponses } from './responses.js'

/** Checks the code and opens a session with a fresh access token and a refresh token. */
export const verifySmsRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/verify_sms', {
    schema: {
      tags: ['auth'],
      summary: 'Exchange the code for an access token and a refresh token',
      body: VerifySmsBody,
      response: { 200: VerifySmsResponse, ...errorResponses(400, 401, 413, 415, 429, 502, 504) },
    },
  }, async (request) => {
    const phone = normalizePhone(request.body.phone, ctx.options.defaultCountry)
    const user = await verifyLoginCode({ ...ctx, log: request.log }, { phone, code: request.body.token, userid: request.body.userid, ip: request.ip })
    const tokens = await issueSessionTokens(ctx, user)
    return { userid: user.id, ...tokens }
  })
}
