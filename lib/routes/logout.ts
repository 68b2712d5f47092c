import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LogoutAllOtherSessionsResponse, LogoutBody, LogoutResponse } from '../../schemas/auth.js'
import type { SecureLoginContext } from '../context.js'
import { endOtherSessions, endSession } from '../sessions.js'
import { errorResponses } from './responses.js'

export const logoutRoutes: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  fastify.post('/logout', {
    preHandler: ctx.hooks.authenticate,
    schema: {
      tags: ['auth'],
      summary: 'End the session of the refresh token (or of the access token when none is given)',
      security: [{ accessToken: [] }],
      body: LogoutBody,
      response: { 200: LogoutResponse, ...errorResponses(400, 401, 403, 413, 415) },
    },
  }, async (request) => {
    await endSession(ctx, request.user, request.body.refresh_token)
    return { message: 'logout successful' as const }
  })

  fastify.post('/logout_all_other_sessions', {
    preHandler: ctx.hooks.authenticateFresh,
    schema: {
      tags: ['auth'],
      summary: 'End every other session of the user; needs a fresh access token',
      security: [{ accessToken: [] }],
      body: LogoutBody,
      response: { 200: LogoutAllOtherSessionsResponse, ...errorResponses(400, 401, 403, 413, 415) },
    },
  }, async (request) => {
    await endOtherSessions(ctx, request.user, request.body.refresh_token)
    return { message: 'logout all other sessions successful' as const }
  })
}
