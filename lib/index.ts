import type { JWT } from '@fastify/jwt'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { createAdminFunctions, type SecureLoginAccount } from './admin.js'
import { createAuthHooks, type AuthHook, type SecureLoginUser } from './authenticate.js'
import { createDeliveryTracker, createSmsBudget, lockKey } from './challenges.js'
import { normalizePhone } from './phone.js'
import { normalizeEmail } from './email.js'
import { loginLockKey } from './passwords/accounts.js'
import { slidingWindow } from './rate-limit.js'
import type { SecureLoginContext } from './context.js'
import { migrate, startupError } from './db/migrate.js'
import { guardPoolErrors } from './db/pool-errors.js'
import { ensureCookieSupport } from './cookies.js'
import { isDevelopment } from './environment.js'
import { createEvents } from './events.js'
import { registerAccessJwt } from './jwt.js'
import { deriveKey } from './keys.js'
import { resolveOptions, type SecureLoginOptions } from './options.js'
import { createRevocationList } from './revocation.js'
import { secureLoginRoutes } from './routes/index.js'
import { schedulePurge } from './purge.js'
import { withDeadline } from './store/deadline.js'
import { runsSynchronously } from './store/unit-of-work.js'
import { createStore } from './store/index.js'
import { createTokenService } from './tokens.js'

/** The limits of password sign-in (`password.enabled`). */
const PASSWORD_LIMITS = new Set(['failedLoginsPerAccount', 'loginsPerIp'])

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: requires a valid access token of a live session; sets `request.user`. */
    authenticate: AuthHook
    /** preHandler: like `authenticate`, and the token must come from verify_sms, not refresh. */
    authenticateFresh: AuthHook
    /** preHandler: requires a valid refresh token; sets `request.user` (with `generation`). */
    authenticateRefresh: AuthHook
    /** The plugin's own parts the app may use. */
    secureLogin: {
      /** The @fastify/jwt instance of access tokens: `fastify.jwt`, or `fastify.jwt[jwt.namespace]` when the app registered @fastify/jwt itself. */
      jwt: JWT
      /**
       * Lets a number locked by too many wrong codes (`rateLimit.failedVerifiesPerPhone`) sign in
       * again at once, e.g. after support has checked who is asking.
       * @example await app.secureLogin.unlockPhone('+14155550123')
       */
      unlockPhone: (phone: string) => Promise<void>
      /**
       * Lets an email locked by too many wrong passwords (`rateLimit.failedLoginsPerAccount`) sign
       * in again at once. Throws a RangeError for a string that is not an email address.
       * @example await app.secureLogin.unlockEmail('ada@example.com')
       */
      unlockEmail: (email: string) => Promise<void>
      /**
       * Ends every session of the account (e.g. after a support call about a lost phone): its
       * tokens stop working here at once, on other instances within `revocationMaxDelay`.
       * Answers how many sessions ended.
       * @example await app.secureLogin.revokeSessions(userid)
       */
      revokeSessions: (userid: string) => Promise<number>
      /**
       * Disables or re-enables an account. Disabling ends every session at once and refuses sign-in
       * (verify_sms answers 403 SECURELOGIN_ACCOUNT_INACTIVE to whoever proves the number). False
       * when there is no such account.
       * @example await app.secureLogin.setStatus(userid, 'disabled')
       */
      setStatus: (userid: string, status: 'active' | 'disabled') => Promise<boolean>
      /**
       * Deletes an account as DELETE /me does: number, name and email erased, sessions ended, the
       * number free to register again (under a new id). False when there is no such account.
       */
      deleteUser: (userid: string) => Promise<boolean>
      /**
       * The account of a user id or a number (any form `/login` accepts); undefined when there is
       * none. A number `/login` would refuse throws the same error (e.g. PhoneInvalidError).
       */
      findUser: (query: { userid: string } | { phone: string }) => Promise<SecureLoginAccount | undefined>
    }
  }
}

// `request.user` is @fastify/jwt's: typed through its interface, so both plugins agree on it
// whichever the app imports first. Extra claims are typed by merging into SecureLoginClaims.
declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: SecureLoginUser
  }
}

const secureLogin: FastifyPluginAsync<SecureLoginOptions> = async (fastify, rawOptions) => {
  const options = resolveOptions(rawOptions)
  // Before anything touches the database: a connection dropped from then on must not end the process.
  guardPoolErrors(options.db, fastify.log)
  if (options.migrate) await migrate(options.db)

  if (options.phonePolicy.testNumbers.size > 0 && !isDevelopment()) {
    fastify.log.warn({ count: options.phonePolicy.testNumbers.size }, 'fastify-securelogin: test numbers sign in without an SMS outside development (allowTestNumbersInProduction)')
  }
  if (rawOptions.rateLimit === false) fastify.log.warn('fastify-securelogin: rateLimit: false, every limit is off (codes can be requested and guessed without bound)')
  const store = withDeadline(createStore(options.db, options.dialect, (problem) => {
    fastify.log.error({ problem }, 'fastify-securelogin: a unit of work broke its rule (it awaited more than the store, or found a transaction of the app open on the shared connection); its writes were still committed before the answer')
  }, { namedStatements: options.namedStatements }), options.dbTimeoutMs, { synchronous: runsSynchronously(options.db) })
  const accessJwt = await registerAccessJwt(fastify, options)
  if (options.cookies !== undefined) await ensureCookieSupport(fastify)
  const tokens = createTokenService(options, accessJwt)
  const revocations = createRevocationList({ store, maxDelayMs: options.revocationMaxDelayMs, retainMs: options.accessTokenTtlMs, log: fastify.log })
  try {
    await revocations.start()
  } catch (error) {
    throw startupError(options.db, error, 'read-revocations')
  }
  const hooks = createAuthHooks(tokens, revocations, store, { withExtraClaims: options.jwtClaims !== undefined, cookies: options.cookies, idleTimeoutMs: options.sessions.idleTimeoutMs })
  const deliveries = createDeliveryTracker()
  const ctx: SecureLoginContext = {
    options, store, tokens, revocations, hooks, log: fastify.log, deliveries, budget: createSmsBudget(), events: createEvents(options.onEvent, fastify.log),
    hashKey: options.otpHashKey ?? deriveKey(options.jwtSecret, 'otp-hash'),
  }

  // Counters older than the longest window of a limit in use count for nothing: the password
  // limits are not in use while passwords are off.
  const limitsInUse = Object.entries(options.rateLimit).filter(([name]) => options.password.enabled || !PASSWORD_LIMITS.has(name))
  const longestWindowMs = Math.max(0, ...limitsInUse.flatMap(([, rules]) => rules.map((rule) => rule.windowMs)))
  const stopPurge = options.purgeIntervalMs === undefined
    ? () => {}
    : schedulePurge(store, { intervalMs: options.purgeIntervalMs, longestWindowMs, accessTokenTtlMs: options.accessTokenTtlMs, cooldownPastExpiryMs: Math.max(0, options.otpResendIntervalMs - options.otpTtlMs), unverifiedAccountTtlMs: options.unverifiedAccountTtlMs, log: fastify.log })
  fastify.addHook('onClose', async () => {
    stopPurge()
    await deliveries.settled()
    await revocations.stop()
  })

  fastify.decorate('authenticate', hooks.authenticate)
  fastify.decorate('authenticateFresh', hooks.authenticateFresh)
  fastify.decorate('authenticateRefresh', hooks.authenticateRefresh)
  fastify.decorate('secureLogin', {
    jwt: accessJwt,
    unlockPhone: (phone: string) => slidingWindow.reset(store, lockKey(normalizePhone(phone, options.phonePolicy)), options.rateLimit.failedVerifiesPerPhone),
    unlockEmail: (email: string) => slidingWindow.reset(store, loginLockKey(ctx.hashKey, normalizeEmail(email)), options.rateLimit.failedLoginsPerAccount),
    ...createAdminFunctions(ctx),
  })

  await fastify.register(secureLoginRoutes, { prefix: options.prefix, ctx })
}

export default fp(secureLogin, { fastify: '5.x', name: 'fastify-securelogin' })
export { secureLogin }
export { migrate } from './db/migrate.js'
export { startSqliteCheckpoints, type SqliteCheckpoints } from './db/sqlite-checkpoints.js'
/** An email address as password accounts store and look it up: for import scripts (docs/migrating-from-flask.md). */
export { normalizeEmail } from './email.js'
export { purgeExpired, type PurgeOptions } from './purge.js'
export { consoleSms, type ConsoleSmsOptions } from './sms/console.js'
export { twilioMessaging, type TwilioMessagingOptions, type SmsTemplateInput } from './sms/twilio-messaging.js'
export { twilioVerify, type TwilioVerifyOptions, type TwilioVerifyChannel } from './sms/twilio-verify.js'
export { routeSms, type RouteSmsOptions, type SmsFallbackEvent } from './sms/route.js'
export { SmsDeliveryError, type SmsDeliveryErrorOptions } from './sms/errors.js'
export type { TwilioClient, TwilioCredentials } from './sms/twilio-client.js'
export type { SmsProvider, SmsMessage, TextingSmsProvider, VerifyingSmsProvider } from './sms/types.js'
export type { SecureLoginOptions, SecureLoginDatabase, RateLimitRule } from './options.js'
export type { SecureLoginUser, SecureLoginRefreshUser, SecureLoginClaims, AuthHook } from './authenticate.js'
export type { ClaimsFunction } from './claims.js'
export type { SecureLoginEvent, SecureLoginEventHandler, SecureLoginEventType } from './events.js'
export type { Duration } from './duration.js'
export type { SecureLoginAccount } from './admin.js'
export * from './errors.js'
