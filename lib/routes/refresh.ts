import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RefreshResponse } from '../../schemas/auth.js'
import type { SecureLoginRefreshUser } from '../authenticate.js'
import type { SecureLoginContext } from '../context.js'
import { rotateRefreshToken } from '../sessions.js'
import { errorResponses } from './responses.js'

/** Rotates the refresh token given as the Bearer token; the new access token is not fresh. */
export const refreshRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/refresh', {
    preHandler: ctx.hooks.authenticateRefresh,
    schema: {
      tags: ['auth'],
      summary: 'Exchange a refresh token for a new access token and refresh token',
      security: [{ refreshToken: [] }],
      response: { 200: RefreshResponse, ...errorResponses(400, 401, 413, 415) },
    },
  }, async (request) => {
    const user = request.user as SecureLoginRefreshUser
    return rotateRefreshToken(ctx, { sub: user.userid, sid: user.sid, phone: user.phone, gen: user.generation })
  })
}
