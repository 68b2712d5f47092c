import { domainToASCII } from 'node:url'

/** The most octets of an address (RFC 5321's 256-octet path less its angle brackets). */
export const EMAIL_MAX_LENGTH = 254

/** The most octets of the part before the @ (RFC 5321 §4.5.3.1.1). */
export const EMAIL_LOCAL_PART_MAX_LENGTH = 64

// White space, controls, invisible format characters (bidi overrides, zero-width spaces) and lone
// surrogates: none belongs in an address, and each can make two addresses look alike.
const REFUSED = /[\p{Z}\p{Cc}\p{Cf}\p{Cs}]/u

// RFC 5321's dot-atom: atext runs joined by single dots, with any non-ASCII character allowed in
// atext as RFC 6531 (internationalised mail) allows. Quoted local parts ("a b"@example.com) are refused.
const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u{80}-\\u{10FFFF}]"
const LOCAL_PART = new RegExp(`^${ATEXT}+(?:\\.${ATEXT}+)*$`, 'u')

// A DNS label in ASCII (letters, digits, inner hyphens, at most 63), after IDNA turned any Unicode
// label into its xn-- form.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * An email address as stored and compared: surrounding white space trimmed, the local part kept
 * as typed but in NFC, the domain lower-cased and in its ASCII (IDNA, `xn--`) form, so that
 * `José@Bücher.DE` becomes `José@xn--bcher-kva.de`.
 *
 * The local part keeps its case because RFC 5321 §2.4 lets the receiving server treat it as
 * case-sensitive: `Alice@` and `alice@` may be two mailboxes, and lower-casing could sign one
 * person into another's account. Most providers ignore case, so look addresses up exactly as
 * returned here and tell users to type them as they registered them.
 *
 * Throws a `RangeError` (the route layer answers 400) unless the address has exactly one @, a
 * dot-atom local part of 1 to {@link EMAIL_LOCAL_PART_MAX_LENGTH} octets, a domain of at least two
 * valid DNS labels whose last is not all digits, at most {@link EMAIL_MAX_LENGTH} octets in all,
 * and no white space or control character. IP literals (`user@[192.0.2.1]`) and quoted local parts
 * are refused. Whether the mailbox exists is for a confirmation email to find out.
 *
 * @example normalizeEmail(' Alice@Example.COM ') // 'Alice@example.com'
 */
export function normalizeEmail (raw: string): string {
  const address = raw.trim()
  if (REFUSED.test(address)) throw new RangeError('email must not contain white space or control characters')
  const parts = address.split('@')
  if (parts.length !== 2) throw new RangeError('email must contain exactly one @')
  const localPart = parts[0]!.normalize('NFC')
  if (!LOCAL_PART.test(localPart)) throw new RangeError('email has an invalid part before the @')
  if (Buffer.byteLength(localPart) > EMAIL_LOCAL_PART_MAX_LENGTH) throw new RangeError(`email must have at most ${EMAIL_LOCAL_PART_MAX_LENGTH} octets before the @`)
  // domainToASCII applies UTS #46 (lower case, full-width dots, IDNA) and returns '' when it cannot.
  // It parses a URL host, so it would also decode percent escapes: refuse them first.
  const domain = parts[1]!.includes('%') ? '' : domainToASCII(parts[1]!)
  const labels = domain.split('.')
  if (labels.length < 2 || !labels.every((label) => LABEL.test(label)) || /^\d+$/.test(labels.at(-1)!)) {
    throw new RangeError('email has an invalid domain')
  }
  const email = `${localPart}@${domain}`
  if (Buffer.byteLength(email) > EMAIL_MAX_LENGTH) throw new RangeError(`email must be at most ${EMAIL_MAX_LENGTH} octets`)
  return email
}
