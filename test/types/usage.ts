// Type tests: how an app uses the public API. test/types.test.ts compiles this file with `tsc`
// (strict) and fails on any error. Each `// @ts-expect-error` marks a mistake that must NOT
// compile: if it ever compiled, the directive would be unused, which is itself an error.
// This file is compiled, never run.
import { generateKeyPairSync } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { JWT } from '@fastify/jwt'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import secureLogin, {
  consoleSms, migrate, routeSms, twilioMessaging, twilioVerify,
  SmsDeliveryError, OtpInvalidError, RateLimitedError, SessionRevokedError, errors,
  type AuthHook, type ClaimsFunction, type Duration, type SecureLoginAccount, type SecureLoginOptions, type SecureLoginRefreshUser, type SecureLoginUser,
  type SmsMessage, type SmsProvider, type TextingSmsProvider, type VerifyingSmsProvider,
} from '../../lib/index.js'
import { users, sessions } from '../../lib/db/sqlite.js'
import { users as pgUsers } from '../../lib/db/postgres.js'
import { LoginBody, VerifySmsBody, type VerifySmsResponse } from '../../schemas/index.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (_proof?: T): void {}

const app = Fastify()
const db = drizzle(new Database(':memory:'))
const sms = consoleSms()

// ---------------------------------------------------------------- registering

await app.register(secureLogin, { db, sms, jwt: { secret: process.env.JWT_SECRET } })
await app.register(secureLogin, { db: drizzlePg(new pg.Pool()), sms, jwt: { secret: Buffer.alloc(32) } })
await app.register(secureLogin, { db: drizzlePglite(new PGlite()), sms, jwt: { secret: 'x' } })

// Every option, with durations as seconds, digit strings and ms strings.
const everything: SecureLoginOptions = {
  db,
  sms,
  prefix: '/auth',
  migrate: false,
  defaultCountry: 'US',
  jwt: { secret: 's', accessTokenTtl: 600, refreshTokenTtl: '60d', issuer: 'https://auth.example.com', audience: 'api' },
  otp: {
    length: 6,
    ttl: '600',
    maxAttempts: 5,
    resendInterval: '30s',
    message: ({ code, ttlMinutes }) => `${code} (${ttlMinutes} min)`,
    hashKey: Buffer.alloc(32),
  },
  rateLimit: {
    sendsPerPhone: { max: 5, window: '1h' },
    sendsPerIp: { max: 20, window: 3600 },
    verifiesPerIp: { max: 100, window: process.env.VERIFY_WINDOW ?? '1h' },
  },
  revocationMaxDelay: '5s',
  smsTimeout: 10,
}
await app.register(secureLogin, everything)
// Environment variables fit optional durations as they are (unset means the default).
await app.register(secureLogin, { db, sms, jwt: { secret: process.env.JWT_SECRET }, otp: { ttl: process.env.OTP_TTL } })

const durations: Duration[] = [600, '600', '10m', '1.5h']
expectType<Equal<Duration, number | string>>()

// @ts-expect-error jwt is required
await app.register(secureLogin, { db, sms })
// @ts-expect-error db is required
await app.register(secureLogin, { sms, jwt: { secret: 's' } })
// @ts-expect-error sms is required
await app.register(secureLogin, { db, jwt: { secret: 's' } })
// @ts-expect-error jwt.secret is required (undefined is allowed, a missing key is not)
await app.register(secureLogin, { db, sms, jwt: {} })
// @ts-expect-error an unknown option
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, sendsPerPhone: 5 })
// @ts-expect-error an unknown option inside otp (Flask's OTP_DIGITS is otp.length)
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, otp: { digits: 6 } })
// @ts-expect-error otp.length is a number, not a string
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, otp: { length: '6' } })

// jwt.keys (PEM strings or KeyObjects) and sessions.
const keyPair = generateKeyPairSync('ed25519')
await app.register(secureLogin, {
  db,
  sms,
  jwt: { secret: 's', keys: [{ kid: '2025-06', alg: 'EdDSA', privateKey: keyPair.privateKey, publicKey: keyPair.publicKey.export({ type: 'spki', format: 'pem' }) as string }] },
  sessions: { reuseGrace: '10s', idleTimeout: process.env.IDLE_TIMEOUT },
})
// @ts-expect-error jwt.keys takes asymmetric algorithms only
await app.register(secureLogin, { db, sms, jwt: { secret: 's', keys: [{ kid: 'k', alg: 'HS256', privateKey: 'x', publicKey: 'y' }] } })
// @ts-expect-error a key pair needs its public key
await app.register(secureLogin, { db, sms, jwt: { secret: 's', keys: [{ kid: 'k', alg: 'EdDSA', privateKey: 'x' }] } })
// @ts-expect-error sessions takes reuseGrace and idleTimeout
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, sessions: { absoluteTimeout: '1d' } })
// @ts-expect-error prefix is a string
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, prefix: 42 })
// @ts-expect-error db is a Drizzle database, not a connection string or driver name
await app.register(secureLogin, { db: 'sqlite', sms, jwt: { secret: 's' } })
// @ts-expect-error db is a Drizzle database, not a raw better-sqlite3 handle
await app.register(secureLogin, { db: new Database(':memory:'), sms, jwt: { secret: 's' } })
// @ts-expect-error sms needs send(), or start() and check()
await app.register(secureLogin, { db, sms: {}, jwt: { secret: 's' } })
// @ts-expect-error a verifying provider needs check() as well as start()
await app.register(secureLogin, { db, sms: { async start () {} }, jwt: { secret: 's' } })
// @ts-expect-error the secret is a string or Buffer, not a number
await app.register(secureLogin, { db, sms, jwt: { secret: 12345 } })
// @ts-expect-error durations are numbers or strings, not objects
await app.register(secureLogin, { db, sms, jwt: { secret: 's', accessTokenTtl: { minutes: 10 } } })
// @ts-expect-error a rate limit rule is { max, window }
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, rateLimit: { sendsPerPhone: 5 } })
// @ts-expect-error defaultCountry is a libphonenumber-js CountryCode
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, defaultCountry: 'XX' })
// @ts-expect-error otp.message gets { code, ttlMinutes } and returns a string
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, otp: { message: ({ code }: { code: number }) => code } })
// @ts-expect-error migrate is a boolean
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, migrate: 'yes' })

// ---------------------------------------------------------------- decorators and request.user

app.get('/me', { preHandler: app.authenticate }, async (request) => {
  expectType<Equal<typeof request.user, SecureLoginUser>>()
  const { userid, phone, sid, fresh } = request.user
  expectType<Equal<typeof userid, string>>()
  // null for an email-and-password account without a number
  expectType<Equal<typeof phone, string | null>>()
  expectType<Equal<typeof sid, string>>()
  expectType<Equal<typeof fresh, boolean>>()
  // @ts-expect-error there is no password (nor any other field) on request.user
  request.user.password
  // @ts-expect-error userid is a string, not a number (Flask's JWT `sub` was the integer id)
  const id: number = request.user.userid
  return { userid, phone, sid, fresh, id }
})
app.post('/payout', { preHandler: app.authenticateFresh }, async (request) => request.user.userid)
app.post('/refresh-info', { preHandler: app.authenticateRefresh }, async (request) => {
  // authenticateRefresh also sets `generation`; the request type says SecureLoginUser, so narrow it.
  const user = request.user as SecureLoginRefreshUser
  expectType<Equal<typeof user.generation, number>>()
  return user.generation
})
app.post('/both', { preHandler: [app.authenticate, async (request) => { request.log.info(request.user.sid) }] }, async () => 'ok')
app.register(async (child) => {
  child.addHook('preHandler', child.authenticate)
  child.get('/inside', async (request) => request.user.phone)
})
expectType<Equal<typeof app.authenticate, AuthHook>>()

// ---------------------------------------------------------------- @fastify/jwt

// request.user is @fastify/jwt's, typed as ours; the ecosystem's API is there for access tokens.
expectType<Equal<FastifyRequest['user'], SecureLoginUser>>()
const appToken: string = app.jwt.sign({ sub: 'someone', scope: 'download' }, { expiresIn: '5m' })
const decoded = app.jwt.verify<{ sub: string }>(appToken)
expectType<Equal<typeof decoded.sub, string>>()
expectType<Equal<typeof app.secureLogin.jwt, JWT>>()

// The app's levers over accounts.
const found = await app.secureLogin.findUser({ phone: '+14155550123' })
if (found !== undefined) {
  expectType<Equal<typeof found, SecureLoginAccount>>()
  expectType<Equal<typeof found.phone, string | null>>()
  expectType<Equal<typeof found.auth_types, Array<'PHONE' | 'PASSWORD'>>>()
  const ended: number = await app.secureLogin.revokeSessions(found.userid)
  const disabled: boolean = await app.secureLogin.setStatus(found.userid, 'disabled')
  const deleted: boolean = await app.secureLogin.deleteUser(found.userid)
  console.log(ended, disabled, deleted, found.status === 'disabled')
}
// @ts-expect-error only 'active' and 'disabled' can be set
await app.secureLogin.setStatus('id', 'deleted')
// @ts-expect-error findUser takes a userid or a phone
await app.secureLogin.findUser({ email: 'ada@example.com' })
app.get('/verified', async (request) => {
  await request.jwtVerify()
  return request.user.userid
})
// jwt.claims gets the user and the request, and returns the app's claims (none declared here).
const claims: ClaimsFunction = async (user, request) => ({ at: `${user.userid} ${request.ip}` })
void claims
await app.register(secureLogin, { db, sms, jwt: { secret: 's', claims: (user) => ({ phoneCountry: user.phone?.slice(0, 2) ?? null }) } })
// @ts-expect-error jwt.claims is a function, not an object
await app.register(secureLogin, { db, sms, jwt: { secret: 's', claims: { roles: [] } } })
// cookies: true, or its options
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, cookies: true })
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, cookies: { accessToken: 'cookie', sameSite: 'lax', allowedOrigins: ['https://app.example.com'] } })
// @ts-expect-error sameSite is 'strict' or 'lax' (SameSite=None would undo the CSRF defence)
await app.register(secureLogin, { db, sms, jwt: { secret: 's' }, cookies: { sameSite: 'none' } })
expectType<Equal<AuthHook, (request: FastifyRequest, reply: FastifyReply) => Promise<void>>>()
// @ts-expect-error there is no such decorator
app.get('/nope', { preHandler: app.authenticateAdmin }, async () => 'no')
// @ts-expect-error the decorators are preHandlers, not values to compare
if (app.authenticate === true) console.log('never')

// ---------------------------------------------------------------- SMS providers

const texting: TextingSmsProvider = {
  name: 'memory',
  async send (message, signal) {
    expectType<Equal<typeof message, SmsMessage>>()
    expectType<Equal<typeof signal, AbortSignal>>()
    const { to, body, code, locale } = message
    expectType<Equal<typeof locale, string | undefined>>()
    console.log(to, body, code)
  },
}
const verifying: VerifyingSmsProvider = {
  async start ({ to, locale }) { console.log(to, locale) },
  async check ({ to, code }) { return to.length > 0 && code === '123456' },
}
const verify = twilioVerify({ accountSid: process.env.TWILIO_ACCOUNT_SID, authToken: process.env.TWILIO_AUTH_TOKEN, serviceSid: 'VA0', channel: 'whatsapp' })
const messaging = twilioMessaging({ accountSid: 'AC0', authToken: 't', from: '+15005550006', template: ({ code, locale }) => `${code} ${locale ?? ''}` })
const routedTexting: TextingSmsProvider = routeSms({ byCountry: { CN: texting }, default: messaging, fallback: consoleSms({ write: (line) => console.log(line) }) })
const routedVerifying: VerifyingSmsProvider = routeSms({ default: verify, fallback: verifying, attemptTimeout: 5000, onFallback: ({ error, from, to, country }) => console.log(error, from, to, country) })
const providers: SmsProvider[] = [sms, texting, verifying, verify, messaging, routedTexting, routedVerifying]

// @ts-expect-error twilioVerify needs its Verify Service
twilioVerify({ accountSid: 'AC0', authToken: 't' })
// @ts-expect-error a Verify channel is 'sms', 'whatsapp' or 'call'
twilioVerify({ accountSid: 'AC0', authToken: 't', serviceSid: 'VA0', channel: 'email' })
// @ts-expect-error routeSms: all providers of one kind (texting with verifying does not mix)
routeSms({ default: messaging, fallback: verify })
// @ts-expect-error routeSms: byCountry keys are country codes
routeSms({ byCountry: { China: texting }, default: messaging })
// @ts-expect-error send() must return a promise
const syncProvider: TextingSmsProvider = { send (message) { console.log(message) } }
// @ts-expect-error check() resolves a boolean, not the vendor's status string
const stringCheck: VerifyingSmsProvider = { async start () {}, async check () { return 'approved' } }

// ---------------------------------------------------------------- errors

const deliveryError = new SmsDeliveryError('acme: HTTP 503', { transient: true, status: 503, vendorCode: 30001, provider: 'acme', cause: new Error('x') })
expectType<Equal<typeof deliveryError.transient, boolean>>()
const isError: Error = deliveryError
// @ts-expect-error transient is required: it decides whether routeSms() fails over
new SmsDeliveryError('acme: HTTP 503', { status: 503 })

const invalid = new OtpInvalidError()
expectType<Equal<typeof invalid.code, 'SECURELOGIN_OTP_INVALID'>>() // clients can switch on the literal code
const status: number | undefined = invalid.statusCode
const limited = new RateLimitedError(30)
if (limited instanceof RateLimitedError && new SessionRevokedError() instanceof Error) console.log(limited.message)
const codes: string[] = Object.values(errors).map((E) => new E().code)

// ---------------------------------------------------------------- tables, schemas, migrate

const rows = await db.select({ id: users.id, phone: users.phone, verifiedAt: users.phoneVerifiedAt }).from(users)
const row = rows[0]
if (row !== undefined) {
  expectType<Equal<typeof row.id, string>>()
  expectType<Equal<typeof row.phone, string | null>>() // null once deleted, or for a password account without a number
  expectType<Equal<typeof row.verifiedAt, Date | null>>()
}
const liveSessions = await db.select().from(sessions)
expectType<Equal<(typeof liveSessions)[number]['revokedAt'], Date | null>>()
expectType<Equal<typeof pgUsers.$inferSelect.id, string>>()
await migrate(db)
await migrate(drizzlePg(new pg.Pool()))
// @ts-expect-error migrate takes a Drizzle database
await migrate('postgres://localhost/db')

const body: VerifySmsBody = { phone: '+14155550123', token: '123456' }
// @ts-expect-error token is a string of digits, as the schema validates it, not a number
const numericToken: VerifySmsBody = { phone: '+14155550123', token: 123456 }
const answer: VerifySmsResponse = { userid: 'u', access_token: 'a', refresh_token: 'r', token_type: 'Bearer', expires_in: 600 }
// @ts-expect-error token_type is the literal 'Bearer'
const wrongType: VerifySmsResponse = { ...answer, token_type: 'bearer' }
const loginSchemaId: unknown = LoginBody

export {
  durations, providers, isError, status, codes, body, numericToken, answer, wrongType, loginSchemaId,
  syncProvider, stringCheck,
}
