import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Account, AccountDeletedResponse, AccountPatchBody } from '../../schemas/account.js'
import { deleteAccount } from '../accounts.js'
import { accountView } from '../account-view.js'
import type { SecureLoginContext } from '../context.js'
import { clearTokenCookies, usesCookies } from '../cookies.js'
import { SessionRevokedError } from '../errors.js'
import { normalizeUsername } from '../username.js'
import { ACCESS_TOKEN_REFUSED, errorResponses, operationIdFor, refTo, swaggerConfig } from './responses.js'


/** The caller's own account: read it, rename it, delete it. */
export const accountRoutes: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const { cookies, prefix } = ctx.options
  const common = { tags: ['account'], security: [{ accessToken: [] }] }

  fastify.get('/me', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'me get'),
      summary: 'The caller\'s account',
      response: { 200: { ...refTo(Account), description: 'The account' }, ...errorResponses({ 401: ACCESS_TOKEN_REFUSED }) },
    },
  }, async (request) => {
    const user = await ctx.store.findUserById(request.user.userid)
    // Deleted a moment ago, on an instance whose list of ended sessions has not caught up yet.
    if (user === undefined) throw new SessionRevokedError()
    return accountView(user)
  })

  fastify.patch('/me', {
    preHandler: ctx.hooks.authenticate,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'me patch'),
      summary: 'Rename the caller\'s account',
      body: refTo(AccountPatchBody),
      response: {
        200: { ...refTo(Account), description: 'The account as changed' },
        ...errorResponses({
          400: 'The body does not match the schema, or the username is blank or holds control, invisible or direction-changing characters (SECURELOGIN_BAD_REQUEST, FST_ERR_CTP_INVALID_JSON_BODY)',
          401: ACCESS_TOKEN_REFUSED,
        }),
      },
    },
  }, async (request) => {
    const username = request.body.username === null ? null : normalizeUsername(request.body.username)
    const user = await ctx.store.setUsername(request.user.userid, username)
    if (user === undefined) throw new SessionRevokedError()
    return accountView(user)
  })

  fastify.delete('/me', {
    preHandler: ctx.hooks.authenticateFresh,
    config: swaggerConfig,
    schema: {
      ...common,
      operationId: operationIdFor(fastify.prefix, 'me delete'),
      summary: 'Delete the caller\'s account; needs a fresh access token',
      description: 'Deletes the account at once: its number, name and email are erased, every session ends (its tokens stop working on every instance within the revocation delay) and its open code is withdrawn. The number can register again, and then gets a new user id. The access token must come from verify_sms, not from refresh.',
      response: {
        200: { ...refTo(AccountDeletedResponse), description: 'The account is deleted' },
        ...errorResponses({ 401: `${ACCESS_TOKEN_REFUSED}; or the access token came from refresh (SECURELOGIN_FRESH_TOKEN_REQUIRED)` }),
      },
    },
  }, async (request, reply) => {
    const inCookies = usesCookies(request, cookies)
    if (!await deleteAccount(ctx, request.user.userid)) throw new SessionRevokedError()
    ctx.events.emit(request, { type: 'account.deleted', userid: request.user.userid, sid: request.user.sid, phone: request.user.phone })
    if (inCookies) clearTokenCookies(reply, cookies, prefix)
    return { message: 'account deleted' as const }
  })
}
