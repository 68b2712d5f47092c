import { is } from 'drizzle-orm'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { FastifyBaseLogger } from 'fastify'
import { LONGEST_ACCESS_TOKEN_TTL, LONGEST_RATE_LIMIT_WINDOW, LONGEST_RESEND_INTERVAL, SecureLoginOptionsSchema, SHORTEST_OTP_TTL } from '../schemas/options.js'
import { parseDuration, type Duration } from './duration.js'
import type { SecureLoginDatabase } from './options.js'
import { loggableError } from './redact.js'
import { createStore, type Store } from './store/index.js'

// Without the app's options, the longest window any rule may have (older counters count for
// nothing) and the longest access-token lifetime (no token is left of a session ended before).
const LONGEST_ALLOWED_WINDOW_MS = parseDuration(LONGEST_RATE_LIMIT_WINDOW) as number
const LONGEST_ACCESS_TOKEN_TTL_MS = parseDuration(LONGEST_ACCESS_TOKEN_TTL) as number
// And the longest a code's resend cooldown may outlast the code (its row holds both).
const LONGEST_COOLDOWN_PAST_EXPIRY_MS = (parseDuration(LONGEST_RESEND_INTERVAL) as number) - (parseDuration(SHORTEST_OTP_TTL) as number)
const DEFAULT_UNVERIFIED_ACCOUNT_TTL = SecureLoginOptionsSchema.properties.unverifiedAccountTtl.default as Duration

export interface PurgeOptions {
  /** The time that counts as now. */
  now?: Date
  /** Accounts that never proved their number are deleted this long after registration; `false` keeps them. */
  unverifiedAccountTtl?: Duration | false
}

/**
 * Deletes expired codes (an hour after they expired: the longest a resend cooldown, which a
 * code's row also holds, may outlast the code), ended sessions and their logged revocations,
 * stale rate-limit counters and accounts that never proved their number within
 * `unverifiedAccountTtl` (default 7 days), in batches of 1,000 rows a statement, and answers how
 * many of each went. For apps that run housekeeping from their own scheduler (register the plugin
 * with `purgeInterval: false` then).
 * @example await purgeExpired(db, { unverifiedAccountTtl: '30d' })
 */
export async function purgeExpired (db: SecureLoginDatabase, options: PurgeOptions = {}) {
  const now = options.now ?? new Date()
  const ttl = options.unverifiedAccountTtl ?? DEFAULT_UNVERIFIED_ACCOUNT_TTL
  const ttlMs = ttl === false ? undefined : parseDuration(ttl)
  if (ttlMs === undefined && ttl !== false) throw new TypeError(`fastify-securelogin: purgeExpired: unverifiedAccountTtl must be false or a duration such as '7d'`)
  const store = createStore(db, is(db, BaseSQLiteDatabase) ? 'sqlite' : 'postgres')
  return purgeAt(store, now, { longestWindowMs: LONGEST_ALLOWED_WINDOW_MS, accessTokenTtlMs: LONGEST_ACCESS_TOKEN_TTL_MS, cooldownPastExpiryMs: LONGEST_COOLDOWN_PAST_EXPIRY_MS, unverifiedAccountTtlMs: ttlMs })
}

/**
 * What a purge keeps: the longest rate-limit window, the access tokens' lifetime, how long a
 * code's resend cooldown outlasts the code (resendInterval − ttl, when longer), unverified
 * accounts' (undefined: for ever).
 */
interface PurgeLimits { longestWindowMs: number, accessTokenTtlMs: number, cooldownPastExpiryMs: number, unverifiedAccountTtlMs: number | undefined }

function purgeAt (store: Store, now: Date, limits: PurgeLimits) {
  const before = (ms: number) => new Date(now.getTime() - ms)
  return store.purgeExpired({
    now,
    // A code's row also holds its resend cooldown: deleted earlier, the next request would send at once.
    challengesExpiredBefore: before(limits.cooldownPastExpiryMs),
    longestWindowMs: limits.longestWindowMs,
    endedBefore: before(limits.accessTokenTtlMs),
    unverifiedBefore: limits.unverifiedAccountTtlMs === undefined ? undefined : before(limits.unverifiedAccountTtlMs),
  })
}

/**
 * Runs the purge soon after start and then every `intervalMs`. The first run comes after a random
 * delay of up to a minute, so instances that start together do not purge together, and instances
 * that live less than an hour (serverless, autoscaling) still clean up.
 * @returns a function that stops it
 */
export function schedulePurge (store: Store, args: PurgeLimits & { intervalMs: number, log: FastifyBaseLogger }): () => void {
  const run = () => {
    purgeAt(store, new Date(), args)
      .catch((error: unknown) => args.log.warn({ err: loggableError(error) }, 'fastify-securelogin: purge of expired rows failed'))
  }
  let interval: NodeJS.Timeout | undefined
  const first = setTimeout(() => {
    run()
    interval = setInterval(run, args.intervalMs)
    interval.unref()
  }, Math.floor(Math.random() * Math.min(60_000, args.intervalMs)))
  first.unref()
  return () => {
    clearTimeout(first)
    clearInterval(interval)
  }
}
