/** The fewest characters (Unicode code points, after NFKC) a new password may have: NIST SP 800-63B's minimum. */
export const PASSWORD_MIN_LENGTH = 8

/** The most characters (Unicode code points, after NFKC) a new password may have. NIST asks for at least 64. */
export const PASSWORD_MAX_LENGTH = 128

// A lone surrogate is not a character: UTF-8 encoding turns every one of them into U+FFFD, so
// two different passwords would hash the same.
const LONE_SURROGATE = /\p{Cs}/u

/** Whether `text` holds a lone surrogate: no password set here does, so none typed may match one. */
export function hasLoneSurrogate (text: string): boolean {
  return LONE_SURROGATE.test(text)
}

/**
 * A new password as it is hashed: NFKC-normalised, as NIST SP 800-63B asks, so that the same
 * password typed on another keyboard or system (full-width letters, ligatures, composed or
 * decomposed accents) is the same password. Length is counted in code points after normalising,
 * so an emoji is one character. There are no composition rules (no required digits or symbols) and
 * nothing is trimmed or truncated.
 *
 * Throws a `RangeError` when the result is shorter than {@link PASSWORD_MIN_LENGTH}, longer than
 * {@link PASSWORD_MAX_LENGTH} or not well-formed Unicode; the route layer answers it with 400
 * SECURELOGIN_PASSWORD_POLICY. The message never contains the password.
 *
 * For setting a password only (registration, change, reset): login compares what was typed, since
 * imported accounts may have older, shorter passwords.
 *
 * @example normalizePassword('ｐａｓｓｗｏｒｄ') // 'password'
 */
export function normalizePassword (raw: string): string {
  const password = raw.normalize('NFKC')
  if (hasLoneSurrogate(password)) throw new RangeError('password must be well-formed Unicode text')
  // Spreading a string walks code points, so a character outside the BMP counts once, not twice.
  const length = [...password].length
  if (length < PASSWORD_MIN_LENGTH) throw new RangeError(`password must be at least ${PASSWORD_MIN_LENGTH} characters`)
  if (length > PASSWORD_MAX_LENGTH) throw new RangeError(`password must be at most ${PASSWORD_MAX_LENGTH} characters`)
  return password
}
