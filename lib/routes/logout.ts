import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LogoutAllOtherSessionsResponse, LogoutBody, LogoutResponse } from '../../schemas/auth.js'
import type { SecureLoginContext } from '../context.js'
import { clearTokenCookies, usesCookies } from '../cookies.js'
import { endOtherSessions, endSession } from '../sessions.js'
import { ACCESS_TOKEN_REFUSED, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

export const logoutRoutes: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  fastify.post('/logout', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'logout'),
      summary: 'End the session of the refresh token (or of the access token when none is given)',
      description: 'Ends a session of the caller: its access and refresh tokens stop working on every instance within the revocation delay.',
      security: [{ accessToken: [] }],
      body: refTo(LogoutBody),
      response: {
        200: { ...refTo(LogoutResponse), description: 'The session has ended' },
        ...errorResponses({
          401: `${ACCESS_TOKEN_REFUSED}; the same for \`refresh_token\``,
          403: `\`refresh_token\` belongs to another user (SECURELOGIN_SESSION_MISMATCH)${cookies === undefined ? '' : ', or the request asked for the cookie transport from an origin that may not use it (SECURELOGIN_COOKIE_ORIGIN_REFUSED)'}`,
        }),
      },
    },
  }, async (request, reply) => {
    const inCookies = usesCookies(request, cookies)
    await endSession(ctx, request.user, request.body.refresh_token)
    ctx.events.emit(request, { type: 'logout', userid: request.user.userid, sid: request.user.sid, phone: request.user.phone, reason: 'logout' })
    if (inCookies) clearTokenCookies(reply, cookies, prefix)
    return { message: 'logout successful' as const }
  })

  fastify.post('/logout_all_other_sessions', {
    preHandler: ctx.hooks.authenticateFresh,
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'logout_all_other_sessions'),
      summary: 'End every other session of the user; needs a fresh access token',
      description: 'Ends every session of the caller except the current one. The access token must come from verify_sms, not from refresh.',
      security: [{ accessToken: [] }],
      body: refTo(LogoutBody),
      response: {
        200: { ...refTo(LogoutAllOtherSessionsResponse), description: 'The other sessions have ended' },
        ...errorResponses({
          401: `${ACCESS_TOKEN_REFUSED}; the same for \`refresh_token\`; or the access token came from refresh (SECURELOGIN_FRESH_TOKEN_REQUIRED)`,
          403: '`refresh_token` is not the current session\'s (SECURELOGIN_SESSION_MISMATCH)',
        }),
      },
    },
  }, async (request) => {
    await endOtherSessions(ctx, request.user, request.body.refresh_token)
    ctx.events.emit(request, { type: 'logout', userid: request.user.userid, sid: request.user.sid, phone: request.user.phone, reason: 'logout_all_other_sessions' })
    return { message: 'logout all other sessions successful' as const }
  })
}
