import { parse } from '@lukeed/ms'

/** Seconds as a number, or a string such as `'30s'`, `'10m'`, `'60d'`. */
export type Duration = number | string

const UNITS: Array<[string, number]> = [
  ['year', 365.25 * 86_400_000], // @lukeed/ms's year
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
]

/**
 * Milliseconds of a {@link Duration}, or undefined when it is not a positive finite one. Strings of
 * digits mean seconds, as numbers do (@lukeed/ms would read '600' as 600 ms).
 */
export function parseDuration (value: unknown): number | undefined {
  let ms: number | undefined
  if (typeof value === 'number') ms = value * 1000
  else if (typeof value === 'string') ms = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) * 1000 : parse(value)
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? Math.round(ms) : undefined
}

/**
 * Milliseconds in words, for messages: `'25 hours'`, `'100 ms'`, `'6.9 days'`. The first unit that
 * shows the value exactly in few digits, else the largest one, rounded.
 */
export function formatDuration (ms: number): string {
  if (ms < 1000) return `${ms} ms`
  const fitting = UNITS.filter(([, size]) => ms >= size)
  const exact = fitting.find(([, size]) => Number.isInteger(ms / size * 10) && ms / size < 1000)
  const [unit, size] = exact ?? fitting[0]!
  const count = Math.round(ms / size * 10) / 10
  // "about" when rounding made the value look whole: 86401 s is not "1 day".
  return `${exact === undefined && Number.isInteger(count) ? 'about ' : ''}${count} ${count === 1 ? unit : `${unit}s`}`
}
