import { BadRequestError } from './errors.js'

/** The most characters (UTF-16 code units, as JSON Schema counts them) a username keeps after normalisation. */
export const USERNAME_MAX_LENGTH = 64

// Characters that make a name look different from what it is, or break what displays or stores
// it: controls (Cc: NUL fails PostgreSQL's text type), format characters (Cf: bidi overrides and
// isolates, zero-width spaces, soft hyphens, invisible tag characters), lone surrogates (Cs: not
// text at all), private-use characters (Co: they look different on every system) and line or
// paragraph separators; and what renders as nothing or as a blank though it is no space (Unicode's
// default-ignorable code points: Hangul fillers, the combining grapheme joiner, variation selectors;
// and the braille blank), with which `admin\u3164` looks exactly like `admin`. Unassigned code
// points (Cn) are allowed: the server's Unicode may be older than the phone's, and new emoji must
// not be refused.
const REFUSED = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2800]/u

// The one use of a format character in a name: a zero-width (non-)joiner between two letters, marks
// or emoji, as Persian, Indic scripts and emoji sequences (👩‍💻) need. Anywhere else it hides.
const JOINER_IN_WORD = /(?<=[\p{L}\p{M}\p{Extended_Pictographic}\p{Emoji_Modifier}])[\u200C\u200D](?=[\p{L}\p{M}\p{Extended_Pictographic}])/gu

// The uses of a variation selector: text or emoji style right after an emoji (❤️), or after a
// digit, # or * that a keycap mark follows (1️⃣); a glyph variant right after a Han ideograph
// (Japanese names); and Mongolian's free variation selectors after a Mongolian letter. After
// anything else, or a second one in a row, it changes nothing one sees.
const VARIATION_OF_BASE = /(?<=\p{Emoji})(?<![0-9#*])[\uFE0E\uFE0F]|(?<=[0-9#*])\uFE0F(?=\u20E3)|(?<=\p{Ideographic})[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]|(?<=[\u1820-\u1878\u1880-\u18AA])[\u180B-\u180D\u180F]/gu

/**
 * A username as stored: NFC, without surrounding white space. Throws 400 SECURELOGIN_BAD_REQUEST
 * when it is empty after that, longer than {@link USERNAME_MAX_LENGTH}, or holds a control,
 * format, surrogate, private-use, line-separator or invisible character (other than a joiner
 * inside a word and a variation selector after an emoji, ideograph or Mongolian letter).
 */
export function normalizeUsername (input: string): string {
  const username = input.normalize('NFC').trim()
  if (username === '') throw new BadRequestError('username must not be blank')
  if (username.length > USERNAME_MAX_LENGTH) throw new BadRequestError(`username must be at most ${USERNAME_MAX_LENGTH} characters`)
  if (REFUSED.test(username.replace(JOINER_IN_WORD, '').replace(VARIATION_OF_BASE, ''))) {
    throw new BadRequestError('username must not contain control, invisible, direction-changing or private-use characters')
  }
  return username
}
