import { parse } from '@lukeed/ms'

/** Seconds as a number, or a string such as `'30s'`, `'10m'`, `'60d'`. */
export type Duration = number | string

/** Converts a {@link Duration} to milliseconds; throws a message naming `name` when it is not one. */
export function toMilliseconds (value: Duration, name: string): number {
  // A bare number in a string means seconds, as a number does (ms would read '600' as 600 ms).
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : undefined
  const ms = seconds !== undefined ? seconds * 1000 : typeof value === 'string' ? parse(value) : undefined
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`fastify-securelogin: ${name} must be a positive number of seconds or a duration such as '10m' (got ${JSON.stringify(value)})`)
  }
  return Math.round(ms)
}
