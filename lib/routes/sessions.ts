import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { SessionEndedResponse, SessionList, SessionParams } from '../../schemas/account.js'
import { sessionView } from '../account-view.js'
import type { SecureLoginContext } from '../context.js'
import { clearTokenCookies, usesCookies } from '../cookies.js'
import { SessionNotFoundError } from '../errors.js'
import { ACCESS_TOKEN_REFUSED, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'

/** The most sessions the list answers: a user has a handful; more is a script, and the newest are what matter. */
export const SESSION_LIST_LIMIT = 100


/** The caller's sessions (signed-in devices): see them, end one. */
export const sessionRoutes: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  const common = { tags: ['account'], security: [{ accessToken: [] }] }

  fastify.get('/sessions', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'sessions list'),
      summary: 'The caller\'s live sessions, newest first',
      description: `Every session of the caller that has not ended, expired or gone unused for \`sessions.idleTimeout\`, with the device of its last sign-in or refresh; \`current\` marks the one of this request. At most ${SESSION_LIST_LIMIT}.`,
      response: { 200: { ...refTo(SessionList), description: 'The sessions' }, ...errorResponses({ 401: ACCESS_TOKEN_REFUSED }) },
    },
  }, async (request) => {
    const now = Date.now()
    const live = await ctx.store.liveSessionsOf(request.user.userid, new Date(now), new Date(now - ctx.options.sessions.idleTimeoutMs), SESSION_LIST_LIMIT)
    return { sessions: live.map((session) => sessionView(session, request.user.sid)) }
  })

  fastify.delete('/sessions/:sid', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'sessions delete'),
      summary: 'End one of the caller\'s sessions',
      description: 'Ends the session as a logout would: its access and refresh tokens stop working on every instance within the revocation delay. Ending the current session signs this client out.',
      params: SessionParams,
      response: {
        200: { ...refTo(SessionEndedResponse), description: 'The session has ended' },
        ...errorResponses({
          400: 'The session id is not a UUID (SECURELOGIN_BAD_REQUEST)',
          401: ACCESS_TOKEN_REFUSED,
          404: 'The caller has no live session of this id: ended already, or another user\'s (SECURELOGIN_SESSION_NOT_FOUND)',
        }),
      },
    },
  }, async (request, reply) => {
    const inCookies = usesCookies(request, cookies)
    // Session ids are stored lower-case, and the revocation list compares them as strings.
    const sid = request.params.sid.toLowerCase()
    // Another user's session answers as an unknown one: ids are not probed for.
    if (!await ctx.store.revokeSession(sid, request.user.userid, 'ended_by_user', new Date())) throw new SessionNotFoundError()
    ctx.revocations.add(sid)
    ctx.events.emit(request, { type: 'logout', userid: request.user.userid, sid, phone: request.user.phone, reason: 'ended_by_user' })
    if (inCookies && sid === request.user.sid) clearTokenCookies(reply, cookies, prefix)
    return { message: 'session ended' as const }
  })
}
