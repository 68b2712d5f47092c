import { createHmac, randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { SecureLoginContext } from '../context.js'
import { clientAddress } from '../client-ip.js'
import { extraClaimsFor } from '../claims.js'
import { isUniqueViolation } from '../db/faults.js'
import { deviceOf } from '../device.js'
import { normalizeEmail } from '../email.js'
import {
  AccountInactiveError, BadRequestError, CredentialsInvalidError, EmailInvalidError, EmailTakenError, LoginLockedError,
  PasswordBreachedError, PasswordIncorrectError, PasswordPolicyError, SessionRevokedError, withRetryAfter,
} from '../errors.js'
import { enforceClientLimit, slidingWindow, type Refusal } from '../rate-limit.js'
import { loggableError } from '../redact.js'
import { signSessionTokens, type IssuedSession } from '../sessions.js'
import type { User } from '../store/index.js'
import { hashPassword, verifyAgainstDummyHash, verifyPassword, type PasswordCheck } from './hash.js'
import { hasLoneSurrogate, normalizePassword } from './policy.js'

// Email-and-password accounts (`password.enabled`): registration, sign-in and change of password.
// The routes check that the option is on; everything here assumes it.

type PasswordContext = Pick<SecureLoginContext, 'options' | 'store' | 'tokens' | 'revocations' | 'hashKey'>

/** An email as stored, or 400 SECURELOGIN_EMAIL_INVALID saying why not. */
export function emailOf (raw: string): string {
  try {
    return normalizeEmail(raw)
  } catch (error) {
    throw new EmailInvalidError((error as Error).message)
  }
}

/**
 * The counter of an email's wrong passwords (`rateLimit.failedLoginsPerAccount`), for an email
 * with an account or without one alike. A keyed hash: the counters table holds no email address.
 */
export function loginLockKey (hashKey: Buffer, email: string): string {
  return `login:fail:email:${createHmac('sha256', hashKey).update(`login-email\n${email}`).digest('base64url')}`
}

const loginLocked: Refusal = (seconds) => withRetryAfter(new LoginLockedError(seconds), seconds)

/** A new password as it is hashed (NFKC), or 400 SECURELOGIN_PASSWORD_POLICY saying why not. */
function newPasswordOf (raw: string): string {
  try {
    return normalizePassword(raw)
  } catch (error) {
    throw new PasswordPolicyError((error as Error).message)
  }
}

/** The app's breach check (`password.isBreached`): after the rate limits, as it may call a remote service. */
async function refuseBreached (ctx: PasswordContext, password: string): Promise<void> {
  const { isBreached } = ctx.options.password
  if (isBreached === undefined) return
  const breached: unknown = await isBreached(password)
  // A truthy string or a forgotten `await` inside the hook must not pass as "not breached".
  if (typeof breached !== 'boolean') throw new TypeError('fastify-securelogin: password.isBreached must return true or false')
  if (breached) throw new PasswordBreachedError()
}

/** Opens a session for an account that has just shown its password; undefined when its hash or status changed meanwhile. */
async function openSession (ctx: PasswordContext, user: User, passwordHash: string, request: FastifyRequest): Promise<IssuedSession | undefined> {
  // Before the session: an app whose claims fail leaves nothing behind.
  const extraClaims = await extraClaimsFor(ctx.options.jwtClaims, { userid: user.id, phone: user.phone }, request)
  const now = Date.now()
  const session = await ctx.store.openPasswordSession({
    userId: user.id,
    passwordHash,
    session: { id: randomUUID(), expiresAt: new Date(now + ctx.options.refreshTokenTtlMs), ...deviceOf(request) },
    now: new Date(now),
  })
  if (session === undefined) return undefined
  return signSessionTokens(ctx.tokens, { userId: user.id, phone: user.phone, session, fresh: true, now, extraClaims })
}

/**
 * Creates an email-and-password account and signs it in (a fresh session, as the Flask library
 * answered). An email that has an account already is refused with 409: unlike a number, an email
 * is not proven by anything here, so its registration cannot answer with the existing account.
 */
export async function registerWithPassword (ctx: PasswordContext, args: { email: string, password: string, username: string | undefined, request: FastifyRequest }): Promise<{ user: User, issued: IssuedSession }> {
  const { request, username } = args
  const email = emailOf(args.email)
  const password = newPasswordOf(args.password)
  await enforceClientLimit(ctx.store, 'register', clientAddress(request), ctx.options.rateLimit.registersPerIp, new Date())
  await refuseBreached(ctx, password)
  const passwordHash = await hashPassword(password)
  const user = await ctx.store.insertPasswordUser({ id: randomUUID(), email, passwordHash, username, now: new Date() })
  if (user === undefined) throw new EmailTakenError()
  const issued = await openSession(ctx, user, passwordHash, request)
  // Disabled or deleted by the app in the instant since it was created.
  if (issued === undefined) throw new AccountInactiveError()
  return { user, issued }
}

/**
 * Signs in with an email and password. A wrong password, an unknown email and an account without
 * a password answer alike (401 SECURELOGIN_CREDENTIALS_INVALID) and take about as long: a
 * password is always hashed. Every attempt takes a slot of the email's failure budget before the
 * comparison, so concurrent guesses cannot exceed it; a right password gives its slot back.
 */
export async function signInWithPassword (ctx: PasswordContext, args: { email: string, password: string, request: FastifyRequest }): Promise<{ user: User, issued: IssuedSession }> {
  const { store, options, hashKey } = ctx
  const { password, request } = args
  const email = emailOf(args.email)
  const now = new Date()
  await enforceClientLimit(store, 'login', clientAddress(request), options.rateLimit.loginsPerIp, now)
  const slots = await slidingWindow.take(store, loginLockKey(hashKey, email), options.rateLimit.failedLoginsPerAccount, now, loginLocked)
  // A second pass only when the account's hash changed between reading and opening the session
  // (a re-hash by a concurrent sign-in, or a change of password): the password is checked again.
  for (let attempt = 1; attempt <= 2; attempt++) {
    const user = await store.findUserByEmail(email)
    const passwordHash = user?.passwordHash ?? null
    // A lone surrogate is not text: UTF-8 turns it into U+FFFD, so it would match a password that
    // has U+FFFD there. No password set here holds one (normalizePassword refuses them).
    const check: PasswordCheck = user === undefined || passwordHash === null || hasLoneSurrogate(password)
      ? { ok: await verifyAgainstDummyHash(password), needsRehash: false }
      : await verifyPassword(passwordHash, password)
    if (!check.ok || user === undefined || passwordHash === null) throw new CredentialsInvalidError()
    if (user.status !== 'active') {
      await slidingWindow.free(store, slots)
      throw new AccountInactiveError()
    }
    const issued = await openSession(ctx, user, passwordHash, request)
    if (issued === undefined) continue
    await slidingWindow.free(store, slots)
    // Imported (Werkzeug) and older Argon2 hashes give way to today's parameters; a change of
    // password meanwhile wins (the replacement is conditional on the hash checked).
    // The session is open and its tokens are made: a failed re-hash must not turn that into a 500
    // (the next sign-in tries again).
    if (check.needsRehash) {
      await hashPassword(password).then((rehashed) => store.replacePasswordHash(user.id, passwordHash, rehashed))
        .catch((error: unknown) => request.log.warn({ err: loggableError(error) }, 'fastify-securelogin: could not re-hash a password; the next sign-in tries again'))
    }
    return { user, issued }
  }
  throw new CredentialsInvalidError()
}

/**
 * Changes the caller's password, or adds the first one (a phone account, which then also gives
 * the email it will sign in with). Every other session of the account ends; the caller's stays.
 *
 * The current password is required only of an account without a number. A fresh access token of
 * an account with a number already controls it (it can move the account to another number), so
 * asking for the old password there protects nothing, and would leave an owner who signs in by
 * SMS no way to replace a password someone else set with a stolen token. A current password
 * that is given is checked all the same, and a wrong one counts against the email's failure
 * budget, as at sign-in.
 *
 * An `email` (required when the account has none) is checked for another account before any
 * hashing, and counts against `registersPerIp`: asking whether an address has an account costs
 * here what it costs at /register.
 */
export async function changePassword (ctx: PasswordContext, args: { userId: string, sid: string, oldPassword: string | undefined, newPassword: string, email: string | undefined, request: FastifyRequest }): Promise<string[]> {
  const { store, options, hashKey, revocations } = ctx
  const { userId, sid, oldPassword, request } = args
  const newPassword = newPasswordOf(args.newPassword)
  const email = args.email === undefined ? undefined : emailOf(args.email)
  if (email !== undefined) await enforceClientLimit(store, 'register', clientAddress(request), options.rateLimit.registersPerIp, new Date())
  let newHash: string | undefined
  // A second pass only when the account changed between reading and writing: a sign-in re-hashed
  // the same password, another change won, or the account was disabled.
  for (let attempt = 1; attempt <= 2; attempt++) {
    const user = await store.findUserById(userId)
    if (user === undefined) throw new SessionRevokedError()
    if (user.status !== 'active') throw new AccountInactiveError()
    if (user.passwordHash === null && oldPassword !== undefined) throw new BadRequestError('body/oldpassword must be absent: the account has no password yet')
    if (user.passwordHash !== null && user.phone === null && oldPassword === undefined) throw new BadRequestError('body/oldpassword is required: the account signs in with its password only')
    if (user.email === null && email === undefined) throw new BadRequestError('body/email is required: the account has no email to sign in with yet')
    if (email !== undefined && email !== user.email) {
      const holder = await store.findUserByEmail(email)
      if (holder !== undefined && holder.id !== userId) throw new EmailTakenError()
    }
    if (user.passwordHash !== null && oldPassword !== undefined) {
      // An account with a password has an email (registration and adding a password both set
      // one); a row imported without one is counted under its id.
      const key = loginLockKey(hashKey, user.email ?? user.id)
      const slots = await slidingWindow.take(store, key, options.rateLimit.failedLoginsPerAccount, new Date(), loginLocked)
      if (hasLoneSurrogate(oldPassword) || !(await verifyPassword(user.passwordHash, oldPassword)).ok) throw new PasswordIncorrectError()
      await slidingWindow.free(store, slots)
    }
    if (newHash === undefined) {
      await refuseBreached(ctx, newPassword)
      newHash = await hashPassword(newPassword)
    }
    let ended: string[] | undefined
    try {
      ended = await store.setPassword({ userId, from: user.passwordHash, to: newHash, email: email === user.email ? undefined : email, keepSid: sid, now: new Date() })
    } catch (error) {
      if (isUniqueViolation(error)) throw new EmailTakenError()
      throw error
    }
    if (ended === undefined) continue
    for (const endedSid of ended) revocations.add(endedSid)
    return ended
  }
  throw new PasswordIncorrectError()
}
