import { pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

// Loaded on first use: its native addon adds about 7 MB to the RSS of every server that loads
// the plugin, and password accounts are off unless the app turns them on.
let argon2: Promise<typeof import('@node-rs/argon2')> | undefined
const loadArgon2 = () => (argon2 ??= import('@node-rs/argon2'))

/**
 * The Argon2id cost of every new password hash: OWASP's Password Storage Cheat Sheet first choice,
 * 19 MiB of memory (`m=19456` KiB), 2 passes (`t=2`), 1 lane (`p=1`).
 */
export const ARGON2_PARAMETERS = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 })

/** What {@link verifyPassword} found. */
export interface PasswordCheck {
  /** The password matches the stored hash. */
  ok: boolean
  /**
   * The password matched, and the stored hash is not Argon2id v19 with at least
   * {@link ARGON2_PARAMETERS} (always so for a Werkzeug hash): store `hashPassword(password)` instead.
   */
  needsRehash: boolean
}

const REFUSED: PasswordCheck = Object.freeze({ ok: false, needsRehash: false })

// Upper bounds on the cost a stored hash may ask for. The stored value is data, and a row written
// by a bug, a bad import or an attacker must not pin a thread for seconds or fill gigabytes of
// memory (Argon2 and scrypt allocate and write all the memory they are asked for). Each bound
// allows at least twice the largest cost any Werkzeug default or our own parameters ever used; the
// worst value each lets in takes about 0.7 s (scrypt), 1.1 s (Argon2) and 2.1 s (PBKDF2-SHA512) on
// a 2-core development machine.
const ARGON2_MAX_MEMORY_KIB = 262_144
const ARGON2_MAX_MEMORY_TIMES_PASSES = 1_048_576
const ARGON2_MAX_LANES = 16
const PBKDF2_MAX_ITERATIONS = 2_000_000
const SCRYPT_MAX_N_R_P = 1_048_576

// Werkzeug reads `pbkdf2:<digest>$…` (no count) with its current default, 1,000,000 since 3.1.
// No Werkzeug release ever wrote such a string (generate_password_hash always writes the count).
const WERKZEUG_DEFAULT_PBKDF2_ITERATIONS = 1_000_000

// hashlib digest names Werkzeug accepted in `pbkdf2:<digest>`, with the key length it derived
// (pbkdf2_hmac's default dklen is the digest size).
const PBKDF2_KEY_LENGTHS = new Map([['md5', 16], ['sha1', 20], ['sha224', 28], ['sha256', 32], ['sha384', 48], ['sha512', 64]])

const ARGON2_PHC = /^\$(argon2id|argon2i|argon2d)\$(?:v=(\d{1,3})\$)?m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/
const POSITIVE_INTEGER = /^[1-9]\d{0,9}$/

/**
 * An Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of the password after NFKC.
 *
 * Hashing normalises here as well as in `normalizePassword`, so that what is hashed never depends
 * on which caller remembered to normalise: login passes the password as typed (see {@link verifyPassword}).
 */
export async function hashPassword (password: string): Promise<string> {
  // The algorithm is left to the package's default (Argon2id, version 0x13): its `Algorithm` enum is a
  // `const enum` with no runtime value under tsx/esbuild. A test pins the prefix of the output.
  return await (await loadArgon2()).hash(password.normalize('NFKC'), ARGON2_PARAMETERS)
}

/**
 * Checks a password as typed at login against a stored hash: an Argon2 PHC string made by
 * {@link hashPassword}, or a Werkzeug `pbkdf2:…` or `scrypt:…` hash imported from flask-securelogin.
 * Never throws and never logs: an unknown, unparsable or too costly stored value is `ok: false`.
 *
 * Argon2 hashes compare the password after NFKC (as it was hashed); Werkzeug hashes compare it as
 * typed, because Flask hashed it without normalising. Do not apply the length policy at login:
 * Flask had none, and imported passwords may be shorter than 8 characters.
 *
 * @example
 * const { ok, needsRehash } = await verifyPassword(user.passwordHash, body.password)
 * if (ok && needsRehash) await savePasswordHash(user.id, await hashPassword(body.password))
 */
export async function verifyPassword (stored: string, password: string): Promise<PasswordCheck> {
  try {
    if (stored.startsWith('$argon2')) return await verifyArgon2(stored, password)
    return await verifyWerkzeug(stored, password)
  } catch {
    return REFUSED
  }
}

let dummyHash: Promise<string> | undefined

/**
 * Spends what verifying a wrong password costs, then answers `false`: call it when no account (or
 * no password) matches, so an unknown email answers as slowly as a known one. The hash of a random
 * password is made once, on first use, with the current {@link ARGON2_PARAMETERS}.
 */
export async function verifyAgainstDummyHash (password: string): Promise<false> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64url'))
  try {
    await verifyPassword(await dummyHash, password)
  } catch {
    dummyHash = undefined // making it failed: try again on the next call
  }
  return false
}

async function verifyArgon2 (stored: string, password: string): Promise<PasswordCheck> {
  const match = ARGON2_PHC.exec(stored)
  if (match === null) return REFUSED
  const [, algorithm, version = '16', m, t, p] = match
  const memory = Number(m)
  const passes = Number(t)
  const lanes = Number(p)
  if (memory > ARGON2_MAX_MEMORY_KIB || memory * passes > ARGON2_MAX_MEMORY_TIMES_PASSES || lanes > ARGON2_MAX_LANES) return REFUSED
  if (!await (await loadArgon2()).verify(stored, password.normalize('NFKC'))) return REFUSED
  const needsRehash = algorithm !== 'argon2id' || version !== '19' ||
    memory < ARGON2_PARAMETERS.memoryCost || passes < ARGON2_PARAMETERS.timeCost || lanes < ARGON2_PARAMETERS.parallelism
  return { ok: true, needsRehash }
}

// As Werkzeug's check_password_hash (pallets/werkzeug src/werkzeug/security.py, 0.9 to 3.1.8):
// `method$salt$hex` split on the first two `$`; the salt's UTF-8 text and the password's UTF-8 go
// into hashlib, and the key is compared as lower-case hex. The plain `sha256$salt$hmac` methods
// (deprecated in 2.3, removed in 3.0, never a default) are not read.
async function verifyWerkzeug (stored: string, password: string): Promise<PasswordCheck> {
  const firstDollar = stored.indexOf('$')
  const secondDollar = stored.indexOf('$', firstDollar + 1)
  if (firstDollar < 0 || secondDollar < 0) return REFUSED
  const [kind, ...args] = stored.slice(0, firstDollar).split(':')
  const salt = Buffer.from(stored.slice(firstDollar + 1, secondDollar), 'utf8')
  const expectedHex = stored.slice(secondDollar + 1)
  const secret = Buffer.from(password, 'utf8')

  let derived: Buffer
  if (kind === 'pbkdf2') {
    // `pbkdf2`, `pbkdf2:<digest>` and `pbkdf2:<digest>:<iterations>`.
    if (args.length > 2) return REFUSED
    const [digest = 'sha256', count] = args
    const keyLength = PBKDF2_KEY_LENGTHS.get(digest)
    const iterations = count === undefined ? WERKZEUG_DEFAULT_PBKDF2_ITERATIONS : parseCount(count)
    if (keyLength === undefined || iterations === undefined || iterations > PBKDF2_MAX_ITERATIONS) return REFUSED
    if (!isHexOfLength(expectedHex, keyLength)) return REFUSED
    derived = await derivePbkdf2(secret, salt, iterations, keyLength, digest)
  } else if (kind === 'scrypt') {
    // `scrypt` (Werkzeug's defaults) and `scrypt:<n>:<r>:<p>`.
    if (args.length !== 0 && args.length !== 3) return REFUSED
    const [n, r, p] = args.length === 0 ? [32768, 8, 1] : args.map(parseCount)
    if (n === undefined || r === undefined || p === undefined || n * r * p > SCRYPT_MAX_N_R_P) return REFUSED
    if (!isHexOfLength(expectedHex, 64)) return REFUSED
    // Werkzeug's own memory ceiling, so that exactly the parameters it could verify verify here.
    derived = await deriveScrypt(secret, salt, 64, { N: n, r, p, maxmem: 132 * n * r * p })
  } else {
    return REFUSED
  }
  const ok = timingSafeEqual(derived, Buffer.from(expectedHex, 'hex'))
  return { ok, needsRehash: ok }
}

// A plain decimal only: Python's int() also takes '+5', ' 5' and '5_000', but no Werkzeug wrote those.
function parseCount (text: string): number | undefined {
  return POSITIVE_INTEGER.test(text) ? Number(text) : undefined
}

function isHexOfLength (text: string, bytes: number): boolean {
  return text.length === bytes * 2 && /^[0-9a-f]+$/.test(text)
}

// The callback forms run on libuv's thread pool: the Sync variants would stop the event loop for
// the whole derivation (about 340 ms for Werkzeug's 1,000,000 PBKDF2 iterations).
function derivePbkdf2 (secret: Buffer, salt: Buffer, iterations: number, keyLength: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(secret, salt, iterations, keyLength, digest, (error, key) => error === null ? resolve(key) : reject(error))
  })
}

function deriveScrypt (secret: Buffer, salt: Buffer, keyLength: number, options: { N: number, r: number, p: number, maxmem: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyLength, options, (error, key) => error === null ? resolve(key) : reject(error))
  })
}
