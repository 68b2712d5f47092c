import { createHmac, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import {
  OtpAttemptsExceededError, OtpExpiredError, OtpInvalidError, OtpResendTooSoonError, UserMismatchError, withRetryAfter,
} from './errors.js'
import { generateCode, hashCode, hashesMatch } from './otp.js'
import type { ResolvedOptions } from './options.js'
import { maskPhone } from './phone.js'
import { clientKey, enforceRateLimit } from './rate-limit.js'
import { callSmsVendor } from './sms/deliver.js'
import { isVerifyingProvider } from './sms/types.js'
import type { Store, User } from './store/index.js'

export interface ChallengeContext {
  options: ResolvedOptions
  store: Store
  /** Key for code hashes and account ids, derived from (never equal to) the JWT key. */
  hashKey: Buffer
  log: FastifyBaseLogger
}

/**
 * The public id of the account of a number: the one it got at registration, and the one login
 * answers for a number with no account yet. Being the same, the two cannot tell a caller whether
 * a number has an account. (A keyed hash, so ids reveal nothing of the number.)
 */
export function accountIdFor (hashKey: Buffer, phone: string): string {
  const hex = createHmac('sha256', hashKey).update(`account-id\n${phone}`).digest('hex')
  const variant = ((parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

function resendTooSoon (sentAt: Date, now: Date, intervalMs: number) {
  const seconds = Math.max(1, Math.ceil((sentAt.getTime() + intervalMs - now.getTime()) / 1000))
  return withRetryAfter(new OtpResendTooSoonError(seconds), seconds)
}

/**
 * Starts a sign-in: opens a new challenge for the number (replacing any earlier code) and delivers
 * the code. A number without an account gets a challenge nobody can answer and no message, and the
 * same answer, limits and cooldown as a real one.
 */
export async function sendLoginCode (ctx: ChallengeContext, args: { phone: string, ip: string, locale?: string }): Promise<{ userid: string }> {
  const { options, store, hashKey, log } = ctx
  const { phone } = args
  const now = new Date()
  await enforceRateLimit(store, `send:ip:${clientKey(args.ip)}`, options.rateLimit.sendsPerIp, now)

  // A request inside the cooldown is refused before it counts against the number's allowance, so
  // such requests cannot exhaust it and lock the owner out. The upsert below re-checks the
  // cooldown atomically for requests that race past this read.
  const previous = await store.findChallenge(phone)
  if (previous !== undefined && previous.sentAt.getTime() + options.otpResendIntervalMs > now.getTime()) {
    throw resendTooSoon(previous.sentAt, now, options.otpResendIntervalMs)
  }
  await enforceRateLimit(store, `send:phone:${phone}`, options.rateLimit.sendsPerPhone, now)

  const user = await store.findUserByPhone(phone)
  const deliver = user !== undefined && user.status === 'active'
  const challengeId = randomUUID()
  const code = generateCode(options.otpLength)
  // Verifying vendors keep the code themselves; a null hash sends checks to them.
  const codeHash = options.smsVerifies && deliver ? null : hashCode(hashKey, phone, challengeId, code)
  const challenge = await store.openChallenge({
    phone, challengeId, codeHash, now, expiresAt: new Date(now.getTime() + options.otpTtlMs), resendIntervalMs: options.otpResendIntervalMs,
  })
  if (challenge === undefined) throw resendTooSoon((await store.findChallenge(phone))?.sentAt ?? now, now, options.otpResendIntervalMs)

  if (deliver) {
    const provider = options.sms
    try {
      await callSmsVendor({
        to: phone,
        timeoutMs: options.smsTimeoutMs,
        log,
        provider: provider.name ?? 'custom',
        call: (signal) => isVerifyingProvider(provider)
          ? provider.start({ to: phone, locale: args.locale }, signal)
          : provider.send({ to: phone, body: options.otpMessage({ code, ttlMinutes: Math.ceil(options.otpTtlMs / 60_000) }), code, locale: args.locale }, signal),
      })
    } catch (error) {
      // An undelivered code must neither work nor hold back the next attempt to send one.
      await store.withdrawChallenge(phone, challengeId)
      throw error
    }
  } else {
    log.info({ phone: maskPhone(phone) }, 'fastify-securelogin: no SMS sent: the number has no active account (register it first)')
  }
  return { userid: user?.id ?? accountIdFor(hashKey, phone) }
}

/**
 * Checks a code against the number's open challenge and uses it up. Each call spends one of the
 * challenge's attempts before anything is compared, and only one caller can consume it, so
 * concurrent guesses can neither exceed the attempt limit nor sign in twice with one code.
 */
export async function verifyLoginCode (ctx: ChallengeContext, args: { phone: string, code: string, userid?: string, ip: string }): Promise<User> {
  const { options, store, hashKey, log } = ctx
  const { phone, code } = args
  const now = new Date()
  await enforceRateLimit(store, `verify:ip:${clientKey(args.ip)}`, options.rateLimit.verifiesPerIp, now)

  const user = await store.findUserByPhone(phone)
  if (args.userid !== undefined && args.userid !== (user?.id ?? accountIdFor(hashKey, phone))) throw new UserMismatchError()

  const challenge = await store.recordAttempt(phone, now, options.otpMaxAttempts)
  if (challenge === undefined) {
    const current = await store.findChallenge(phone)
    const open = current !== undefined && current.consumedAt === null && current.expiresAt > now
    throw open ? new OtpAttemptsExceededError() : new OtpExpiredError()
  }

  let approved: boolean
  if (challenge.codeHash === null) {
    const provider = options.sms
    if (!isVerifyingProvider(provider)) throw new OtpExpiredError()
    approved = await callSmsVendor({
      to: phone, timeoutMs: options.smsTimeoutMs, log, provider: provider.name ?? 'custom', call: (signal) => provider.check({ to: phone, code }, signal),
    })
  } else {
    approved = hashesMatch(challenge.codeHash, hashCode(hashKey, phone, challenge.challengeId, code))
  }
  if (!approved) throw new OtpInvalidError()
  if (!await store.consumeChallenge(phone, challenge.challengeId, now)) throw new OtpExpiredError()
  // Only numbers with an account ever receive a code, so a match without one cannot happen; refuse anyway.
  if (user === undefined || user.status !== 'active') throw new OtpInvalidError()
  if (user.phoneVerifiedAt === null) await store.markPhoneVerified(user.id, now)
  return user
}
