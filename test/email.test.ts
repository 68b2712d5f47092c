import t from 'tap'
import { EMAIL_MAX_LENGTH, normalizeEmail } from '../lib/email.js'

t.test('trims, lower-cases the domain and keeps the local part\'s case', async (t) => {
  t.equal(normalizeEmail('  Alice.Smith@Example.COM \n'), 'Alice.Smith@example.com')
  t.equal(normalizeEmail('bob+tag@sub.example.co.uk'), 'bob+tag@sub.example.co.uk')
  t.equal(normalizeEmail("o'brien!#$%&*/=?^_`{|}~-@example.com"), "o'brien!#$%&*/=?^_`{|}~-@example.com", 'every atext character')
})

t.test('an internationalised domain is stored in its ASCII form', async (t) => {
  t.equal(normalizeEmail('José@Bücher.DE'), 'José@xn--bcher-kva.de')
  t.equal(normalizeEmail('a@xn--bcher-kva.de'), 'a@xn--bcher-kva.de', 'the A-label and U-label spellings are one address')
  t.equal(normalizeEmail('a@ｅｘａｍｐｌｅ．ｃｏｍ'), 'a@example.com', 'full-width letters and dot')
})

t.test('the local part is kept in NFC', async (t) => {
  t.equal(normalizeEmail('jose\u0301@example.com'), 'jos\u00e9@example.com')
})

t.test('refuses what is not a plausible address', async (t) => {
  const refused = [
    '',
    '   ',
    'plainaddress',
    '@example.com',
    'alice@',
    'alice@@example.com',
    'alice@bob@example.com',
    '"alice@bob"@example.com',
    '"quoted local"@example.com',
    'alice smith@example.com',
    'alice@exa mple.com',
    'alice\t@example.com',
    'alice@example.com\r\nBcc: victim@example.com',
    'ali\u0000ce@example.com',
    'ali\u200Bce@example.com',
    'ali\u202Ece@example.com',
    'alice\u00A0@example.com',
    'ali\uD800ce@example.com',
    '.alice@example.com',
    'alice.@example.com',
    'al..ice@example.com',
    'a,b@example.com',
    'a<b>@example.com',
    'a(comment)@example.com',
    'alice@localhost',
    'alice@example',
    'alice@example.com.',
    'alice@.example.com',
    'alice@example..com',
    'alice@-example.com',
    'alice@example-.com',
    'alice@exa_mple.com',
    'alice@ex%41mple.com',
    'alice@[192.0.2.1]',
    'alice@192.0.2.1',
    'alice@example.123',
    `alice@${'a'.repeat(64)}.com`,
    `${'a'.repeat(65)}@example.com`,
    `${'é'.repeat(33)}@example.com`,
  ]
  for (const raw of refused) t.throws(() => normalizeEmail(raw), RangeError, JSON.stringify(raw))
})

t.test('length limits are in octets', async (t) => {
  t.equal(normalizeEmail(`${'a'.repeat(64)}@example.com`), `${'a'.repeat(64)}@example.com`, '64 octets before the @')
  t.equal(normalizeEmail(`${'é'.repeat(32)}@example.com`), `${'é'.repeat(32)}@example.com`, '32 é are 64 octets')
  const domain = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(50)}.com`
  const longest = `${'x'.repeat(EMAIL_MAX_LENGTH - domain.length - 1)}@${domain}`
  t.equal(Buffer.byteLength(longest), 254)
  t.equal(normalizeEmail(longest), longest)
  t.throws(() => normalizeEmail(`x${longest}`), new RangeError('email must be at most 254 octets'))
})

t.test('the error does not repeat the address', async (t) => {
  try {
    normalizeEmail('secret.person@@example.com')
    t.fail('should have thrown')
  } catch (error) {
    t.notMatch((error as Error).message, 'secret.person')
  }
})
