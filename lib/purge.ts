import { is } from 'drizzle-orm'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { FastifyBaseLogger } from 'fastify'
import { LONGEST_RATE_LIMIT_WINDOW } from '../schemas/options.js'
import { parseDuration } from './duration.js'
import type { SecureLoginDatabase } from './options.js'
import { loggableError } from './redact.js'
import { createStore, type Store } from './store/index.js'

// Without the app's options, the longest window any rule may have: older counters count for nothing.
const LONGEST_ALLOWED_WINDOW_MS = parseDuration(LONGEST_RATE_LIMIT_WINDOW) as number

/**
 * Deletes expired codes, ended sessions and stale rate-limit counters, in batches of 1,000 rows a
 * statement, and answers how many of each went. For apps that run housekeeping from their own
 * scheduler (register the plugin with `purgeInterval: false` then).
 * @example await purgeExpired(db)
 */
export async function purgeExpired (db: SecureLoginDatabase, now: Date = new Date()) {
  return createStore(db, is(db, BaseSQLiteDatabase) ? 'sqlite' : 'postgres').purgeExpired(now, LONGEST_ALLOWED_WINDOW_MS)
}

/**
 * Runs the purge soon after start and then every `intervalMs`. The first run comes after a random
 * delay of up to a minute, so instances that start together do not purge together, and instances
 * that live less than an hour (serverless, autoscaling) still clean up.
 * @returns a function that stops it
 */
export function schedulePurge (store: Store, args: { intervalMs: number, longestWindowMs: number, log: FastifyBaseLogger }): () => void {
  const run = () => {
    store.purgeExpired(new Date(), args.longestWindowMs)
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
