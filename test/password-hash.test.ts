import { hash, type Algorithm, type Version } from '@node-rs/argon2'
import { pbkdf2Sync, scryptSync } from 'node:crypto'
import t from 'tap'
import { ARGON2_PARAMETERS, hashPassword, verifyAgainstDummyHash, verifyPassword } from '../lib/passwords/hash.js'

const PASSWORD = 'correct horse battery staple'

// Hashes made by flask-securelogin's library, Werkzeug. Each was made with Werkzeug 3.1.8's
// generate_password_hash (python3 -c 'from werkzeug.security import generate_password_hash; …'),
// recomputed independently with hashlib.pbkdf2_hmac / hashlib.scrypt(…, maxmem=132*n*r*p, dklen=64)
// and checked with Werkzeug's check_password_hash, for PASSWORD unless said otherwise.
const WERKZEUG = {
  // Werkzeug ≥ 3.0's default method.
  scrypt: 'scrypt:32768:8:1$avWv9RamR6uT0kkm$95018aec55d972cc29e41fa0816c59d826cabe034fe8ef5d1c328cd816137330a1849dd949f7604246870e5797bb9acdddeffd735342d08091d1f18a9395e237',
  scryptSmallerN: 'scrypt:16384:8:1$etDa1X7wpmJzFnto$bd2ab1fd3eebeec46a6160941a6924008d61a7cec64f9f402459be0210e450d2cb623129b89be182fa9fc01477da72c1b22a1c344b6a7b788a1255462616f51c',
  // Werkzeug 2.3's default; 2.0–2.2 wrote 260000.
  pbkdf2Sha256At600k: 'pbkdf2:sha256:600000$bzQtyE41nPeXDv3y$4c3a963933c75b26bfc2cc807218b55543188f010a1eb16795f69e5fbded7e98',
  pbkdf2Sha256At260k: 'pbkdf2:sha256:260000$PCqDKv5TiT6TE4GE$375845926f1b8e2b70c1e561389d74420160ede8ce57e2256247d8554d5f1e45',
  // Werkzeug 0.9–0.11's default method (sha1, 1000 iterations, 8-character salt).
  pbkdf2Sha1At1000: 'pbkdf2:sha1:1000$46ffjfNU$742ed7a00c43b8225ff59bbf7df3374a44c08088',
  pbkdf2Sha512: 'pbkdf2:sha512:50000$LwR3rkP0NoF1OhYN$db01cf66c3a95017677230c30adf321f99c85d26efcc98352f1a6b4a6317af8609b9be8fedd05a0bf003d5a47d2d05e9a285d60da34ec977b13d379a224a2402',
  pbkdf2Md5: 'pbkdf2:md5:1000$3nno3LhS$3d8e6836b724f4b991f08aeed06a1db4',
  // The two digests Werkzeug accepted that no default used; made with hashlib.pbkdf2_hmac only.
  pbkdf2Sha224: 'pbkdf2:sha224:1000$mutSalt224$bf38c19283602df45a3671b68e39cb42fb5bf2c461c0fc1ffb7cd8e2',
  pbkdf2Sha384: 'pbkdf2:sha384:1000$mutSalt384$2cafc6d3fe49269f8b557fab5a70a1401f9ab170c902c9a49b9310db0039a53a312cb259b81ca089067ad12d15bad759',
  // No count: Werkzeug 3.1 reads its default, 1,000,000. Made with hashlib (no release writes this
  // form); the salt has token_urlsafe's '-' and '_', as Werkzeug's main branch now makes them.
  pbkdf2NoCount: 'pbkdf2:sha256$Zx-_token_urlsafe$5a54e00a71a44f49245bf82fd523a726fcd3a2a3ea3d10b2949faf9180b9830f',
  pbkdf2NoArguments: 'pbkdf2$plainSalt$6e9c24449825eca774b42ab9802baeabec5f3d17bee617742bee4b9826251728',
  scryptNoArguments: 'scrypt$Zx-_token_urlsafe$0bca40070752b9a67b8f45a050feee897c78ff571f0ca4948d2144d1dc381d2c311562c14263a00f14bb0e4de86bd0caedcb64b343ed20d7664c570aa5806750',
}

// generate_password_hash('ｐａｓｓ wörd ✓'): Flask hashed passwords as typed, without NFKC.
const WERKZEUG_UNICODE_PASSWORD = 'ｐａｓｓ wörd ✓'
const WERKZEUG_UNICODE = 'scrypt:32768:8:1$yP45NKExtubEefYY$524bb96c8adfcf5e3323921e3ab61717a9525089e4844e29dbcaead9c12b92c9367233d2f07e8aa91cd1fbf657847303fa61210f4d2f24db016350222f94c8e5'

async function elapsed (work: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await work()
  return performance.now() - start
}

function median (values: number[]): number {
  return values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!
}

t.test('new hashes are Argon2id PHC strings with OWASP\'s parameters and a fresh salt', async (t) => {
  t.same(ARGON2_PARAMETERS, { memoryCost: 19456, timeCost: 2, parallelism: 1 })
  const first = await hashPassword(PASSWORD)
  t.match(first, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
  t.not(await hashPassword(PASSWORD), first, 'each hash has its own salt')
})

t.test('an Argon2id hash verifies the right password only, and needs no rehash', async (t) => {
  const stored = await hashPassword(PASSWORD)
  t.same(await verifyPassword(stored, PASSWORD), { ok: true, needsRehash: false })
  t.same(await verifyPassword(stored, `${PASSWORD} `), { ok: false, needsRehash: false })
  t.same(await verifyPassword(stored, ''), { ok: false, needsRehash: false })
})

t.test('passwords are compared after NFKC', async (t) => {
  const stored = await hashPassword('ｐａｓｓｗｏｒｄ')
  t.same(await verifyPassword(stored, 'password'), { ok: true, needsRehash: false }, 'full-width letters are the ASCII ones')
  const decomposed = await hashPassword('cafe\u0301 au lait')
  t.ok((await verifyPassword(decomposed, 'caf\u00e9 au lait')).ok, 'a composed é is a decomposed one')
})

t.test('a weaker or older Argon2 hash verifies and asks for a rehash', async (t) => {
  const weaker = {
    'less memory': await hash(PASSWORD, { ...ARGON2_PARAMETERS, memoryCost: 8192 }),
    'fewer passes': await hash(PASSWORD, { ...ARGON2_PARAMETERS, timeCost: 1 }),
    // `Algorithm` is a const enum with no runtime object under tsx: 1 is Argon2i.
    argon2i: await hash(PASSWORD, { ...ARGON2_PARAMETERS, algorithm: 1 as Algorithm }),
  }
  t.match(weaker.argon2i, /^\$argon2i\$/)
  for (const [why, stored] of Object.entries(weaker)) {
    t.same(await verifyPassword(stored, PASSWORD), { ok: true, needsRehash: true }, why)
    t.same(await verifyPassword(stored, 'wrong password'), { ok: false, needsRehash: false }, `${why}: wrong password`)
  }
  const stronger = await hash(PASSWORD, { memoryCost: 32768, timeCost: 3, parallelism: 2 })
  t.same(await verifyPassword(stronger, PASSWORD), { ok: true, needsRehash: false }, 'stronger than today is not a rehash')
})

t.test('Werkzeug hashes from flask-securelogin verify and always ask for a rehash', async (t) => {
  for (const [format, stored] of Object.entries(WERKZEUG)) {
    t.same(await verifyPassword(stored, PASSWORD), { ok: true, needsRehash: true }, format)
    t.same(await verifyPassword(stored, PASSWORD.slice(0, -1)), { ok: false, needsRehash: false }, `${format}: wrong password`)
  }
})

t.test('Werkzeug hashes compare the password as typed, as Flask did', async (t) => {
  t.same(await verifyPassword(WERKZEUG_UNICODE, WERKZEUG_UNICODE_PASSWORD), { ok: true, needsRehash: true })
  t.notOk((await verifyPassword(WERKZEUG_UNICODE, WERKZEUG_UNICODE_PASSWORD.normalize('NFKC'))).ok, 'Flask never saw the NFKC form')
})

t.test('a changed Werkzeug hash does not verify', async (t) => {
  const [method, salt, hex] = WERKZEUG.pbkdf2Sha256At600k.split('$') as [string, string, string]
  const flipped = `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`
  t.notOk((await verifyPassword(`${method}$${salt}$${flipped}`, PASSWORD)).ok, 'another digest')
  t.notOk((await verifyPassword(`${method}$${salt}x$${hex}`, PASSWORD)).ok, 'another salt')
  t.notOk((await verifyPassword(`pbkdf2:sha256:600001$${salt}$${hex}`, PASSWORD)).ok, 'another count')
  t.notOk((await verifyPassword(`${method}$${salt}$${hex.toUpperCase()}`, PASSWORD)).ok, 'upper-case hex (Werkzeug compares the hex text)')
})

t.test('unreadable, unsupported and too costly stored values are refused at once', async (t) => {
  const salt = 'abcdefgh'
  const hex32 = '00'.repeat(32)
  const hex64 = '00'.repeat(64)
  const refused = {
    empty: '',
    'no separators': 'pbkdf2:sha256:600000',
    'one separator': `pbkdf2:sha256:600000$${salt}`,
    'unknown method': `bcrypt$${salt}$${hex32}`,
    // Werkzeug < 3.0 also read salted HMACs (`sha256$salt$hmac`); 3.0 removed them. This one, for
    // PASSWORD, was made with python3 hmac.new(salt, password, hashlib.sha256).hexdigest().
    'plain HMAC (removed in Werkzeug 3.0)': 'sha256$oldPlainSalt$6e398299e698c4d578f021611056c9ce19f53c0e2de2c4249dbebd038cf07657',
    'unknown digest': `pbkdf2:whirlpool:1000$${salt}$${hex32}`,
    'prototype key as digest': `pbkdf2:constructor:1000$${salt}$${hex32}`,
    'too many pbkdf2 arguments': `pbkdf2:sha256:1000:1$${salt}$${hex32}`,
    'zero iterations': `pbkdf2:sha256:0$${salt}$${hex32}`,
    'signed iterations': `pbkdf2:sha256:+1000$${salt}$${hex32}`,
    'exponent iterations': `pbkdf2:sha256:1e9$${salt}$${hex32}`,
    'empty iterations': `pbkdf2:sha256:$${salt}$${hex32}`,
    'ten million iterations': `pbkdf2:sha256:10000000$${salt}$${hex32}`,
    'huge iterations': `pbkdf2:sha512:99999999999999999999$${salt}$${hex64}`,
    'short digest': `pbkdf2:sha256:1000$${salt}$${'00'.repeat(31)}`,
    'non-hex digest': `pbkdf2:sha256:1000$${salt}$${'zz'.repeat(32)}`,
    // What notes §8 warns of: a Werkzeug 3 scrypt hash cut to flask-securelogin's String(128).
    'truncated scrypt': WERKZEUG.scrypt.slice(0, 128),
    'scrypt with two arguments': `scrypt:32768:8$${salt}$${hex64}`,
    'scrypt n not a power of two': `scrypt:30000:8:1$${salt}$${hex64}`,
    'scrypt n of 2^20 at r=8': `scrypt:1048576:8:1$${salt}$${hex64}`,
    'scrypt huge r*p': `scrypt:16384:1024:1024$${salt}$${hex64}`,
    'scrypt below Werkzeug\'s memory ceiling': `scrypt:2:1:1$${salt}$${hex64}`,
    'argon2 not PHC': '$argon2id$garbage',
    'argon2 4 TiB of memory': '$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'argon2 512 MiB of memory': '$argon2id$v=19$m=524288,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'argon2 a million passes': '$argon2id$v=19$m=19456,t=1000000,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'argon2 255 lanes': '$argon2id$v=19$m=19456,t=2,p=255$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'argon2 fewer blocks than lanes need': '$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  }
  // "At once" against this machine's own pace, not a fixed figure: a busy CI machine slows the
  // refusals and a real verification alike. Computing any of these would cost 13 times an
  // ordinary verification (the 512 MiB Argon2) up to hours; a refusal costs next to nothing.
  const ordinary = await hashPassword(PASSWORD)
  const verifications: number[] = []
  for (let i = 0; i < 3; i++) verifications.push(await elapsed(() => verifyPassword(ordinary, 'a guess')))
  const verification = median(verifications)
  const atOnce = Math.max(100, 5 * verification)
  for (const [why, stored] of Object.entries(refused)) {
    let answer: unknown
    const ms = await elapsed(async () => { answer = await verifyPassword(stored, PASSWORD) })
    t.same(answer, { ok: false, needsRehash: false }, why)
    t.ok(ms < atOnce, `${why}: answered in ${ms.toFixed(1)} ms (an ordinary verification: ${verification.toFixed(1)} ms)`)
  }
  t.same(await verifyPassword(null as unknown as string, PASSWORD), { ok: false, needsRehash: false }, 'a null column does not throw')
})

t.test('an unknown account costs what a wrong password costs', async (t) => {
  const stored = await hashPassword(PASSWORD)
  t.equal(await verifyAgainstDummyHash(PASSWORD), false)
  const dummy: number[] = []
  const real: number[] = []
  for (let i = 0; i < 7; i++) {
    dummy.push(await elapsed(() => verifyAgainstDummyHash('a guess')))
    real.push(await elapsed(() => verifyPassword(stored, 'a guess')))
  }
  const ratio = median(dummy) / median(real)
  t.ok(ratio > 0.5 && ratio < 2, `dummy ${median(dummy).toFixed(1)} ms, wrong password ${median(real).toFixed(1)} ms`)
})

t.test('the dummy hash is made once, even for concurrent first calls', async (t) => {
  const answers = await Promise.all(Array.from({ length: 4 }, () => verifyAgainstDummyHash('a guess')))
  t.same(answers, [false, false, false, false])
})

t.test('each cost bound lets in the cost it names', async (t) => {
  // What is at a bound verifies, so a bound cannot quietly move by one.
  const atBounds = {
    'argon2 256 MiB of memory (one pass: a rehash)': [await hash(PASSWORD, { memoryCost: 262_144, timeCost: 1, parallelism: 1 }), true],
    'argon2 memory times passes of 2^20': [await hash(PASSWORD, { memoryCost: 65_536, timeCost: 16, parallelism: 1 }), false],
    'argon2 16 lanes': [await hash(PASSWORD, { memoryCost: 19_456, timeCost: 2, parallelism: 16 }), false],
  } as const
  for (const [why, [stored, needsRehash]] of Object.entries(atBounds)) {
    t.same(await verifyPassword(stored, PASSWORD), { ok: true, needsRehash }, why)
  }
  // Werkzeug's format around hashlib's output (pbkdf2_hmac, scrypt with dklen=64), made here.
  const salt = 'boundSalt'
  const pbkdf2 = pbkdf2Sync(PASSWORD, salt, 2_000_000, 16, 'md5').toString('hex')
  t.same(await verifyPassword(`pbkdf2:md5:2000000$${salt}$${pbkdf2}`, PASSWORD), { ok: true, needsRehash: true }, 'pbkdf2 two million iterations')
  // n·r·p of 2^20 with p > 1, which also needs the memory ceiling to grow with p.
  const scrypt = scryptSync(PASSWORD, salt, 64, { N: 1024, r: 8, p: 128, maxmem: 132 * 1024 * 8 * 128 }).toString('hex')
  t.same(await verifyPassword(`scrypt:1024:8:128$${salt}$${scrypt}`, PASSWORD), { ok: true, needsRehash: true }, 'scrypt n·r·p of 2^20')
})

t.test('a right password under a malformed Werkzeug method is still refused', async (t) => {
  const [, scryptSalt, scryptHex] = WERKZEUG.scrypt.split('$') as [string, string, string]
  const [, pbkdf2Salt, pbkdf2Hex] = WERKZEUG.pbkdf2Sha256At600k.split('$') as [string, string, string]
  const refused = {
    'scrypt with four arguments': `scrypt:32768:8:1:1$${scryptSalt}$${scryptHex}`,
    'pbkdf2 with three arguments': `pbkdf2:sha256:600000:1$${pbkdf2Salt}$${pbkdf2Hex}`,
    // Counts Python's int() reads but no Werkzeug wrote; Number() reads them too.
    'signed count': `pbkdf2:sha256:+600000$${pbkdf2Salt}$${pbkdf2Hex}`,
    'count with a space after': `pbkdf2:sha256:600000 $${pbkdf2Salt}$${pbkdf2Hex}`,
    'count with a leading zero': `pbkdf2:sha256:0600000$${pbkdf2Salt}$${pbkdf2Hex}`,
    'scrypt n with a space before': `scrypt: 32768:8:1$${scryptSalt}$${scryptHex}`,
    // Buffer.from(…, 'hex') reads upper case and drops a last odd digit; Werkzeug compares the text.
    'upper-case scrypt hex': `scrypt:32768:8:1$${scryptSalt}$${scryptHex.toUpperCase()}`,
    'pbkdf2 hex with one digit more': `pbkdf2:sha256:600000$${pbkdf2Salt}$${pbkdf2Hex}0`,
    'scrypt hex with one digit more': `scrypt:32768:8:1$${scryptSalt}$${scryptHex}0`,
    // Werkzeug's default scrypt digest of the right password, under a method name it never wrote.
    'a scrypt digest under another method': WERKZEUG.scryptNoArguments.replace(/^scrypt\$/, 'bcrypt$'),
    // A real Argon2id hash of the right password, one lane past the bound (16 lanes verify above).
    'argon2 17 lanes': await hash(PASSWORD, { memoryCost: 19_456, timeCost: 2, parallelism: 17 }),
  }
  for (const [why, stored] of Object.entries(refused)) {
    t.same(await verifyPassword(stored, PASSWORD), { ok: false, needsRehash: false }, why)
  }
})

t.test('an Argon2id hash of version 0x10 verifies and asks for a rehash, with or without its v=', async (t) => {
  // `Version` is a const enum with no runtime object under tsx: 0 is 0x10.
  const v16 = await hash(PASSWORD, { ...ARGON2_PARAMETERS, version: 0 as Version })
  t.match(v16, /^\$argon2id\$v=16\$/)
  t.same(await verifyPassword(v16, PASSWORD), { ok: true, needsRehash: true }, 'v=16')
  // The PHC format reads a missing version as 0x10.
  t.same(await verifyPassword(v16.replace('v=16$', ''), PASSWORD), { ok: true, needsRehash: true }, 'no v=')
})
