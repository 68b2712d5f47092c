import { Kind, Type, TypeRegistry, type SchemaOptions, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { is } from 'drizzle-orm'
import { PgDatabase } from 'drizzle-orm/pg-core'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import type { ClaimsFunction } from '../lib/claims.js'
import { formatDuration, parseDuration, type Duration } from '../lib/duration.js'
import { isSupportedCountry, type CountryCode } from '../lib/phone.js'
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
  if (new Set(bytes).size < 8) return 'is too weak: use random bytes, e.g. openssl rand -base64 48'
  return undefined
})

const Country = defineKind<CountryCode>('SecureLoginCountry', (value) =>
  typeof value === 'string' && isSupportedCountry(value) ? undefined : `must be a two-letter country code such as 'US' (got ${describeValue(value)})`)

const Origin = defineKind<string>('SecureLoginOrigin', (value) => {
  if (typeof value === 'string' && URL.canParse(value)) {
    const url = new URL(value)
    if ((url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value) return undefined
  }
  return `must be an origin such as 'https://app.example.com': scheme, host and port only, no path or trailing slash (got ${describeValue(value)})`
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

export const RateLimitRuleSchema = Type.Object({
  /** Requests allowed per window, 1 to 1,000,000. */
  max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** The window length, 1 second to 7 days. */
  window: DurationBetween('1s', '7d'),
}, { additionalProperties: false })

function RateLimitRule (defaults: { max: number, window: Duration }) {
  return Type.Optional(Type.Object(RateLimitRuleSchema.properties, { additionalProperties: false, default: defaults }))
}

const JwtOptions = Type.Object({
  /**
   * The HS256 key: a string or Buffer of at least 32 bytes with at least 8 distinct byte values.
   * Other services holding it can verify access tokens. Typed to accept `process.env.JWT_SECRET`
   * directly: a missing one fails at registration.
   * @example secret: process.env.JWT_SECRET // openssl rand -base64 48
   */
  secret: Secret(),
  /**
   * Lifetime of an access token: seconds, or a string such as `'10m'`; 1 second to 1 day.
   * @default '10m'
   */
  accessTokenTtl: Type.Optional(DurationBetween('1s', '1d', { default: '10m' })),
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
}, { additionalProperties: false })

const OtpOptions = Type.Object({
  /**
   * Digits in a code, 4 to 10.
   * @default 6
   */
  length: Type.Optional(Type.Integer({ minimum: 4, maximum: 10, default: 6 })),
  /**
   * How long a code is valid, 30 seconds to 1 hour.
   * @default '10m'
   */
  ttl: Type.Optional(DurationBetween('1s', '1h', { default: '10m' })),
  /**
   * Wrong codes allowed per code sent, 1 to 10.
   * @default 5
   */
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 5 })),
  /**
   * Minimum time between two codes to one number, 1 second to 1 hour.
   * @default '30s'
   */
  resendInterval: Type.Optional(DurationBetween('1ms', '1h', { default: '30s' })),
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
   * Codes sent to one number.
   * @default { max: 5, window: '1h' }
   */
  sendsPerPhone: RateLimitRule({ max: 5, window: '1h' }),
  /**
   * Codes requested from one client IP.
   * @default { max: 20, window: '1h' }
   */
  sendsPerIp: RateLimitRule({ max: 20, window: '1h' }),
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
  /** The codes sent by SMS. */
  otp: Type.Optional(OtpOptions),
  /** Limits on sending and checking codes, shared by every instance through the database. */
  rateLimit: Type.Optional(RateLimitOptions),
  /**
   * Cookie transport for browser apps: the refresh token in an HttpOnly cookie (and the access
   * token too with `accessToken: 'cookie'`). `true` means every default.
   * @default false
   * @example cookies: { allowedOrigins: ['https://app.example.com'] }
   */
  cookies: Type.Optional(Type.Union([Type.Boolean(), CookieOptions], { default: false })),
  /**
   * Revoked sessions are refused by `authenticate` on every instance within this bound, 100 ms to 1 minute.
   * @default '5s'
   */
  revocationMaxDelay: Type.Optional(DurationBetween('100ms', '1m', { default: '5s' })),
  /**
   * Bound on one SMS vendor call, 1 second to 2 minutes.
   * @default '10s'
   */
  smsTimeout: Type.Optional(DurationBetween('100ms', '2m', { default: '10s' })),
}, { additionalProperties: false, title: 'SecureLoginOptions' })
