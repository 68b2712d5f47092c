import { isIPv6 } from 'node:net'
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

/**
 * The key a client's IP is counted under. An IPv6 client usually holds a whole /64 (2^64
 * addresses), so IPv6 addresses count per /64; IPv4-mapped IPv6 counts as the IPv4 address.
 */
export function clientKey (ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped !== null) return mapped[1] as string
  if (!isIPv6(ip)) return ip
  const [head = '', tail = ''] = ip.toLowerCase().split('%')[0]!.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((group) => group.padStart(4, '0')).join(':')}::/64`
}
