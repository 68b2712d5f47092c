import { isSupportedCountry, parsePhoneNumberFromString, type CountryCode, type NumberType } from 'libphonenumber-js/max'
import { PhoneCountryNotAllowedError, PhoneInvalidError, PhoneTypeNotAllowedError } from './errors.js'

export { isSupportedCountry }
export type { CountryCode }
/** A kind of number as libphonenumber-js tells it from its full metadata. */
export type PhoneNumberType = NonNullable<NumberType>

/** Every kind of number, for checking the `numberTypes` option. */
export const PHONE_NUMBER_TYPES: readonly PhoneNumberType[] = [
  'MOBILE', 'FIXED_LINE', 'FIXED_LINE_OR_MOBILE', 'VOIP', 'PERSONAL_NUMBER', 'PREMIUM_RATE', 'SHARED_COST', 'TOLL_FREE', 'PAGER', 'UAN', 'VOICEMAIL',
]

/**
 * The kinds that can receive an SMS and are not priced by the caller: premium-rate, shared-cost,
 * toll-free, pager, UAN and voicemail numbers are the stock of SMS pumping, landlines cannot read
 * a text.
 */
export const DEFAULT_NUMBER_TYPES: readonly PhoneNumberType[] = ['MOBILE', 'FIXED_LINE_OR_MOBILE', 'VOIP', 'PERSONAL_NUMBER']

/** Which numbers the app accepts; resolved once from the options. */
export interface PhonePolicy {
  defaultCountry: CountryCode | undefined
  /** undefined: every country (numbers of no country, such as satellite and international networks, never). */
  allowedCountries: ReadonlySet<CountryCode> | undefined
  numberTypes: ReadonlySet<PhoneNumberType>
  /** The app's `testNumbers` (number → fixed code): accepted as they are, valid or not (+1 555 numbers are not). */
  testNumbers: ReadonlyMap<string, string>
}

/**
 * Parses a number as a user typed it and returns its E.164 form, or throws
 * SECURELOGIN_PHONE_INVALID, or SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED /
 * SECURELOGIN_PHONE_TYPE_NOT_ALLOWED for a valid number the app does not serve.
 */
export function normalizePhone (input: string, policy: PhonePolicy): string {
  const parsed = parsePhoneNumberFromString(input, policy.defaultCountry)
  if (parsed !== undefined && policy.testNumbers.has(parsed.number)) return parsed.number
  // With the full metadata every numbering plan has its types, and isValid() is getType() !==
  // undefined: the same search of the plan's patterns, the costliest part of the check, made once.
  const type = parsed?.getType()
  if (parsed === undefined || type === undefined) throw new PhoneInvalidError()
  // Numbers of no country (+870, +881, +882, +883 satellite and international networks, +800,
  // +808, +878, +888, +979) cost the most per message and serve no one an app would sign in by SMS.
  const country = parsed.country
  if (country === undefined || (policy.allowedCountries !== undefined && !policy.allowedCountries.has(country))) throw new PhoneCountryNotAllowedError()
  if (!policy.numberTypes.has(type)) throw new PhoneTypeNotAllowedError()
  return parsed.number
}

/** Whether `value` is a number written in E.164 form (`+` and digits, as normalizePhone answers). */
export function isE164 (value: string): boolean {
  return parsePhoneNumberFromString(value)?.number === value
}

/** The country of an E.164 number (for routing SMS), or undefined. */
export function phoneCountry (e164: string): CountryCode | undefined {
  return parsePhoneNumberFromString(e164)?.country
}

/** A phone number with all but the country code and the last two digits hidden, for logs. */
export function maskPhone (e164: string): string {
  if (e164.length <= 6) return '***'
  return e164.slice(0, 3) + '*'.repeat(e164.length - 5) + e164.slice(-2)
}
