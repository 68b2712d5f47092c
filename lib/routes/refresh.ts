import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RefreshCookieResponse, RefreshResponse } from '../../schemas/auth.js'
import type { SecureLoginRefreshUser } from '../authenticate.js'
import type { SecureLoginContext } from '../context.js'
import { sendTokensAsCookies, usesCookies } from '../cookies.js'
import { rotateRefreshToken } from '../sessions.js'
import { cookieOriginRefusal, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/** Rotates the refresh token given as the Bearer token; the new access token is not fresh. */
export const refreshRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  fastify.post('/refresh', {
    preHandler: ctx.hooks.refreshTokenClaims,
    config: swaggerConfig,
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'refresh'),
      summary: 'Exchange a refresh token for a new access token and refresh token',
      description: 'Send the refresh token as the Bearer token (or, on a server with cookies enabled, send `X-SecureLogin-Transport: cookie` and the refresh cookie), with no body (or `{}`). The refresh token sent stops working: sent again within `sessions.reuseGrace` (10 s) of its exchange it is answered 409 (use the newer token), later it ends the session. The new access token is not fresh.',
      security: [{ refreshToken: [] }],
      response: {
        200: { ...refTo(cookies === undefined ? RefreshResponse : RefreshCookieResponse as unknown as typeof RefreshResponse), description: 'The next token pair' },
        ...errorResponses({
          401: 'The Bearer token is missing (SECURELOGIN_TOKEN_MISSING), not a valid refresh token (SECURELOGIN_TOKEN_INVALID), expired (SECURELOGIN_TOKEN_EXPIRED), of an ended session or reused after its exchange, which ends the session (SECURELOGIN_SESSION_REVOKED), or of a session unused for `sessions.idleTimeout` (SECURELOGIN_SESSION_EXPIRED)',
          403: cookieOriginRefusal(cookies),
          409: 'The refresh token was exchanged moments ago by another request of the same client (two tabs racing): use the newer refresh token (SECURELOGIN_REFRESH_SUPERSEDED); the session goes on',
        }),
      },
    },
  }, async (request, reply) => {
    // Before the rotation: a refused origin must not spend the refresh token.
    const inCookies = usesCookies(request, cookies)
    const user = request.user as SecureLoginRefreshUser
    const { tokens, sessionExpiresAt } = await rotateRefreshToken(ctx, { sub: user.userid, sid: user.sid, phone: user.phone, gen: user.generation }, request)
    ctx.events.emit(request, { type: 'refresh', userid: user.userid, sid: user.sid, phone: user.phone })
    return inCookies ? sendTokensAsCookies(reply, cookies, prefix, tokens, sessionExpiresAt) : tokens
  })
}
