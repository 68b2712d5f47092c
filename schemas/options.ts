import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto'
import { Kind, Type, TypeRegistry, type SchemaOptions, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { is } from 'drizzle-orm'
import { PgDatabase } from 'drizzle-orm/pg-core'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { BeforeSendFunction } from '../lib/challenges.js'
import type { ClaimsFunction } from '../lib/claims.js'
import type { SecureLoginEventHandler } from '../lib/events.js'
import { formatDuration, parseDuration, type Duration } from '../lib/duration.js'
import { isSupportedCountry, PHONE_NUMBER_TYPES, type CountryCode, type PhoneNumberType } from '../lib/phone.js'
import { estimateSecretBits, MIN_SECRET_BITS } from '../lib/secret-strength.js'
import { isVerifyingProvider, type SmsProvider } from '../lib/sms/types.js'

// The options of app.register(secureLogin, options), as a TypeBox schema: lib/options.ts checks the
// options against it and SecureLoginOptions is its Static type, so the JSDoc here is what users
// see on hover. Every object refuses unknown keys. Values that are not JSON (the database, the SMS
// provider, secrets, durations) are custom kinds: TypeBox calls their check with the value and
// never walks into it (a Drizzle database is large and circular).

/** Any Drizzle database made by drizzle-orm/better-sqlite3, drizzle-orm/node-postgres or drizzle-orm/pglite. */
export type SecureLoginDatabase = BaseSQLiteDatabase<'sync' | 'async', any, any> | PgDatabase<any, any, any>

/**
 * Why a value does not fit a custom kind, as the end of a sentence that starts with the option's
 * path ("must be …", "is required …"), or undefined when it fits. Never quotes a secret.
 */
type Refusal = (value: unknown, schema: TSchema) => string | undefined

const refusals = new Map<string, Refusal>()

function defineKind<T> (kind: string, refusal: Refusal): (options?: SchemaOptions) => TUnsafe<T> {
  refusals.set(kind, refusal)
  // TypeBox's registry is global: registering at import lets Value.Check(SecureLoginOptionsSchema, …) work in host apps too.
  if (!TypeRegistry.Has(kind)) TypeRegistry.Set(kind, (schema, value) => refusal(value, schema as TSchema) === undefined)
  return (options = {}) => Type.Unsafe<T>({ ...options, [Kind]: kind })
}

/** Why `value` does not fit `schema` when the schema is one of the custom kinds here, else undefined. */
export function refusalOf (schema: TSchema, value: unknown): string | undefined {
  return refusals.get(schema[Kind])?.(value, schema)
}

/** A value as a message may show it: scalars as written (strings cut short), anything else by kind. */
export function describeValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value)
  return describeKind(value)
}

/** What a value is, without showing it: for places where it may be a secret. */
export function describeKind (value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Uint8Array) return 'a Buffer'
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name
    return name === undefined || name === 'Object' ? 'an object' : `a ${name} object`
  }
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`
}

const Database = defineKind<SecureLoginDatabase>('SecureLoginDatabase', (value) =>
  is(value, BaseSQLiteDatabase) || is(value, PgDatabase)
    ? undefined
    : `must be a Drizzle database from drizzle-orm/better-sqlite3, drizzle-orm/node-postgres or drizzle-orm/pglite${value === undefined ? '' : ` (got ${describeKind(value)})`}`)

const SmsProviderKind = defineKind<SmsProvider>('SecureLoginSmsProvider', (value) => {
  if (typeof value !== 'object' || value === null) return 'is required: consoleSms(), twilioVerify(...), twilioMessaging(...) or an object with send()'
  if (isVerifyingProvider(value as SmsProvider) || typeof (value as { send?: unknown }).send === 'function') return undefined
  return 'must have an async send({ to, body, code }) method, or start() and check() methods'
})

const MIN_SECRET_BYTES = 32

const Secret = defineKind<string | Buffer | undefined>('SecureLoginSecret', (value) => {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    return `is required (a string or Buffer of at least ${MIN_SECRET_BYTES} bytes)${value === undefined ? '' : `; got ${describeKind(value)}`}`
  }
  const bytes = Buffer.from(value)
  if (bytes.length < MIN_SECRET_BYTES) return `must be at least ${MIN_SECRET_BYTES} bytes long (got ${bytes.length})`
  const bits = estimateSecretBits(typeof value === 'string' ? value : bytes)
  if (bits < MIN_SECRET_BITS) {
    return `is too weak: it looks written by a person, not made by a random generator (estimated ${Math.floor(bits)} bits of the ${MIN_SECRET_BITS} needed). ` +
      'Make one with: openssl rand -base64 48 (or: node -e "console.log(require(\'node:crypto\').randomBytes(48).toString(\'base64\'))")'
  }
  return undefined
})

const Country = defineKind<CountryCode>('SecureLoginCountry', (value) =>
  typeof value === 'string' && isSupportedCountry(value) ? undefined : `must be a two-letter country code such as 'US' (got ${describeValue(value)})`)

const NumberTypeKind = defineKind<PhoneNumberType>('SecureLoginNumberType', (value) =>
  typeof value === 'string' && (PHONE_NUMBER_TYPES as readonly string[]).includes(value) ? undefined : `must be one of ${PHONE_NUMBER_TYPES.join(', ')} (got ${describeValue(value)})`)

const Origin = defineKind<string>('SecureLoginOrigin', (value) => {
  if (typeof value === 'string' && URL.canParse(value)) {
    const url = new URL(value)
    if ((url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value) return undefined
  }
  return `must be an origin such as 'https://app.example.com': scheme, host and port only, no path or trailing slash (got ${describeValue(value)})`
})

/** Whether `read` parses `value` without throwing. */
function parses (read: (value: string) => unknown, value: string): boolean {
  try {
    read(value)
    return true
  } catch {
    return false
  }
}

// A key of `jwt.keys`: PEM or a KeyObject of the expected type. Messages never quote key material.
// Whether the pair matches and fits `alg` is checked once both are known (lib/keys.ts).
const AsymmetricKey = defineKind<string | KeyObject>('SecureLoginAsymmetricKey', (value, schema) => {
  const wanted = schema.keyType as 'private' | 'public'
  if (value instanceof KeyObject) return value.type === wanted ? undefined : `must be a ${wanted} key (got a ${value.type} KeyObject)`
  if (typeof value !== 'string') return `must be a ${wanted} key in PEM or a KeyObject (got ${describeKind(value)})`
  if (wanted === 'private') return parses(createPrivateKey, value) ? undefined : 'must be an unencrypted private key in PEM ("-----BEGIN PRIVATE KEY-----") or a KeyObject; this one could not be read'
  if (parses(createPrivateKey, value)) return 'must be the public key: a private key was given'
  return parses(createPublicKey, value) ? undefined : 'must be a public key in PEM ("-----BEGIN PUBLIC KEY-----") or a KeyObject; this one could not be read'
})

const DURATION_HINT = "Durations are seconds or strings like '10m'"

const DurationKind = defineKind<Duration>('SecureLoginDuration', (value, schema) => {
  if (value === undefined) return "is required: seconds or a duration such as '10m'"
  const ms = parseDuration(value)
  if (ms === undefined) return `must be a positive number of seconds or a duration such as '10m' (got ${describeValue(value)})`
  const seconds = `${value} ${value === 1 ? 'second' : 'seconds'}`
  const read = typeof value !== 'number' ? `${describeValue(value)} (${formatDuration(ms)})` : formatDuration(ms) === seconds ? seconds : `${seconds} (${formatDuration(ms)})`
  if (ms < schema.minimumMs) return `must be at least ${formatDuration(schema.minimumMs)}; got ${read}. ${DURATION_HINT}`
  if (ms > schema.maximumMs) return `must be at most ${formatDuration(schema.maximumMs)}; got ${read}. ${DURATION_HINT}`
  return undefined
})

/** A {@link Duration} from `min` to `max` (both written as durations). */
function DurationBetween (min: string, max: string, options: SchemaOptions = {}) {
  return DurationKind({ ...options, minimumMs: parseDuration(min), maximumMs: parseDuration(max) })
}

/** A function option: checked to be a function, typed as `T`. */
function FunctionOf<T> (errorMessage: string) {
  return Type.Unsafe<T>(Type.Function([], Type.Unknown(), { errorMessage }))
}

/** The longest window a rate-limit rule may have: a counter older than this counts for nothing. */
export const LONGEST_RATE_LIMIT_WINDOW = '7d'

/** The longest lifetime an access token may have: a session ended longer ago has no token left to check. */
export const LONGEST_ACCESS_TOKEN_TTL = '1d'

/** The shortest code lifetime and the longest resend interval: a code's row may hold its cooldown this long after the code expired. */
export const SHORTEST_OTP_TTL = '1s'
export const LONGEST_RESEND_INTERVAL = '1h'

export const RateLimitRuleSchema = Type.Object({
  /** Requests allowed per window, 1 to 1,000,000. */
  max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** The window length, 1 second to 7 days. */
  window: DurationBetween('1s', LONGEST_RATE_LIMIT_WINDOW),
}, { additionalProperties: false })

/** One rule, or a list of them (e.g. an hourly and a daily cap), all of which apply. */
function RateLimitRule (defaults: { max: number, window: Duration } | Array<{ max: number, window: Duration }>) {
  const rule = Type.Object(RateLimitRuleSchema.properties, { additionalProperties: false })
  return Type.Optional(Type.Union([rule, Type.Array(rule, { minItems: 1, maxItems: 8 })], { default: defaults }))
}

/** One key pair of `jwt.keys`. */
export const JwtKeySchema = Type.Object({
  /** The key's id, in each token's header and in the key set: 1 to 64 letters, digits, `.`, `_`, `~`, `:` or `-`, unique in the list. */
  kid: Type.String({ pattern: '^[A-Za-z0-9._~:-]{1,64}$', errorMessage: "must be 1 to 64 letters, digits, '.', '_', '~', ':' or '-', such as '2025-06'" }),
  /** The signature algorithm, which the key must fit: `'EdDSA'` (an Ed25519 key), `'ES256'` (P-256) or `'RS256'` (RSA of at least 2048 bits). */
  alg: Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256'), Type.Literal('RS256')]),
  /** The private key, in PEM or as a `KeyObject`; never published. */
  privateKey: AsymmetricKey({ keyType: 'private' }),
  /** The public key of the same pair, in PEM or as a `KeyObject`. */
  publicKey: AsymmetricKey({ keyType: 'public' }),
}, { additionalProperties: false })

const JwtOptions = Type.Object({
  /**
   * The HS256 key of access tokens (unless `keys` is set), and the root of the keys derived from
   * it (refresh tokens, code hashes): random bytes, as a Buffer or a string (base64 or hex): at
   * least 32 bytes, and text that reads as written by a person (words, names, dates, repeats) is
   * refused however long. Required with `keys` too. Other services holding it can verify HS256
   * access tokens. Typed to accept `process.env.JWT_SECRET` directly: a missing one fails at
   * registration.
   * @example secret: process.env.JWT_SECRET // openssl rand -base64 48
   */
  secret: Secret(),
  /**
   * Lifetime of an access token: seconds, or a string such as `'10m'`; 1 second to 1 day.
   * @default '10m'
   */
  accessTokenTtl: Type.Optional(DurationBetween('1s', LONGEST_ACCESS_TOKEN_TTL, { default: '10m' })),
  /**
   * Lifetime of a session; a refresh token never outlives its session. 1 minute to 1 year, and
   * not shorter than `accessTokenTtl`.
   * @default '60d'
   */
  refreshTokenTtl: Type.Optional(DurationBetween('1m', '1y', { default: '60d' })),
  /**
   * Set and required as the `iss` claim when given; a non-empty string.
   * @default undefined (no `iss` claim)
   */
  issuer: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * Set and required as the `aud` claim when given; a non-empty string.
   * @default undefined (no `aud` claim)
   */
  audience: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * Extra claims for a user's access tokens, computed at sign-in and at each refresh (roles,
   * tenant…). Type them by merging into `SecureLoginClaims`; they appear on `request.user`.
   * @default undefined (no extra claims)
   * @example claims: async ({ userid }) => ({ roles: await rolesOf(userid) })
   */
  claims: Type.Optional(FunctionOf<ClaimsFunction>('must be a function (user, request) => claims (or a promise of them)')),
  /**
   * Name of this plugin's @fastify/jwt instance when the app registered @fastify/jwt itself:
   * ours is then `fastify.jwt[namespace]`. Letters and digits, starting with a letter.
   * @default 'securelogin'
   */
  namespace: Type.Optional(Type.String({
    pattern: '^[A-Za-z][A-Za-z0-9]*$',
    default: 'securelogin',
    errorMessage: "must be letters and digits starting with a letter, such as 'securelogin'",
  })),
  /**
   * Asymmetric keys for access tokens instead of HS256 with `secret`: the first signs (its `kid`
   * goes in each token's header), every one verifies, and their public halves are published at
   * `GET {prefix}/.well-known/jwks.json`. To rotate, put the new key first; drop the old one
   * after one `accessTokenTtl`. Refresh tokens keep their HMAC key derived from `secret`.
   * @default undefined (HS256 access tokens signed with `secret`; an empty key set)
   * @example keys: [{ kid: '2025-06', alg: 'EdDSA', privateKey: process.env.JWT_PRIVATE_KEY!, publicKey: process.env.JWT_PUBLIC_KEY! }]
   */
  keys: Type.Optional(Type.Array(JwtKeySchema, { minItems: 1, errorMessage: 'must be a non-empty array of { kid, alg, privateKey, publicKey } (leave it out for HS256 access tokens)' })),
}, { additionalProperties: false })

const OtpOptions = Type.Object({
  /**
   * Digits in a code, 4 to 10.
   * @default 6
   */
  length: Type.Optional(Type.Integer({ minimum: 4, maximum: 10, default: 6 })),
  /**
   * How long a code is valid, 1 second to 1 hour.
   * @default '10m'
   */
  ttl: Type.Optional(DurationBetween(SHORTEST_OTP_TTL, '1h', { default: '10m' })),
  /**
   * Wrong codes allowed per code sent, 1 to 10.
   * @default 5
   */
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 5 })),
  /**
   * Minimum time between two codes to one number, 1 millisecond to 1 hour.
   * @default '30s'
   */
  resendInterval: Type.Optional(DurationBetween('1ms', LONGEST_RESEND_INTERVAL, { default: '30s' })),
  /**
   * The text sent; gets the code and its lifetime in minutes.
   * @default ({ code, ttlMinutes }) => `${code} is your login code. It expires in ${ttlMinutes} minutes. Never share it.`
   */
  message: Type.Optional(FunctionOf<(args: { code: string, ttlMinutes: number }) => string>('must be a function ({ code, ttlMinutes }) => string')),
  /**
   * Key for hashing codes and deriving account ids; same rules as `jwt.secret`, and not equal to it.
   * @default derived from `jwt.secret` with HKDF
   */
  hashKey: Type.Optional(Secret()),
}, { additionalProperties: false })

const RateLimitOptions = Type.Object({
  /**
   * Codes sent to one number: an hourly and a daily cap. Counted only for the request that
   * actually opens a code, so refused requests never spend the owner's allowance.
   * @default [{ max: 5, window: '1h' }, { max: 10, window: '1d' }]
   */
  sendsPerPhone: RateLimitRule([{ max: 5, window: '1h' }, { max: 10, window: '1d' }]),
  /**
   * Codes requested from one client IP (IPv6 per /64, and per /56 and /48 with 4 and 16 times the budget).
   * @default { max: 20, window: '1h' }
   */
  sendsPerIp: RateLimitRule({ max: 20, window: '1h' }),
  /**
   * Codes sent to numbers that share all but their last 3 digits: SMS pumping walks runs of
   * sequential numbers.
   * @default { max: 20, window: '1h' }
   */
  sendsPerPrefix: RateLimitRule({ max: 20, window: '1h' }),
  /**
   * Every code of the app, whatever the number: a cap on the SMS bill. Once spent, `/login` answers
   * 503 `SECURELOGIN_SMS_BUDGET_EXHAUSTED` until the window ends.
   * @default { max: 1000, window: '1h' }
   */
  sendsGlobal: RateLimitRule({ max: 1000, window: '1h' }),
  /**
   * Wrong codes for one number, across every code sent to it. Once spent, the number is locked:
   * verify_sms answers 429 `SECURELOGIN_PHONE_LOCKED` even for the right code, and no code is sent.
   * @default { max: 10, window: '1d' }
   */
  failedVerifiesPerPhone: RateLimitRule({ max: 10, window: '1d' }),
  /**
   * Codes checked from one client IP.
   * @default { max: 100, window: '1h' }
   */
  verifiesPerIp: RateLimitRule({ max: 100, window: '1h' }),
  /**
   * Registrations from one client IP.
   * @default { max: 20, window: '1h' }
   */
  registersPerIp: RateLimitRule({ max: 20, window: '1h' }),
  /**
   * Wrong passwords for one email (with `password.enabled`), at /login and at /password, counted
   * in a sliding window whether or not the email has an account. Once spent, sign-in with that
   * email answers 429 `SECURELOGIN_LOGIN_LOCKED`, even with the right password, until the oldest
   * failure is a window old. At most 100 (NIST SP 800-63B).
   * @default { max: 10, window: '1h' }
   */
  failedLoginsPerAccount: RateLimitRule({ max: 10, window: '1h' }),
  /**
   * Password sign-ins tried from one client IP, right or wrong (IPv6 per /64, /56 and /48 as `sendsPerIp`).
   * @default { max: 100, window: '1h' }
   */
  loginsPerIp: RateLimitRule({ max: 100, window: '1h' }),
}, { additionalProperties: false })

/** Whether a password is known from breaches; see `password.isBreached`. */
export type IsBreachedFunction = (password: string) => boolean | Promise<boolean>

const PasswordOptions = Type.Object({
  /**
   * Email-and-password accounts (the Flask library's `auth_type: "PASSWORD"`) at /register,
   * /login and /password. Off: those requests answer 400 `SECURELOGIN_PASSWORD_DISABLED`.
   * @default false
   */
  enabled: Type.Optional(Type.Boolean({ default: false })),
  /**
   * Called with every new password (after NFKC) at /register and /password; `true` refuses it
   * with 400 `SECURELOGIN_PASSWORD_BREACHED`. A thrown error is the app's error (the request
   * fails, nothing is stored). docs/security.md shows a k-anonymity check against Have I Been Pwned.
   * @default undefined
   */
  isBreached: Type.Optional(FunctionOf<IsBreachedFunction>('must be a function (password) => boolean (or a promise of one)')),
}, { additionalProperties: false })

const CookieOptions = Type.Object({
  /**
   * Where the access token goes: only in the JSON answer (`'body'`), or also in an HttpOnly cookie (`'cookie'`).
   * @default 'body'
   */
  accessToken: Type.Optional(Type.Union([Type.Literal('body'), Type.Literal('cookie')], { default: 'body' })),
  /**
   * The cookies' `Secure` attribute. Turn it off only for plain-http development.
   * @default true
   */
  secure: Type.Optional(Type.Boolean({ default: true })),
  /**
   * The cookies' `SameSite` attribute.
   * @default 'strict'
   */
  sameSite: Type.Optional(Type.Union([Type.Literal('strict'), Type.Literal('lax')], { default: 'strict' })),
  /**
   * The cookies' `Domain` attribute, e.g. `'example.com'` to share them with subdomains.
   * @default undefined (host-only cookies)
   */
  // Labels of 1 to 63 letters, digits and inner hyphens, and at least two of them: a cookie for a
  // bare top-level domain is dropped by browsers.
  domain: Type.Optional(Type.String({ pattern: '^\\.?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$', errorMessage: "must be a host name such as 'example.com'" })),
  /**
   * Origins, besides the app's own, allowed to use the cookie transport.
   * @default undefined (only the app's own origin)
   * @example allowedOrigins: ['https://app.example.com']
   */
  allowedOrigins: Type.Optional(Type.Array(Origin())),
}, { additionalProperties: false })

const PostgresOptions = Type.Object({
  /**
   * Names the plugin's prepared statements, so that the server parses and plans each once per
   * connection instead of on every call (on postgres.js: `prepare: true`). Needs a direct
   * connection, session pooling, or a transaction pooler that keeps named statements per client
   * (PgBouncer 1.21 or later with `max_prepared_statements` above 0): behind an older transaction
   * pooler a named statement is missing from the next server connection and the call fails.
   * @default false
   */
  namedStatements: Type.Optional(Type.Boolean({ default: false })),
}, { additionalProperties: false })

const SessionOptions = Type.Object({
  /**
   * How long after a rotation the refresh token it replaced is answered 409
   * `SECURELOGIN_REFRESH_SUPERSEDED` ("use the newer one": two tabs racing) instead of ending the
   * session as a reused token. 1 second to 5 minutes.
   * @default '10s'
   */
  reuseGrace: Type.Optional(DurationBetween('1s', '5m', { default: '10s' })),
  /**
   * A session whose last refresh (or sign-in) is older than this cannot be refreshed any more:
   * 401 `SECURELOGIN_SESSION_EXPIRED`. 1 minute to 1 year.
   * @default '30d'
   */
  idleTimeout: Type.Optional(DurationBetween('1m', '1y', { default: '30d' })),
}, { additionalProperties: false })

/**
 * The options of `app.register(secureLogin, options)`. Unknown keys are refused.
 * @example
 * await app.register(secureLogin, {
 *   db: drizzle(new Database('app.db')),
 *   sms: consoleSms(),
 *   jwt: { secret: process.env.JWT_SECRET },
 * })
 */
export const SecureLoginOptionsSchema = Type.Object({
  /** The Drizzle database holding the plugin's tables. */
  db: Database(),
  /** Delivers codes: `consoleSms()`, a Twilio provider, or any object with `send` (or `start`/`check`). */
  sms: SmsProviderKind(),
  /** Signing and lifetimes of the tokens. */
  jwt: JwtOptions,
  /**
   * Where the routes live: `''` or a path starting with `/`.
   * @default '/api/auth'
   */
  // Also the refresh cookie's Path: only characters a cookie path and a route take as they are.
  prefix: Type.Optional(Type.String({ pattern: '^(/[A-Za-z0-9._~-]*)*$', default: '/api/auth', errorMessage: 'must be a path starting with /, of letters, digits, . _ ~ and -' })),
  /**
   * Bring the plugin's tables up to date at startup from the SQL files in `migrations/`.
   * @default true
   */
  migrate: Type.Optional(Type.Boolean({ default: true })),
  /**
   * Country assumed for numbers typed without `+country`, e.g. `'US'`.
   * @default undefined (numbers must be in international form)
   */
  defaultCountry: Type.Optional(Country()),
  /**
   * The countries whose numbers may register and sign in; others get 400
   * `SECURELOGIN_PHONE_COUNTRY_NOT_ALLOWED` and no SMS. Numbers of no country (satellite and
   * international networks such as +870, +881, +882, +883, and +800, +808, +979) never may.
   * @default undefined (every country)
   * @example allowedCountries: ['US', 'CA']
   */
  allowedCountries: Type.Optional(Type.Array(Country(), { minItems: 1 })),
  /**
   * The kinds of number that may register and sign in (libphonenumber-js's full metadata tells
   * them apart); others get 400 `SECURELOGIN_PHONE_TYPE_NOT_ALLOWED` and no SMS.
   * @default ['MOBILE', 'FIXED_LINE_OR_MOBILE', 'VOIP', 'PERSONAL_NUMBER']
   */
  numberTypes: Type.Optional(Type.Array(NumberTypeKind(), { minItems: 1 })),
  /**
   * The app's audit trail: called after each sign-in step with `{ type, at, ip, userid?, sid?,
   * phone (masked), reason? }` (`otp.sent`, `otp.failed`, `otp.locked`, `sms.failed`, `login`,
   * `refresh`, `refresh.reuse`, `logout`, `limit`, `budget.exhausted`). Never awaited on the
   * request's path; a throwing or slow handler is logged and changes nothing.
   * @default undefined
   * @example onEvent: (event) => auditLog.insert(event)
   */
  onEvent: Type.Optional(FunctionOf<SecureLoginEventHandler>('must be a function (event) => void (or a promise)')),
  /**
   * How accounts come to be. `'register'`: an explicit `/register` first; a number without an
   * account gets the same answer from `/login` and no SMS. `'on-verify'`: `/login` texts a code to
   * any number the app serves, and the first successful verify_sms makes the account (answering as
   * for an existing one).
   * @default 'register'
   */
  signUp: Type.Optional(Type.Union([Type.Literal('register'), Type.Literal('on-verify')], { default: 'register', errorMessage: "must be 'register' or 'on-verify'" })),
  /**
   * When the SMS vendor is called. `'background'`: `/login` answers at once and the vendor is called
   * after, so the answer (status, body and time) is the same for numbers with and without an
   * account; a failed send withdraws the code and is logged. `'await'`: `/login` waits for the
   * vendor and answers 502/504 when it fails, which tells a caller that the number has an account.
   * @default 'background'
   */
  smsDelivery: Type.Optional(Type.Union([Type.Literal('background'), Type.Literal('await')], { default: 'background', errorMessage: "must be 'background' or 'await'" })),
  /**
   * Runs before a code is sent (and before it counts against the number): the app's CAPTCHA check,
   * risk score or SIM-swap test. `false` answers 403 `SECURELOGIN_SEND_REFUSED` and sends nothing;
   * a thrown error is the app's error. Called for numbers with and without an account alike.
   * @default undefined
   * @example beforeSend: async (request) => verifyTurnstile(request.headers['cf-turnstile-response'])
   */
  beforeSend: Type.Optional(FunctionOf<BeforeSendFunction>('must be a function (request, phone) => boolean (or a promise of one)')),
  /**
   * Numbers (E.164) that get no SMS and sign in with a fixed code: app-store review accounts and
   * end-to-end tests. Every limit and lockout still applies. Refused at startup when
   * `NODE_ENV=production` unless `allowTestNumbersInProduction` is true.
   * @default undefined
   * @example testNumbers: { '+15555550100': '123456' }
   */
  testNumbers: Type.Optional(Type.Record(Type.String(), Type.String({ pattern: '^[0-9]{4,10}$', errorMessage: 'must be a code of 4 to 10 digits' }))),
  /**
   * Lets `testNumbers` run with `NODE_ENV=production` (app-store review accounts); a warning is
   * logged at every start.
   * @default false
   */
  allowTestNumbersInProduction: Type.Optional(Type.Boolean({ default: false })),
  /** The codes sent by SMS. */
  otp: Type.Optional(OtpOptions),
  /**
   * Limits on sending and checking codes, shared by every instance through the database. `false`
   * turns every limit off (for tests; a warning is logged at start).
   */
  rateLimit: Type.Optional(Type.Union([Type.Literal(false), RateLimitOptions])),
  /**
   * Cookie transport for browser apps: the refresh token in an HttpOnly cookie (and the access
   * token too with `accessToken: 'cookie'`). `true` means every default.
   * @default false
   * @example cookies: { allowedOrigins: ['https://app.example.com'] }
   */
  cookies: Type.Optional(Type.Union([Type.Boolean(), CookieOptions], { default: false })),
  /** Refresh reuse and idle sessions. */
  sessions: Type.Optional(SessionOptions),
  /** Email-and-password accounts, off by default. */
  password: Type.Optional(PasswordOptions),
  /**
   * Revoked sessions are refused by `authenticate` on every instance within this bound, 100 ms to 1 minute.
   * @default '5s'
   */
  revocationMaxDelay: Type.Optional(DurationBetween('100ms', '1m', { default: '5s' })),
  /**
   * How often every instance deletes expired codes, ended sessions, stale counters and accounts
   * past `unverifiedAccountTtl` (in batches of 1,000 rows), 1 second to 1 day; the first run comes
   * within a minute of start. `false`: never (run the exported
   * `purgeExpired(db)` from your own scheduler instead).
   * @default '1h'
   */
  purgeInterval: Type.Optional(Type.Union([Type.Literal(false), DurationBetween('1s', '1d')], { default: '1h', errorMessage: "must be false or a duration from 1 second to 1 day, such as '1h'" })),
  /**
   * Accounts that never proved their number (registered, never signed in) are deleted this long
   * after registration by the purge, so `/register` cannot grow the users table without bound.
   * 1 hour to 1 year, or `false` to keep them.
   * @default '7d'
   */
  unverifiedAccountTtl: Type.Optional(Type.Union([Type.Literal(false), DurationBetween('1h', '1y')], { default: '7d', errorMessage: "must be false or a duration from 1 hour to 1 year, such as '7d'" })),
  /**
   * Bound on one database call of the plugin, 100 ms to 1 minute: past it (a database that hangs,
   * a pool with no free connection) the request is answered 503 SECURELOGIN_UNAVAILABLE.
   * @default '5s'
   */
  dbTimeout: Type.Optional(DurationBetween('100ms', '1m', { default: '5s' })),
  /** PostgreSQL only (ignored on SQLite). */
  postgres: Type.Optional(PostgresOptions),
  /**
   * Bound on one SMS vendor call, 1 second to 2 minutes.
   * @default '10s'
   */
  smsTimeout: Type.Optional(DurationBetween('100ms', '2m', { default: '10s' })),
}, { additionalProperties: false, title: 'SecureLoginOptions' })
