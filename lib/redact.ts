import { maskPhone } from './phone.js'

// Errors the plugin logs carry text it did not write: a vendor's ("The 'To' number +1415… is not
// a valid phone number", URLs with the account SID), a driver's (PostgreSQL's "Key (phone)=(…)"),
// an app's own `jwt.claims`. Every error is logged through `loggableError`, which masks what
// looks like a phone number or a Twilio account SID in every text of the error and its causes.

// A digit, then digits possibly grouped by spaces, dots, dashes or brackets: +1 (415) 555-0123.
const DIGIT_RUN = /\+?\d(?:[ \u00A0().-]*\d)+/g
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/
// Account SIDs (AC…) and API key SIDs (SK…), the identities Twilio's credentials belong to.
const TWILIO_SID = /\b(AC|SK)[0-9a-fA-F]{32}\b/g

/** `text` with every phone-number-like run of digits and every Twilio account or API key SID masked. */
function redactText (text: string): string {
  return text
    .replace(TWILIO_SID, (_sid, prefix: string) => `${prefix}${'*'.repeat(8)}`)
    .replace(DIGIT_RUN, (run) => {
      if (IPV4.test(run) || ISO_DATE.test(run)) return run
      const digits = run.replace(/\D/g, '')
      const international = run.startsWith('+')
      if (digits.length < (international ? 5 : 7)) return run
      return international ? maskPhone(`+${digits}`) : `${'*'.repeat(digits.length - 2)}${digits.slice(-2)}`
    })
}

// Fields worth logging, copied (strings masked) from an error to its loggable copy. Anything else
// stays behind: an axios error's `config` holds the Authorization header, a Drizzle query error's
// `params` the statement's values.
const FIELDS = ['code', 'errno', 'syscall', 'status', 'statusCode', 'vendorCode', 'provider', 'transient', 'moreInfo', 'detail', 'hint', 'constraint', 'table', 'column', 'severity', 'routine'] as const

const MAX_DEPTH = 5

/**
 * A copy of `error` safe for a log line: its message, stack, listed fields and causes, with
 * numbers and SIDs masked (see `redactText`). A Drizzle query error keeps its statement, not its
 * parameters. Log every error as `{ err: loggableError(error) }`.
 */
export function loggableError (error: unknown, depth = 0): Error {
  if (!(error instanceof Error)) return new Error(redactText(describe(error)))
  const { query, params } = error as Error & { query?: unknown, params?: unknown }
  const message = redactText(typeof query === 'string' && params !== undefined ? `Failed query: ${query}` : error.message)
  const cause = error.cause === undefined || depth >= MAX_DEPTH ? undefined : loggableError(error.cause, depth + 1)
  const copy = new Error(message, cause === undefined ? undefined : { cause })
  copy.name = error.name
  const frames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line))
  copy.stack = [`${error.name}: ${message}`, ...frames.map(redactText)].join('\n')
  for (const field of FIELDS) {
    const value = (error as unknown as Record<string, unknown>)[field]
    if (typeof value === 'string') Object.assign(copy, { [field]: redactText(value) })
    else if (typeof value === 'number' || typeof value === 'boolean') Object.assign(copy, { [field]: value })
  }
  if (error instanceof AggregateError && depth < MAX_DEPTH) {
    Object.assign(copy, { errors: error.errors.slice(0, 10).map((inner: unknown) => loggableError(inner, depth + 1)) })
  }
  return copy
}

function describe (value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
