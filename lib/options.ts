import { Kind, type Static, type TSchema } from '@sinclair/typebox'
import { Errors, ValueErrorType } from '@sinclair/typebox/errors'
import { is } from 'drizzle-orm'
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core'
import {
  describeKind, describeValue, refusalOf, RateLimitRuleSchema, SecureLoginOptionsSchema, type IsBreachedFunction, type SecureLoginDatabase,
} from '../schemas/options.js'
import type { ClaimsFunction } from './claims.js'
import { formatDuration, parseDuration, type Duration } from './duration.js'
import { resolveSigningKeys, type SigningKey } from './keys.js'
import type { BeforeSendFunction } from './challenges.js'
import { describeNodeEnv, isDevelopment } from './environment.js'
import type { SecureLoginEventHandler } from './events.js'
import { DEFAULT_NUMBER_TYPES, isE164, type PhonePolicy } from './phone.js'
import { isVerifyingProvider, type SmsProvider } from './sms/types.js'

export type { SecureLoginDatabase }

/** The options of `app.register(secureLogin, options)`, typed from `SecureLoginOptionsSchema`. */
export type SecureLoginOptions = Static<typeof SecureLoginOptionsSchema>

/** A rate limit: at most `max` requests per `window`. */
export type RateLimitRule = Static<typeof RateLimitRuleSchema>

export interface ResolvedRateLimitRule { max: number, windowMs: number }

export interface ResolvedCookieOptions {
  accessTokenInCookie: boolean
  secure: boolean
  sameSite: 'strict' | 'lax'
  domain: string | undefined
  allowedOrigins: string[] | undefined
}

export interface ResolvedOptions {
  db: SecureLoginDatabase
  dialect: 'sqlite' | 'postgres'
  sms: SmsProvider
  smsVerifies: boolean
  prefix: string
  migrate: boolean
  phonePolicy: PhonePolicy
  beforeSend: BeforeSendFunction | undefined
  signUp: 'register' | 'on-verify'
  onEvent: SecureLoginEventHandler | undefined
  smsDelivery: 'background' | 'await'
  /** undefined: the app purges with `purgeExpired(db)` itself. */
  purgeIntervalMs: number | undefined
  /** undefined: unverified accounts are kept. */
  unverifiedAccountTtlMs: number | undefined
  dbTimeoutMs: number
  /** `postgres.namedStatements`. */
  namedStatements: boolean
  jwtSecret: Buffer
  issuer: string | undefined
  audience: string | undefined
  jwtClaims: ClaimsFunction | undefined
  jwtNamespace: string
  /** `jwt.keys`, checked: asymmetric access tokens. Undefined: HS256 with `jwtSecret`. */
  jwtKeys: SigningKey[] | undefined
  accessTokenTtlMs: number
  refreshTokenTtlMs: number
  otpLength: number
  otpTtlMs: number
  otpMaxAttempts: number
  otpResendIntervalMs: number
  otpMessage: (args: { code: string, ttlMinutes: number }) => string
  otpHashKey: Buffer | undefined
  /** Each limit's rules; all of a list apply. Empty with `rateLimit: false`. */
  rateLimit: Record<RateLimitName, ResolvedRateLimitRule[]>
  cookies: ResolvedCookieOptions | undefined
  revocationMaxDelayMs: number
  sessions: { reuseGraceMs: number, idleTimeoutMs: number }
  password: { enabled: boolean, isBreached: IsBreachedFunction | undefined }
  smsTimeoutMs: number
}

function fail (message: string): never {
  throw new TypeError(`fastify-securelogin: ${message}`)
}

// ---------------------------------------------------------------- messages from schema errors

/** `/rateLimit/sendsPerIp/max` as `rateLimit.sendsPerIp.max`, `/cookies/allowedOrigins/0` as `cookies.allowedOrigins[0]`. */
function dotted (segments: string[]): string {
  return segments.reduce((path, segment) => /^\d+$/.test(segment) ? `${path}[${segment}]` : path === '' ? segment : `${path}.${segment}`, '')
}

function segmentsOf (pointer: string): string[] {
  return pointer.split('/').slice(1).map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function orList (words: string[]): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`
}

/** What a schema accepts, as alternatives for "must be …". */
function alternatives (schema: TSchema): string[] {
  switch (schema[Kind]) {
    case 'Boolean': return ['true', 'false']
    case 'Literal': return [typeof schema.const === 'string' ? `'${schema.const}'` : String(schema.const)]
    case 'Union': return (schema.anyOf as TSchema[]).flatMap(alternatives)
    case 'Object': return [`{ ${Object.keys(schema.properties).join(', ')} }`]
    case 'Array': return ['an array']
    case 'Function': return ['a function']
    case 'Number': return ['a number']
    case 'Integer': return [schema.minimum !== undefined && schema.maximum !== undefined
      ? `an integer from ${schema.minimum.toLocaleString('en-US')} to ${schema.maximum.toLocaleString('en-US')}`
      : 'an integer']
    case 'String': return [schema.minLength >= 1 ? 'a non-empty string' : schema.pattern !== undefined ? `a string matching /${schema.pattern}/` : 'a string']
    default: return ['valid']
  }
}

const SCALAR_KINDS = new Set(['String', 'Number', 'Integer', 'Boolean', 'Literal'])

/** Whether a wrong value may be quoted: only where a scalar was expected, never where an object was (`jwt: secret`). */
function quotable (schema: TSchema): boolean {
  return SCALAR_KINDS.has(schema[Kind]) || (schema[Kind] === 'Union' && (schema.anyOf as TSchema[]).every(quotable))
}

/** Case-insensitive optimal string alignment distance (Levenshtein plus swaps of neighbours). */
function editDistance (a: string, b: string): number {
  a = a.toLowerCase()
  b = b.toLowerCase()
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

function nearest (key: string, candidates: string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(key.length / 3)))
  let best: string | undefined
  let bestDistance = limit + 1
  for (const candidate of candidates) {
    const distance = editDistance(key, candidate)
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance]
  }
  return best
}

/** Every option's path, for suggesting an option put at the wrong level (`secret` → `jwt.secret`). */
function optionPaths (schema: TSchema, prefix: string[] = []): string[][] {
  if (schema[Kind] === 'Union') return (schema.anyOf as TSchema[]).flatMap((member) => optionPaths(member, prefix))
  if (schema[Kind] !== 'Object') return []
  return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, property]) => [[...prefix, key], ...optionPaths(property, [...prefix, key])])
}
const OPTION_PATHS = optionPaths(SecureLoginOptionsSchema)

function unknownOption (parent: TSchema, segments: string[]): string {
  const key = segments.at(-1) as string
  const where = segments.slice(0, -1)
  const keys = Object.keys(parent.properties)
  const sibling = nearest(key, keys)
  if (sibling !== undefined) return `unknown option ${dotted(segments)} (did you mean ${dotted([...where, sibling])}?)`
  const elsewhere = OPTION_PATHS.filter((path) => path.at(-1)!.toLowerCase() === key.toLowerCase())
  if (elsewhere.length === 1) return `unknown option ${dotted(segments)} (did you mean ${dotted(elsewhere[0]!)}?)`
  return `unknown option ${dotted(segments)} (${where.length === 0 ? 'the options are' : `${dotted(where)} takes`} ${keys.join(', ')})`
}

/** One message per wrong option: unknown keys, missing or mistyped values, custom kinds' own reasons. */
function * problems (schema: TSchema, value: unknown, base: string[] = []): Generator<string> {
  const seen = new Set<string>()
  for (const error of Errors(schema, value)) {
    // TypeBox may report one option twice (missing, then not of its type): the first says it best.
    if (seen.has(error.path)) continue
    seen.add(error.path)
    const segments = [...base, ...segmentsOf(error.path)]
    const name = dotted(segments)
    const node = error.schema
    // An object given where an object is one choice (`cookies: true | { … }`): report what is wrong inside it.
    const objectChoice = node[Kind] === 'Union' && typeof error.value === 'object' && error.value !== null && !Array.isArray(error.value)
      ? (node.anyOf as TSchema[]).find((member) => member[Kind] === 'Object')
      : undefined
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      yield unknownOption(node, segments)
    } else if (error.type === ValueErrorType.ObjectRequiredProperty) {
      // A missing object is reported by what it lacks: `jwt` missing is `jwt.secret is required`.
      if (node[Kind] === 'Object') yield * problems(node, {}, segments)
      else yield `${name} ${refusalOf(node, undefined) ?? 'is required'}`
    } else if (objectChoice !== undefined) {
      yield * problems(objectChoice, error.value, segments)
    } else {
      const expected = typeof node.errorMessage === 'string' ? node.errorMessage : `must be ${orList(alternatives(node))}`
      yield `${name} ${refusalOf(node, error.value) ?? `${expected} (got ${quotable(node) ? describeValue(error.value) : describeKind(error.value)})`}`
    }
  }
}

// ---------------------------------------------------------------- resolution

const TOP = SecureLoginOptionsSchema.properties
const JWT = TOP.jwt.properties
const OTP = TOP.otp.properties
const LIMITS = TOP.rateLimit.anyOf[1].properties
const COOKIES = TOP.cookies.anyOf[1].properties
const SESSIONS = TOP.sessions.properties
const PASSWORD = TOP.password.properties
const POSTGRES = TOP.postgres.properties

function orDefault<T> (value: T | undefined, schema: TSchema): T {
  return value ?? schema.default as T
}

function durationMs (value: Duration | undefined, schema: TSchema): number {
  return parseDuration(orDefault(value, schema)) as number
}

function rateLimitRules (name: string, value: RateLimitRule | RateLimitRule[] | undefined, schema: TSchema): ResolvedRateLimitRule[] {
  const rules = [orDefault(value, schema)].flat().map((rule) => ({ max: rule.max, windowMs: parseDuration(rule.window) as number }))
  // Each rule's counter is named by its window: two rules with one window ('1h' and '60m') would
  // count every request twice on one counter. Only the smaller max could matter anyway.
  const windows = rules.map((rule) => rule.windowMs)
  if (new Set(windows).size !== windows.length) fail(`rateLimit.${name}: two rules have the same window; keep the one with the smaller max`)
  return rules
}

type RateLimitName = keyof typeof LIMITS
const RATE_LIMIT_NAMES = Object.keys(LIMITS) as RateLimitName[]

/** Every rule with its defaults filled in; `rateLimit: false` leaves every list empty. */
function resolveRateLimits (limits: SecureLoginOptions['rateLimit']): ResolvedOptions['rateLimit'] {
  return Object.fromEntries(RATE_LIMIT_NAMES.map((name) => [name, limits === false ? [] : rateLimitRules(name, limits?.[name], LIMITS[name])])) as ResolvedOptions['rateLimit']
}

function resolveCookies (cookies: SecureLoginOptions['cookies']): ResolvedCookieOptions | undefined {
  if (cookies === undefined || cookies === false) return undefined
  const given = cookies === true ? {} : cookies
  return {
    accessTokenInCookie: orDefault(given.accessToken, COOKIES.accessToken) === 'cookie',
    secure: orDefault(given.secure, COOKIES.secure),
    sameSite: orDefault(given.sameSite, COOKIES.sameSite),
    domain: given.domain,
    allowedOrigins: given.allowedOrigins === undefined ? undefined : [...given.allowedOrigins],
  }
}

function defaultMessage ({ code, ttlMinutes }: { code: string, ttlMinutes: number }): string {
  return `${code} is your login code. It expires in ${ttlMinutes} minutes. Never share it.`
}

/** Validates the options once, at registration, against `SecureLoginOptionsSchema`, and fills in every default. */
export function resolveOptions (options: SecureLoginOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options are required')
  const wrong = [...problems(SecureLoginOptionsSchema, options)]
  if (wrong.length === 1) fail(wrong[0]!)
  if (wrong.length > 1) fail(`${wrong.length} problems in the options:\n${wrong.map((problem) => `  - ${problem}`).join('\n')}`)

  const { jwt } = options
  const otp = options.otp ?? {}
  const accessTokenTtlMs = durationMs(jwt.accessTokenTtl, JWT.accessTokenTtl)
  const refreshTokenTtlMs = durationMs(jwt.refreshTokenTtl, JWT.refreshTokenTtl)
  if (refreshTokenTtlMs < accessTokenTtlMs) {
    fail(`jwt.refreshTokenTtl must not be shorter than jwt.accessTokenTtl (got ${formatDuration(refreshTokenTtlMs)} and ${formatDuration(accessTokenTtlMs)})`)
  }
  const jwtSecret = Buffer.from(jwt.secret as string | Buffer)
  const otpHashKey = otp.hashKey === undefined ? undefined : Buffer.from(otp.hashKey)
  if (otpHashKey?.equals(jwtSecret) === true) fail('otp.hashKey must differ from jwt.secret: one key, one purpose')
  const testNumbers = new Map(Object.entries(options.testNumbers ?? {}))
  for (const number of testNumbers.keys()) {
    if (!isE164(number)) fail(`testNumbers: ${JSON.stringify(number)} is not a number in E.164 form, such as +15555550100`)
  }
  const phonePolicy: PhonePolicy = {
    defaultCountry: options.defaultCountry,
    allowedCountries: options.allowedCountries === undefined ? undefined : new Set(options.allowedCountries),
    numberTypes: new Set(options.numberTypes ?? DEFAULT_NUMBER_TYPES),
    testNumbers,
  }
  if (testNumbers.size > 0 && !isDevelopment() && options.allowTestNumbersInProduction !== true) {
    fail(`testNumbers work only when NODE_ENV is 'development' or 'test' (${describeNodeEnv()}): anyone who learns one signs in without an SMS. Set allowTestNumbersInProduction: true if you mean it (e.g. an app-store review account)`)
  }
  const rateLimit = resolveRateLimits(options.rateLimit)
  // A sliding window keeps a row per allowed wrong code: a budget, not a throughput limit.
  for (const name of ['failedVerifiesPerPhone', 'failedLoginsPerAccount'] as const) {
    if (rateLimit[name].some((rule) => rule.max > 100)) fail(`rateLimit.${name}.max must be at most 100 (NIST SP 800-63B allows up to 100 failures per account)`)
  }
  // A class is a function too, but calling it without `new` fails every sign-in.
  if (jwt.claims !== undefined && /^class[\s{]/.test(Function.prototype.toString.call(jwt.claims))) fail('jwt.claims must be a function (user, request) => claims, not a class')

  return {
    db: options.db,
    dialect: is(options.db, BaseSQLiteDatabase) ? 'sqlite' : 'postgres',
    sms: options.sms,
    smsVerifies: isVerifyingProvider(options.sms),
    prefix: orDefault(options.prefix, TOP.prefix),
    migrate: orDefault(options.migrate, TOP.migrate),
    phonePolicy,
    beforeSend: options.beforeSend,
    signUp: orDefault(options.signUp, TOP.signUp),
    onEvent: options.onEvent,
    smsDelivery: orDefault(options.smsDelivery, TOP.smsDelivery),
    purgeIntervalMs: options.purgeInterval === false ? undefined : durationMs(options.purgeInterval, TOP.purgeInterval),
    unverifiedAccountTtlMs: options.unverifiedAccountTtl === false ? undefined : durationMs(options.unverifiedAccountTtl, TOP.unverifiedAccountTtl),
    dbTimeoutMs: durationMs(options.dbTimeout, TOP.dbTimeout),
    namedStatements: orDefault(options.postgres?.namedStatements, POSTGRES.namedStatements),
    jwtSecret,
    issuer: jwt.issuer,
    audience: jwt.audience,
    jwtClaims: jwt.claims,
    jwtNamespace: orDefault(jwt.namespace, JWT.namespace),
    jwtKeys: jwt.keys === undefined ? undefined : resolveSigningKeys(jwt.keys),
    accessTokenTtlMs,
    refreshTokenTtlMs,
    otpLength: orDefault(otp.length, OTP.length),
    otpTtlMs: durationMs(otp.ttl, OTP.ttl),
    otpMaxAttempts: orDefault(otp.maxAttempts, OTP.maxAttempts),
    otpResendIntervalMs: durationMs(otp.resendInterval, OTP.resendInterval),
    otpMessage: otp.message ?? defaultMessage,
    otpHashKey,
    rateLimit,
    cookies: resolveCookies(options.cookies),
    revocationMaxDelayMs: durationMs(options.revocationMaxDelay, TOP.revocationMaxDelay),
    sessions: {
      reuseGraceMs: durationMs(options.sessions?.reuseGrace, SESSIONS.reuseGrace),
      idleTimeoutMs: durationMs(options.sessions?.idleTimeout, SESSIONS.idleTimeout),
    },
    password: {
      enabled: orDefault(options.password?.enabled, PASSWORD.enabled),
      isBreached: options.password?.isBreached,
    },
    smsTimeoutMs: durationMs(options.smsTimeout, TOP.smsTimeout),
  }
}
