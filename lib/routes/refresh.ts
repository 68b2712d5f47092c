import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RefreshResponse } from '../../schemas/auth.js'
import type { SecureLoginRefreshUser } from '../authenticate.js'
import type { SecureLoginContext } from '../context.js'
import { rotateRefreshToken } from '../sessions.js'
import { errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/** Rotates the refresh token given as the Bearer token; the new access token is not fresh. */
export const refreshRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/refresh', {
    preHandler: ctx.hooks.authenticateRefresh,
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'refresh'),
      summary: 'Exchange a refresh token for a new access token and refresh token',
      description: 'Send the refresh token as the Bearer token, with no body (or `{}`). The refresh token sent stops working; using it again ends the session. The new access token is not fresh.',
      security: [{ refreshToken: [] }],
      response: {
        200: { ...refTo(RefreshResponse), description: 'The next token pair' },
        ...errorResponses({
          401: 'The Bearer token is missing (SECURELOGIN_TOKEN_MISSING), not a valid refresh token (SECURELOGIN_TOKEN_INVALID), expired (SECURELOGIN_TOKEN_EXPIRED), or of an ended session, or already used (SECURELOGIN_SESSION_REVOKED)',
          503: 'The list of ended sessions cannot be read from the database (SECURELOGIN_UNAVAILABLE)',
        }),
      },
    },
  }, async (request) => {
    const user = request.user as SecureLoginRefreshUser
    return rotateRefreshToken(ctx, { sub: user.userid, sid: user.sid, phone: user.phone, gen: user.generation })
  })
}
