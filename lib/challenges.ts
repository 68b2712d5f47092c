import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { accountFound, phoneKeyFor, registerAccount, type FoundAccount } from './accounts.js'
import {
  AccountInactiveError, OtpAttemptsExceededError, OtpExpiredError, OtpInvalidError, OtpResendTooSoonError, PhoneLockedError, SendRefusedError, SmsBudgetExhaustedError, SmsSendFailedError, SmsTimeoutError, withAttemptsLeft, withRetryAfter,
} from './errors.js'
import { generateCode, hashCode, hashesMatch } from './otp.js'
import type { ResolvedOptions } from './options.js'
import { maskPhone } from './phone.js'
import { clientAddress } from './client-ip.js'
import { clientLimitHits, countHits, planChecks, slidingWindow, takeSlots, type Limit, type Refusal } from './rate-limit.js'
import type { Events } from './events.js'
import { loggableError } from './redact.js'
import { callSmsVendor } from './sms/deliver.js'
import { isVerifyingProvider } from './sms/types.js'
import type { OtpChallenge, Store, User } from './store/index.js'

/** The app's check before a code is sent (`beforeSend`): false refuses the send. */
export type BeforeSendFunction = (request: FastifyRequest, phone: string) => boolean | Promise<boolean>

/** Deliveries still running after their request was answered: the app's close waits for them. */
export function createDeliveryTracker () {
  const pending = new Set<Promise<void>>()
  return {
    track (delivery: Promise<void>): void {
      pending.add(delivery)
      void delivery.finally(() => pending.delete(delivery))
    },
    async settled (): Promise<void> {
      await Promise.allSettled([...pending])
    },
  }
}

/** The counter of a number's wrong codes (`rateLimit.failedVerifiesPerPhone`). */
export function lockKey (phone: string): string {
  return `verify:fail:phone:${phone}`
}

const phoneLocked: Refusal = (seconds) => withRetryAfter(new PhoneLockedError(seconds), seconds)

/**
 * The app's SMS budget (`rateLimit.sendsGlobal`): its refusal, logged at error level once per
 * window on each instance, as it stops every sign-in.
 */
export function createSmsBudget () {
  let loggedUntil = 0
  return {
    exhausted (seconds: number, log: FastifyBaseLogger): Error {
      const now = Date.now()
      if (now >= loggedUntil) {
        loggedUntil = now + seconds * 1000
        log.error({ retryAfterSeconds: seconds }, 'fastify-securelogin: the SMS budget (rateLimit.sendsGlobal) is spent: no code is sent until the window ends')
      }
      return withRetryAfter(new SmsBudgetExhaustedError(seconds), seconds)
    },
  }
}

/** Errors callSmsVendor already logged (a vendor failure or timeout). */
function isVendorFailure (error: unknown): boolean {
  return error instanceof SmsSendFailedError || error instanceof SmsTimeoutError
}

export interface ChallengeContext {
  options: ResolvedOptions
  store: Store
  /** Key for code hashes and account ids, derived from (never equal to) the JWT key. */
  hashKey: Buffer
  log: FastifyBaseLogger
  deliveries: ReturnType<typeof createDeliveryTracker>
  budget: ReturnType<typeof createSmsBudget>
  events: Events
}

function resendTooSoon (sentAt: Date, now: Date, intervalMs: number) {
  const seconds = Math.max(1, Math.ceil((sentAt.getTime() + intervalMs - now.getTime()) / 1000))
  return withRetryAfter(new OtpResendTooSoonError(seconds), seconds)
}

/** Who a code goes to: whether it is delivered, the account for events, and whom a change of number binds it to. */
interface Recipient { deliver: boolean, userid: string | undefined, owner?: string }

/**
 * What a challenge checked by a verifying vendor (Twilio Verify, which keeps the code and checks it
 * by number only) stores in place of a hash: nothing for a sign-in, and for a change of number a
 * keyed mark of the account that asked, so that no other account, and no sign-in, can use a code
 * the vendor would accept. (A code's hash is base64url: it never contains ':'.)
 */
function vendorCheckMark (hashKey: Buffer, phone: string, challengeId: string, owner: string | undefined): string | null {
  return owner === undefined ? null : `owner:${hashCode(hashKey, phone, challengeId, 'checked-by-vendor', owner)}`
}

/**
 * Starts a sign-in: opens a new challenge for the number (replacing any earlier code) and delivers
 * the code. A number without an account gets a challenge nobody can answer and no message, and the
 * same answer, limits and cooldown as a real one.
 */
export async function sendLoginCode (ctx: ChallengeContext, args: { phone: string, locale?: string, request: FastifyRequest }): Promise<{ userid: string }> {
  let userid = ''
  await sendCode(ctx, args, (found) => {
    userid = found.userid
    // With signUp 'on-verify' a number without an account gets its code too (verify_sms makes the
    // account). A disabled account gets its code: only who proves the number learns it is disabled.
    return { deliver: found.user !== undefined || ctx.options.signUp === 'on-verify', userid: found.user?.id }
  })
  return { userid }
}

/**
 * Starts a change of the account `userId` to the number `phone`: a code for that number, which
 * only this account can use (its hash, or with a verifying vendor its mark, is bound to the
 * account). A number that has an account gets no message and a challenge nobody can answer, with
 * the same answer, limits and cooldown as a free one: the route must not tell a signed-in user
 * whether a number has an account, which /login tells nobody. An account that never proved its
 * number does not hold it (anyone can register any number): the change takes the number from it.
 */
export async function sendPhoneChangeCode (ctx: ChallengeContext, args: { phone: string, locale?: string, request: FastifyRequest, userId: string }): Promise<void> {
  await sendCode(ctx, args, ({ user }) => ({ deliver: user === undefined || user.phoneVerifiedAt === null, userid: args.userId, owner: args.userId }))
}

async function sendCode (ctx: ChallengeContext, args: { phone: string, locale?: string, request: FastifyRequest }, recipientOf: (found: FoundAccount) => Recipient): Promise<void> {
  const { options, store, hashKey, log } = ctx
  const { phone } = args
  const now = new Date()
  const address = clientAddress(args.request)
  const clientHits = clientLimitHits('send', address, options.rateLimit.sendsPerIp, now)
  // The app's CAPTCHA or risk check, after the client is counted and before anything is counted
  // against the number. It may wait for a service, so it runs outside the unit of work below.
  if (options.beforeSend !== undefined) {
    await countHits(store, clientHits)
    if (await options.beforeSend(args.request, phone) !== true) throw new SendRefusedError()
  }
  // Otherwise the client is counted by the first read (on PostgreSQL in its statement).
  const hitsWithRead = options.beforeSend === undefined ? clientHits : []

  const budget: Refusal = (seconds) => ctx.budget.exhausted(seconds, log)
  const sendLimits: Limit[] = [
    { key: `send:phone:${phone}`, rules: options.rateLimit.sendsPerPhone },
    // Across numbers, for every code opened (with or without an account, which must look the
    // same): runs of sequential numbers, and the app's whole SMS bill.
    { key: `send:prefix:${phone.slice(0, -3)}`, rules: options.rateLimit.sendsPerPrefix },
    { key: 'send:global', rules: options.rateLimit.sendsGlobal, refusal: budget },
  ]
  const checks = planChecks([{ key: lockKey(phone), rules: options.rateLimit.failedVerifiesPerPhone, refusal: phoneLocked, sliding: true }, ...sendLimits])

  // From the client's count to the counted sends, the code is opened with its writes committed
  // together: this part only awaits the store.
  const { recipient, deliver, challengeId, code, fixedCode } = await store.unitOfWork(async () => {
    // The number's challenge, its account and the counters of its limits, in one read: a number
    // with an account and one without cost the same.
    const before = await store.readBeforeSend(phone, phoneKeyFor(hashKey, phone), checks.keys, hitsWithRead[0])
    await countHits(store, hitsWithRead, before.hit)
    // A request inside the cooldown is refused before it counts against the number's allowance, so
    // such requests cannot exhaust it and lock the owner out. The upsert below re-checks the
    // cooldown atomically for requests that race past this read.
    const previous = before.challenge
    if (previous !== undefined && previous.sentAt.getTime() + options.otpResendIntervalMs > now.getTime()) {
      throw resendTooSoon(previous.sentAt, now, options.otpResendIntervalMs)
    }
    // A locked number gets no code, and a number whose allowances are spent gets none either:
    // checked here, before a new code would replace the owner's pending one. The sends are counted
    // once the challenge is opened, for the one request that opened it: a burst of parallel
    // requests spends one send, not twenty.
    checks.refuseIfAnyFull(before.counters, now)

    const recipient = recipientOf(accountFound(hashKey, phone, before))
    const fixedCode = options.phonePolicy.testNumbers.get(phone)
    const deliver = recipient.deliver && fixedCode === undefined
    const challengeId = randomUUID()
    const code = fixedCode ?? generateCode(options.otpLength)
    // Verifying vendors keep the code themselves; a null hash sends checks to them.
    const codeHash = options.smsVerifies && deliver ? vendorCheckMark(hashKey, phone, challengeId, recipient.owner) : hashCode(hashKey, phone, challengeId, code, recipient.owner)
    const opened: { challenge?: OtpChallenge } = {}
    try {
      // The challenge and, only once it is open, the sends it counts, all of them or none (on
      // PostgreSQL one statement): requests that raced past the reads above cannot overshoot.
      await takeSlots(store, sendLimits, now, async (counters) => {
        const { challenge, full } = await store.openChallengeTaking({
          phone, challengeId, codeHash, now, expiresAt: new Date(now.getTime() + options.otpTtlMs), resendIntervalMs: options.otpResendIntervalMs,
        }, counters)
        opened.challenge = challenge
        return full
      })
    } catch (error) {
      await store.withdrawChallenge(phone, challengeId)
      throw error
    }
    if (opened.challenge === undefined) throw resendTooSoon((await store.findChallenge(phone))?.sentAt ?? now, now, options.otpResendIntervalMs)
    return { recipient, deliver, challengeId, code, fixedCode }
  })

  if (deliver) {
    const provider = options.sms
    const delivery = callSmsVendor({
      to: phone,
      timeoutMs: options.smsTimeoutMs,
      log,
      provider: provider.name ?? 'custom',
      call: (signal) => isVerifyingProvider(provider)
        ? provider.start({ to: phone, locale: args.locale }, signal)
        : provider.send({ to: phone, body: options.otpMessage({ code, ttlMinutes: Math.ceil(options.otpTtlMs / 60_000) }), code, locale: args.locale }, signal),
    }).then(() => {
      ctx.events.emit(args.request, { type: 'otp.sent', userid: recipient.userid, phone })
    }, async (error: unknown) => {
      // An undelivered code must not work. Awaited, the client is told and may ask again at once;
      // in the background, the challenge stays (cooldown, attempts) with a code nobody can enter,
      // exactly like the challenge of a number without an account.
      if (options.smsDelivery === 'await') await store.withdrawChallenge(phone, challengeId)
      else await store.killChallenge(phone, challengeId)
      ctx.events.emit(args.request, { type: 'sms.failed', userid: recipient.userid, phone, reason: (error as { code?: string }).code })
      throw error
    })
    if (options.smsDelivery === 'await') {
      await delivery
    } else {
      // Answer now, deliver after: the answer (status, body, time) must not depend on whether the
      // number has an account, and only numbers with one wait for a vendor.
      ctx.deliveries.track(delivery.catch((error: unknown) => {
        if (!isVendorFailure(error)) log.error({ err: loggableError(error), phone: maskPhone(phone) }, 'fastify-securelogin: SMS delivery failed')
      }))
    }
  } else if (fixedCode === undefined) {
    log.info({ phone: maskPhone(phone) }, recipient.owner === undefined
      ? 'fastify-securelogin: no SMS sent: the number has no account (register it first)'
      : 'fastify-securelogin: no SMS sent: a change of number to a number that has an account')
  } else {
    log.info({ phone: maskPhone(phone) }, 'fastify-securelogin: no SMS sent: a test number, whose code is fixed')
  }
}

/** A code found right: the account it proves, its number and the challenge the session must use up. */
export interface ApprovedCode {
  user: User
  phone: string
  challengeId: string
}

/**
 * Checks a sign-in code (see checkCode). The code is used up by the session it opens
 * (`openSession`, store.consumeIntoSession), which only one caller can win: one code never signs
 * in twice. Without the app's `jwt.claims` hook, which may wait and must run before the code is
 * used, the session is opened as the check's `onMatch`: on better-sqlite3 in the check's unit of
 * work, one commit instead of two. Otherwise the caller opens it (`opened` is undefined).
 */
export async function verifyLoginCode<T> (ctx: ChallengeContext, args: { phone: string, code: string, userid?: string, request: FastifyRequest }, openSession: (approved: ApprovedCode) => Promise<T>): Promise<{ approved: ApprovedCode, opened: T | undefined }> {
  const { options, store } = ctx
  const { phone } = args
  const sessionInCheck = options.jwtClaims === undefined
  let found: FoundAccount | undefined
  return checkCode(ctx, args, {
    // A userid that is not the number's looks and costs exactly like a wrong code: otherwise anyone
    // who knows a user's public id could test candidate numbers for it for free.
    mismatch: (account) => {
      found = account
      return args.userid !== undefined && args.userid !== account.userid
    },
    userid: () => found?.user?.id,
    onMatch: async (challengeId, now) => {
      // With signUp 'on-verify' the first proof of the number makes its account, under the id login
      // answered. Otherwise only numbers with an account receive a code: a match without one is refused.
      const account = found?.user ?? (options.signUp === 'on-verify' ? await registerAccount(ctx, phone, undefined, now) : undefined)
      if (account === undefined) throw new OtpInvalidError()
      if (account.status !== 'active') throw new AccountInactiveError()
      // The right code proves the number, whichever request then wins the code.
      if (account.phoneVerifiedAt === null) await store.markPhoneVerified(account.id, now)
      const approved = { user: account, phone, challengeId }
      return { approved, opened: sessionInCheck ? await openSession(approved) : undefined }
    },
  })
}

/**
 * Checks a code sent by sendPhoneChangeCode for the account `userId`; answers the challenge the
 * change must use up (store.changePhone).
 */
export async function verifyPhoneChangeCode (ctx: ChallengeContext, args: { phone: string, code: string, request: FastifyRequest, userId: string }): Promise<string> {
  return checkCode(ctx, args, { owner: args.userId, userid: () => args.userId, onMatch: async (challengeId) => challengeId })
}

/** The code's hash was made by a verifying vendor's challenge (none, or an owner's mark): the vendor compares. */
function checkedByVendor (challenge: { codeHash: string | null }): boolean {
  return challenge.codeHash === null || challenge.codeHash.startsWith('owner:')
}

/**
 * Checks a code against the number's open challenge, then runs `onMatch`. Each call spends one of
 * the challenge's attempts before anything is compared, so concurrent guesses cannot exceed the
 * attempt limit, and takes one of the number's wrong-code slots, given back unless it was a wrong
 * guess (or a `mismatch`, which counts as one).
 */
async function checkCode<T> (ctx: ChallengeContext, args: { phone: string, code: string, request: FastifyRequest }, check: {
  owner?: string
  /** Given the number's account, read with the attempt: true counts the check as a wrong code. */
  mismatch?: (found: FoundAccount) => boolean
  userid: () => string | undefined
  onMatch: (challengeId: string, now: Date) => Promise<T>
}): Promise<T> {
  const { options, store, hashKey, log } = ctx
  const { phone, code } = args
  const now = new Date()
  const address = clientAddress(args.request)

  /** Decides with `approve`, then runs onMatch or refuses; the slots go back unless it was a wrong guess. */
  const settle = async (slots: readonly string[], challenge: { challengeId: string, attempts: number }, mismatch: boolean, approve: () => boolean | Promise<boolean>): Promise<T> => {
    let wrongGuess = false
    try {
      if (!await approve()) {
        wrongGuess = true
        ctx.events.emit(args.request, { type: 'otp.failed', userid: check.userid(), phone, reason: mismatch ? 'userid-mismatch' : 'wrong-code' })
        throw withAttemptsLeft(new OtpInvalidError(), options.otpMaxAttempts - challenge.attempts)
      }
      return await check.onMatch(challenge.challengeId, now)
    } finally {
      if (!wrongGuess) await freeSlots(ctx, slots)
    }
  }

  // Everything a check counts before it compares, committed together, and when the code's hash is
  // ours, the comparison and what follows it (onMatch, the slot's give-back) in the same commit:
  // this part only awaits the store. A vendor's check waits for the network, so it comes after.
  const counted = await store.unitOfWork(async () => {
    // Every check takes one of the number's wrong-code slots (failedVerifiesPerPhone, a sliding
    // window) before anything is compared, and gives it back unless it was a wrong guess: guesses
    // spread over codes, resends, addresses, window boundaries and concurrent requests cannot exceed
    // the budget. A locked number is refused even the right code. The client is counted first
    // (verifiesPerIp; on PostgreSQL, for a client with one counter, by the slot's own statement): a
    // client refused takes no slot.
    const clientHits = clientLimitHits('verify', address, options.rateLimit.verifiesPerIp, now)
    const slots = await slidingWindow.take(store, lockKey(phone), options.rateLimit.failedVerifiesPerPhone, now, phoneLocked, clientHits)
    let mismatch: boolean
    let challenge: OtpChallenge | undefined
    try {
      if (check.mismatch === undefined) {
        mismatch = false
        challenge = await store.recordAttempt(phone, now, options.otpMaxAttempts)
      } else {
        const read = await store.recordAttemptAndFindAccount(phone, phoneKeyFor(hashKey, phone), now, options.otpMaxAttempts)
        mismatch = check.mismatch(accountFound(hashKey, phone, read))
        challenge = read.challenge
      }
      if (challenge === undefined) {
        const current = await store.findChallenge(phone)
        const open = current !== undefined && current.consumedAt === null && current.expiresAt > now
        throw open ? new OtpAttemptsExceededError() : new OtpExpiredError()
      }
    } catch (error) {
      await freeSlots(ctx, slots)
      throw error
    }
    if (!mismatch && checkedByVendor(challenge)) return { settled: false as const, slots, challenge }
    const { codeHash, challengeId } = challenge
    return { settled: true as const, value: await settle(slots, challenge, mismatch, () => !mismatch && codeHash !== null && hashesMatch(codeHash, hashCode(hashKey, phone, challengeId, code, check.owner))) }
  })
  if (counted.settled) return counted.value

  const { slots, challenge } = counted
  return settle(slots, challenge, false, async () => {
    // The vendor checks the code by number only: the challenge must first be one of this
    // purpose and owner (a sign-in's for a sign-in, this account's change for a change).
    const mark = vendorCheckMark(hashKey, phone, challenge.challengeId, check.owner)
    const ours = mark === null ? challenge.codeHash === null : challenge.codeHash !== null && hashesMatch(challenge.codeHash, mark)
    const provider = options.sms
    if (!isVerifyingProvider(provider)) throw new OtpExpiredError()
    return ours && await callSmsVendor({
      to: phone, timeoutMs: options.smsTimeoutMs, log, provider: provider.name ?? 'custom', call: (signal) => provider.check({ to: phone, code }, signal),
    })
  })
}

/** Gives back wrong-code slots taken by a check that was not a wrong guess; a failure only costs the owner a slot. */
async function freeSlots (ctx: ChallengeContext, slots: readonly string[]): Promise<void> {
  await slidingWindow.free(ctx.store, slots).catch((error: unknown) => ctx.log.warn({ err: loggableError(error) }, 'fastify-securelogin: could not give back a wrong-code slot'))
}
