import { parse } from '@lukeed/ms'

/** Seconds as a number, or a string such as `'30s'`, `'10m'`, `'60d'`. */
export type Duration = number | string

/** Converts a {@link Duration} to milliseconds; throws a message naming `name` when it is not one. */
export function toMilliseconds (value: Duration, name: string): number {
  const ms = typeof value === 'number' ? value * 1000 : parse(value)
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`fastify-securelogin: ${name} must be a positive number of seconds or a duration such as '10m' (got ${JSON.stringify(value)})`)
  }
  return Math.round(ms)
}
