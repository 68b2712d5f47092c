// How hard a secret is to guess, estimated from how people write secrets that are not random: words
// and names, capitals, digits and years, separators, repeats, alphabet and keyboard runs. It
// rates human-written text low however long it is, and random bytes (raw, or as base64 or hex, as
// `openssl rand -base64 48` prints them) near what they hold. It is an estimate, not a proof: it
// only has to tell "typed by a person" from "made by a generator" with a wide margin.

/** The estimate a secret must reach: 128 bits, the strength of a random 16-byte key. */
export const MIN_SECRET_BITS = 128

const LOG2_26 = Math.log2(26)
const LOG2_10 = Math.log2(10)
/** Any word of a common-word list costs an attacker about this many guesses: 2^11 ≈ 2,000 words. */
const WORD_BITS = 11
/** A separator or other symbol the first time it appears (about 33 printable symbols). */
const SYMBOL_BITS = 5
/** Where a new word, number or symbol starts: one bit for the choice of starting one there. */
const BOUNDARY_BITS = 1
/** A repeat of earlier text, or a run along the alphabet or a keyboard row, of at least MIN_PATTERN characters. */
const PATTERN_BITS = 3
const MIN_PATTERN = 4
const RUNS = ['abcdefghijklmnopqrstuvwxyz', '0123456789', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm', '1234567890']
  .flatMap((run) => [run, [...run].reverse().join('')])
/** Only this much of a secret is read: the estimate of a prefix is a lower bound of the whole's. */
const MAX_READ = 512

// The letter pairs that make up 99 % of the pairs inside lower-case words of English prose
// (measured on the READMEs of this package's dependencies), 294 of the 676. A run of letters is
// read as words only where each pair is one of them: "secret" stays one word, a random "kQxvbT"
// falls apart into letters.
const ENGLISH_PAIRS = new Set(('abacadafagaiakalamanaparasatauavaxaybabebibjblbobrbsbubycacccechcickclcocrcsctcucydadddedidldodrdsdu' +
  'dyeaebecedeeefegeheielemenepeqeresetevewexeyfafefffiflfofrfsftfufygageghgiglgngogrgsguhahehihmhohrhs' +
  'hthuiaibicidieifigikiliminioipirisitivixizjejsjukakekikslalbldlelilllolsltlulvlymambmdmemgmimmmompms' +
  'munancndnenfngninknlnmnnnonpnsntnunvnyoaobocodoeofogoiojokolomonoooporosotouovowoxpapephpiplpmpopppr' +
  'psptpuqurarcrdrerfrgrirkrlrmrnrorrrsrtrurvrwrysascsesfshsiskslsnsospsrssstsusytatctdtethtitltotptrts' +
  'tttutwtyuaubucudueufuguiulumunupurusutvaveviwawewhwiwnwowrwsxaxcxexixpxtyiylynyoypysytze').match(/../g))

/** The estimated bits of `secret`, a string or bytes. */
export function estimateSecretBits (secret: string | Uint8Array): number {
  if (typeof secret !== 'string') {
    const bytes = Buffer.from(secret)
    const text = printableText(bytes)
    return text === undefined ? binaryBits(bytes) : textBits(text)
  }
  // Base64 or hex of text is that text: the encoding adds nothing to guess.
  const decoded = /^(?:[0-9a-fA-F]{2})+$/.test(secret)
    ? Buffer.from(secret, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(secret) ? Buffer.from(secret, 'base64') : undefined
  const text = decoded === undefined ? undefined : printableText(decoded)
  return Math.min(textBits(secret), text === undefined ? Infinity : textBits(text))
}

/** The bytes as text when they are all printable ASCII (random bytes almost never are), else undefined. */
function printableText (bytes: Buffer): string | undefined {
  return bytes.length > 0 && bytes.every((byte) => byte >= 0x20 && byte <= 0x7e) ? bytes.toString('latin1') : undefined
}

/** Bytes: as many bits per byte as their spread shows, and none for steps by a constant (0, 1, 2, …). */
function binaryBits (bytes: Buffer): number {
  const steps = bytes.subarray(1).map((byte, i) => (byte - bytes[i]!) & 0xff)
  return bytes.length * Math.min(shannon(bytes), shannon(steps))
}

function shannon (values: Uint8Array): number {
  if (values.length === 0) return 0
  const counts = new Map<number, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  let bits = 0
  for (const count of counts.values()) bits -= (count / values.length) * Math.log2(count / values.length)
  return bits
}

/**
 * Text, read as an attacker with word lists and rules would guess it. Repeats of earlier text and
 * runs along the alphabet or the keyboard (4 characters or more) cost almost nothing; the rest is
 * split into words (`mySuperKey`: my, Super, Key), digit runs and symbols, and a word costs what a
 * random word of a common-word list does (less when shorter).
 */
function textBits (text: string): number {
  const read = text.slice(0, MAX_READ)
  const lower = read.toLowerCase()
  const seen = new Set<string>()
  let bits = 0
  let literal = ''
  for (let i = 0; i < read.length;) {
    const pattern = patternLength(lower, i)
    if (pattern === 0) {
      literal += read[i]
      i++
      continue
    }
    bits += tokensBits(literal, seen) + PATTERN_BITS
    literal = ''
    i += pattern
  }
  return bits + tokensBits(literal, seen)
}

/** How many characters of `lower` from `i` repeat earlier text or follow a run (one character, alphabet, keyboard); 0 when fewer than MIN_PATTERN. */
function patternLength (lower: string, i: number): number {
  const before = lower.slice(0, i)
  let length = 0
  while (i + length < lower.length && before.includes(lower.slice(i, i + length + 1))) length++
  let run = 1
  while (i + run < lower.length && isRun(lower.slice(i, i + run + 1))) run++
  const longest = Math.max(length, run)
  return longest >= MIN_PATTERN ? longest : 0
}

function tokensBits (text: string, seen: Set<string>): number {
  let bits = 0
  for (const token of text.match(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]/g) ?? []) {
    const lower = token.toLowerCase()
    if (seen.has(lower) && (token.length >= 3 || !/[A-Za-z\d]/.test(token))) {
      bits += 1
      continue
    }
    seen.add(lower)
    bits += BOUNDARY_BITS
    if (/^\d+$/.test(token)) bits += /^(?:19|20)\d\d$/.test(token) ? 7 : token.length * LOG2_10
    else if (/^[a-z]+$/i.test(token)) bits += wordsBits(lower) + (token.length > 1 && /^[A-Z][a-z]/.test(token) ? 1 : 0)
    else bits += SYMBOL_BITS
  }
  return bits
}

/**
 * A run of letters, split where a pair of neighbours is not English: each piece costs what as many
 * common words as it could hold do (one per 6 letters), or its letters if that is less.
 */
function wordsBits (letters: string): number {
  let bits = 0
  let start = 0
  for (let i = 1; i <= letters.length; i++) {
    if (i < letters.length && ENGLISH_PAIRS.has(letters.slice(i - 1, i + 1))) continue
    const length = i - start
    bits += Math.min(length * LOG2_26, WORD_BITS * Math.ceil(length / 6))
    start = i
  }
  return bits
}

/** `aaaa`, `abcd`, `9876`, `qwer`: one character repeated, or a piece of the alphabet, the digits or a keyboard row. */
function isRun (text: string): boolean {
  return /^(.)\1*$/s.test(text) || RUNS.some((run) => run.includes(text))
}
