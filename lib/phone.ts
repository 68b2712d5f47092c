import { isSupportedCountry, parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max'
import { PhoneInvalidError } from './errors.js'

export { isSupportedCountry }
export type { CountryCode }

/** Parses a number as a user typed it and returns its E.164 form, or throws SECURELOGIN_PHONE_INVALID. */
export function normalizePhone (input: string, defaultCountry?: CountryCode): string {
  const parsed = parsePhoneNumberFromString(input, defaultCountry)
  if (parsed === undefined || !parsed.isValid()) throw new PhoneInvalidError()
  return parsed.number
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
