import { RateLimitedError, withRetryAfter } from './errors.js'
import type { ResolvedRateLimitRule } from './options.js'
import type { Store } from './store/index.js'

/**
 * Counts a hit on `key` and throws 429 (with the seconds to wait) once the rule's window is full.
 * Counters live in the database so that every instance of the app shares them.
 */
export async function enforceRateLimit (store: Store, key: string, rule: ResolvedRateLimitRule, now: Date): Promise<void> {
  const { count, resetAt } = await store.hitRateLimit(key, rule.windowMs, now)
  if (count > rule.max) {
    const seconds = Math.max(1, Math.ceil((resetAt.getTime() - now.getTime()) / 1000))
    throw withRetryAfter(new RateLimitedError(seconds), seconds)
  }
}
