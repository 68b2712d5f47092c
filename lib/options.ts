import { is } from 'drizzle-orm'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import { PgDatabase } from 'drizzle-orm/pg-core'
import { isSupportedCountry, type CountryCode } from './phone.js'
import { toMilliseconds, type Duration } from './duration.js'
import type { SmsProvider } from './sms/types.js'
import { isVerifyingProvider } from './sms/types.js'

/** Any Drizzle database made by drizzle-orm/better-sqlite3, drizzle-orm/node-postgres or drizzle-orm/pglite. */
export type SecureLoginDatabase = BaseSQLiteDatabase<'sync' | 'async', any, any> | PgDatabase<any, any, any>

export interface RateLimitRule {
  /** Requests allowed per window. */
  max: number
  /** The window length. */
  window: Duration
}

export interface SecureLoginOptions {
  /** The Drizzle database holding the plugin's tables. */
  db: SecureLoginDatabase
  /** Delivers codes: `consoleSms()`, a Twilio provider, or any object with `send` (or `start`/`check`). */
  sms: SmsProvider
  /**
   * Where the routes live.
   * @default '/api/auth'
   */
  prefix?: string
  /**
   * Bring the plugin's tables up to date at startup from the SQL files in `migrations/`.
   * @default true
   */
  migrate?: boolean
  /**
   * Country assumed for numbers typed without `+country`, e.g. `'US'`.
   * @default undefined (numbers must be in international form)
   */
  defaultCountry?: CountryCode
  jwt: {
    /**
     * The HS256 key, at least 32 bytes. Other services holding it can verify access tokens.
     * Typed to accept `process.env.JWT_SECRET` directly: a missing one fails at registration.
     */
    secret: string | Buffer | undefined
    /** @default '10m' */
    accessTokenTtl?: Duration
    /** Lifetime of a session; a refresh token never outlives its session. @default '60d' */
    refreshTokenTtl?: Duration
    /** Set and required as the `iss` claim when given. */
    issuer?: string
    /** Set and required as the `aud` claim when given. */
    audience?: string
  }
  otp?: {
    /** Digits in a code (4 to 10). @default 6 */
    length?: number
    /** How long a code is valid. @default '10m' */
    ttl?: Duration
    /** Wrong codes allowed per code sent (1 to 10). @default 5 */
    maxAttempts?: number
    /** Minimum time between two codes to one number. @default '30s' */
    resendInterval?: Duration
    /** The text sent; gets the code and its lifetime in minutes. */
    message?: (args: { code: string, ttlMinutes: number }) => string
    /** Key for hashing codes. @default derived from `jwt.secret` with HKDF */
    hashKey?: string | Buffer
  }
  /** Limits on sending and checking codes, shared by every instance through the database. */
  rateLimit?: {
    /** Codes sent to one number. @default { max: 5, window: '1h' } */
    sendsPerPhone?: RateLimitRule
    /** Codes requested from one client IP. @default { max: 20, window: '1h' } */
    sendsPerIp?: RateLimitRule
    /** Codes checked from one client IP. @default { max: 100, window: '1h' } */
    verifiesPerIp?: RateLimitRule
    /** Registrations from one client IP. @default { max: 20, window: '1h' } */
    registersPerIp?: RateLimitRule
  }
  /** Revoked sessions are refused by `authenticate` on every instance within this bound. @default '5s' */
  revocationMaxDelay?: Duration
  /** Bound on one SMS vendor call. @default '10s' */
  smsTimeout?: Duration
}

export interface ResolvedRateLimitRule { max: number, windowMs: number }

export interface ResolvedOptions {
  db: SecureLoginDatabase
  dialect: 'sqlite' | 'postgres'
  sms: SmsProvider
  smsVerifies: boolean
  prefix: string
  migrate: boolean
  defaultCountry: CountryCode | undefined
  jwtSecret: Buffer
  issuer: string | undefined
  audience: string | undefined
  accessTokenTtlMs: number
  refreshTokenTtlMs: number
  otpLength: number
  otpTtlMs: number
  otpMaxAttempts: number
  otpResendIntervalMs: number
  otpMessage: (args: { code: string, ttlMinutes: number }) => string
  otpHashKey: Buffer | undefined
  rateLimit: { sendsPerPhone: ResolvedRateLimitRule, sendsPerIp: ResolvedRateLimitRule, verifiesPerIp: ResolvedRateLimitRule, registersPerIp: ResolvedRateLimitRule }
  revocationMaxDelayMs: number
  smsTimeoutMs: number
}

const MIN_SECRET_BYTES = 32

function fail (message: string): never {
  throw new TypeError(`fastify-securelogin: ${message}`)
}

function integerIn (value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`)
  }
  return value
}

function duration (value: Duration | undefined, name: string, fallback: Duration): number {
  return toMilliseconds(value ?? fallback, name)
}

function secretBytes (value: unknown, name: string): Buffer {
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) fail(`${name} is required (a string or Buffer of at least ${MIN_SECRET_BYTES} bytes)`)
  const bytes = Buffer.from(value)
  if (bytes.length < MIN_SECRET_BYTES) fail(`${name} must be at least ${MIN_SECRET_BYTES} bytes long (got ${bytes.length})`)
  if (new Set(bytes).size < 8) fail(`${name} is too weak: use random bytes, e.g. openssl rand -base64 48`)
  return bytes
}

function atLeastOneSecond (ms: number, name: string): number {
  if (ms < 1000) fail(`${name} must be at least 1 second (got ${ms} ms)`)
  return ms
}

function rateLimitRule (value: RateLimitRule | undefined, name: string, fallback: { max: number, window: Duration }): ResolvedRateLimitRule {
  const rule = value ?? fallback
  if (typeof rule !== 'object' || rule === null) fail(`${name} must be { max, window }`)
  return {
    max: integerIn(rule.max, `${name}.max`, 1, 1_000_000, fallback.max),
    windowMs: duration(rule.window, `${name}.window`, fallback.window),
  }
}

function detectDialect (db: unknown): 'sqlite' | 'postgres' {
  if (is(db, BaseSQLiteDatabase)) return 'sqlite'
  if (is(db, PgDatabase)) return 'postgres'
  return fail('db must be a Drizzle database from drizzle-orm/better-sqlite3, drizzle-orm/node-postgres or drizzle-orm/pglite')
}

function checkSmsProvider (sms: unknown): SmsProvider {
  if (typeof sms !== 'object' || sms === null) fail('sms is required: consoleSms(), twilioVerify(...), twilioMessaging(...) or an object with send()')
  const provider = sms as SmsProvider
  if (!isVerifyingProvider(provider) && typeof (provider as { send?: unknown }).send !== 'function') {
    fail('sms must have an async send({ to, body, code }) method, or start() and check() methods')
  }
  return provider
}

/** Validates the options once, at registration, and fills in every default. */
export function resolveOptions (options: SecureLoginOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options are required')
  const dialect = detectDialect(options.db)
  const sms = checkSmsProvider(options.sms)
  const jwt = options.jwt ?? fail('jwt.secret is required')
  const otp = options.otp ?? {}
  const limits = options.rateLimit ?? {}

  const prefix = options.prefix ?? '/api/auth'
  if (typeof prefix !== 'string' || (prefix !== '' && !prefix.startsWith('/'))) fail(`prefix must be a path starting with / (got ${JSON.stringify(prefix)})`)
  if (options.defaultCountry !== undefined && !isSupportedCountry(options.defaultCountry)) {
    fail(`defaultCountry must be a two-letter country code such as 'US' (got ${JSON.stringify(options.defaultCountry)})`)
  }
  if (otp.message !== undefined && typeof otp.message !== 'function') fail('otp.message must be a function ({ code, ttlMinutes }) => string')

  const otpTtlMs = duration(otp.ttl, 'otp.ttl', '10m')
  // JWT times are whole seconds: a shorter lifetime would issue tokens already expired.
  const accessTokenTtlMs = atLeastOneSecond(duration(jwt.accessTokenTtl, 'jwt.accessTokenTtl', '10m'), 'jwt.accessTokenTtl')
  const refreshTokenTtlMs = atLeastOneSecond(duration(jwt.refreshTokenTtl, 'jwt.refreshTokenTtl', '60d'), 'jwt.refreshTokenTtl')
  const jwtSecret = secretBytes(jwt.secret, 'jwt.secret')
  const otpHashKey = otp.hashKey === undefined ? undefined : secretBytes(otp.hashKey, 'otp.hashKey')
  if (otpHashKey?.equals(jwtSecret) === true) fail('otp.hashKey must differ from jwt.secret: one key, one purpose')
  if (options.migrate !== undefined && typeof options.migrate !== 'boolean') fail(`migrate must be true or false (got ${JSON.stringify(options.migrate)})`)
  for (const claim of ['issuer', 'audience'] as const) {
    const value = jwt[claim]
    if (value !== undefined && (typeof value !== 'string' || value === '')) fail(`jwt.${claim} must be a non-empty string (got ${JSON.stringify(value)})`)
  }
  if (refreshTokenTtlMs < accessTokenTtlMs) fail('jwt.refreshTokenTtl must not be shorter than jwt.accessTokenTtl')

  return {
    db: options.db,
    dialect,
    sms,
    smsVerifies: isVerifyingProvider(sms),
    prefix,
    migrate: options.migrate ?? true,
    defaultCountry: options.defaultCountry,
    jwtSecret,
    issuer: jwt.issuer,
    audience: jwt.audience,
    accessTokenTtlMs,
    refreshTokenTtlMs,
    otpLength: integerIn(otp.length, 'otp.length', 4, 10, 6),
    otpTtlMs,
    otpMaxAttempts: integerIn(otp.maxAttempts, 'otp.maxAttempts', 1, 10, 5),
    otpResendIntervalMs: duration(otp.resendInterval, 'otp.resendInterval', '30s'),
    otpMessage: otp.message ?? (({ code, ttlMinutes }) => `${code} is your login code. It expires in ${ttlMinutes} minutes. Never share it.`),
    otpHashKey,
    rateLimit: {
      sendsPerPhone: rateLimitRule(limits.sendsPerPhone, 'rateLimit.sendsPerPhone', { max: 5, window: '1h' }),
      sendsPerIp: rateLimitRule(limits.sendsPerIp, 'rateLimit.sendsPerIp', { max: 20, window: '1h' }),
      verifiesPerIp: rateLimitRule(limits.verifiesPerIp, 'rateLimit.verifiesPerIp', { max: 100, window: '1h' }),
      registersPerIp: rateLimitRule(limits.registersPerIp, 'rateLimit.registersPerIp', { max: 20, window: '1h' }),
    },
    revocationMaxDelayMs: duration(options.revocationMaxDelay, 'revocationMaxDelay', '5s'),
    smsTimeoutMs: duration(options.smsTimeout, 'smsTimeout', '10s'),
  }
}
