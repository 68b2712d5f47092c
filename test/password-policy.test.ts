import t from 'tap'
import { normalizePassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../lib/passwords/policy.js'

t.test('passwords are NFKC-normalised', async (t) => {
  t.equal(normalizePassword('ｐａｓｓｗｏｒｄ'), 'password', 'full-width letters')
  t.equal(normalizePassword('ﬁnancial ①②'), 'financial 12', 'ligatures and circled digits')
  t.equal(normalizePassword('cafe\u0301 au lait'), 'caf\u00e9 au lait', 'a decomposed accent is composed')
})

t.test('nothing is trimmed and no composition rule applies', async (t) => {
  t.equal(normalizePassword('  spaced  '), '  spaced  ')
  t.equal(normalizePassword('aaaaaaaa'), 'aaaaaaaa', 'no digit, symbol or capital is required')
  t.equal(normalizePassword('correct horse battery staple'), 'correct horse battery staple')
})

t.test('length is 8 to 128 code points, counted after NFKC', async (t) => {
  t.equal(PASSWORD_MIN_LENGTH, 8)
  t.equal(PASSWORD_MAX_LENGTH, 128)
  t.equal(normalizePassword('a'.repeat(8)), 'a'.repeat(8))
  t.throws(() => normalizePassword('a'.repeat(7)), new RangeError('password must be at least 8 characters'))
  t.equal(normalizePassword('a'.repeat(128)), 'a'.repeat(128))
  t.throws(() => normalizePassword('a'.repeat(129)), new RangeError('password must be at most 128 characters'))
  t.throws(() => normalizePassword(''), RangeError)
})

t.test('an emoji is one character, not two UTF-16 units', async (t) => {
  const eight = '😀🔑🐉🌍🎲🦊🍕🚀'
  t.equal(eight.length, 16, 'JavaScript\'s length counts 16 units')
  t.equal(normalizePassword(eight), eight, 'eight emoji are eight characters')
  t.throws(() => normalizePassword('😀🔑🐉🌍🎲🦊🍕'), RangeError, 'seven emoji are too short though .length is 14')
  t.doesNotThrow(() => normalizePassword('😀'.repeat(128)), '128 emoji are 256 units but 128 characters')
  t.throws(() => normalizePassword('😀'.repeat(129)), RangeError)
})

t.test('NFKC can lengthen or shorten a password past a limit', async (t) => {
  // U+FB00 (ﬀ) is one code point and NFKC makes it two: four of them are eight characters.
  t.equal(normalizePassword('ﬀﬀﬀﬀ'), 'ffffffff')
  // U+FDFA (one code point) becomes 18: eight of them are 144 characters.
  t.throws(() => normalizePassword('\uFDFA'.repeat(8)), RangeError)
})

t.test('lone surrogates are refused', async (t) => {
  t.throws(() => normalizePassword('password\uD800'), new RangeError('password must be well-formed Unicode text'))
  t.throws(() => normalizePassword('\uDC00password'), RangeError)
})

t.test('the error never repeats the password', async (t) => {
  for (const secret of ['hunter2', 'x'.repeat(200), 'hunter2\uD800']) {
    try {
      normalizePassword(secret)
      t.fail('should have thrown')
    } catch (error) {
      t.notMatch((error as Error).message, secret.slice(0, 7))
    }
  }
})
