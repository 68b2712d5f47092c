import type { Account } from '../schemas/account.js'
import { deleteAccount, endAllSessions, setAccountStatus } from './accounts.js'
import { accountView } from './account-view.js'
import type { SecureLoginContext } from './context.js'
import { normalizePhone } from './phone.js'

/** An account as `secureLogin.findUser` answers it: GET /me's fields and its status. */
export type SecureLoginAccount = Account & { status: 'active' | 'disabled' | (string & {}) }

/**
 * What the app's own code (admin tools, support, moderation) may do to accounts, as functions on
 * `fastify.secureLogin`. Each acts like the user's own route would, including the revocation of
 * tokens on every instance; none checks who calls it: that is the app's route's job.
 */
export function createAdminFunctions (ctx: SecureLoginContext) {
  // Ids are stored lower-case; PostgreSQL's uuid type would match an upper-case one, SQLite's text would not.
  const revokeSessions = async (userid: string) => isUserId(userid) ? endAllSessions(ctx, userid.toLowerCase(), 'revoked_by_app') : 0
  return {
    revokeSessions,
    setStatus: async (userid: string, status: 'active' | 'disabled') => {
      if (status !== 'active' && status !== 'disabled') throw new TypeError(`fastify-securelogin: setStatus: status must be 'active' or 'disabled', not ${JSON.stringify(status)}`)
      return isUserId(userid) && setAccountStatus(ctx, userid.toLowerCase(), status)
    },
    deleteUser: async (userid: string) => isUserId(userid) && deleteAccount(ctx, userid.toLowerCase()),
    findUser: async (query: { userid: string } | { phone: string }): Promise<SecureLoginAccount | undefined> => {
      if ('userid' in query && !isUserId(query.userid)) return undefined
      const user = 'userid' in query
        ? await ctx.store.findUserById(query.userid.toLowerCase())
        : await ctx.store.findUserByPhone(normalizePhone(query.phone, ctx.options.phonePolicy))
      return user === undefined ? undefined : { ...accountView(user), status: user.status }
    },
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Every account id is a UUID: anything else names no account (and PostgreSQL's uuid column would refuse it). */
function isUserId (value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value)
}
