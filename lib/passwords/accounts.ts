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
import { signSessionTokens, type IssuedSession } from '../sessions.js'
import type { User } from '../store/index.js'
import { hashPassword, verifyAgainstDummyHash, verifyPassword, type PasswordCheck } from './hash.js'
import { normalizePassword } from './policy.js'

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
  if (isBreached !== undefined && await isBreached(password) === true) throw new PasswordBreachedError()
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
    const check: PasswordCheck = user === undefined || passwordHash === null
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
    if (check.needsRehash) await store.replacePasswordHash(user.id, passwordHash, await hashPassword(password))
    return { user, issued }
  }
  throw new CredentialsInvalidError()
}

/**
 * Changes the caller's password, or adds the first one (a phone account, which then also gives
 * the email it will sign in with). Every other session of the account ends; the caller's stays.
 * A wrong current password counts against the email's failure budget, as at sign-in: a stolen
 * fresh token must not become a way to guess the password.
 */
export async function changePassword (ctx: PasswordContext, args: { userId: string, sid: string, oldPassword: string | undefined, newPassword: string, email: string | undefined }): Promise<string[]> {
  const { store, options, hashKey, revocations } = ctx
  const { userId, sid, oldPassword } = args
  const user = await store.findUserById(userId)
  if (user === undefined) throw new SessionRevokedError()
  if (user.status !== 'active') throw new AccountInactiveError()
  let email: string | undefined
  if (user.passwordHash === null) {
    if (oldPassword !== undefined) throw new BadRequestError('body/oldpassword must be absent: the account has no password yet')
    if (user.email === null && args.email === undefined) throw new BadRequestError('body/email is required: the account has no email to sign in with yet')
    if (user.email !== null && args.email !== undefined) throw new BadRequestError('body/email must be absent: the account has an email already')
    email = args.email === undefined ? undefined : emailOf(args.email)
  } else {
    if (oldPassword === undefined) throw new BadRequestError('body/oldpassword is required: the account has a password')
    if (args.email !== undefined) throw new BadRequestError('body/email must be absent: the account has an email already')
  }
  const newPassword = newPasswordOf(args.newPassword)
  if (user.passwordHash !== null && oldPassword !== undefined) {
    // An account with a password has an email (registration and adding a password both set one).
    const key = loginLockKey(hashKey, user.email ?? user.id)
    const slots = await slidingWindow.take(store, key, options.rateLimit.failedLoginsPerAccount, new Date(), loginLocked)
    if (!(await verifyPassword(user.passwordHash, oldPassword)).ok) throw new PasswordIncorrectError()
    await slidingWindow.free(store, slots)
  }
  await refuseBreached(ctx, newPassword)
  let ended: string[] | undefined
  try {
    ended = await store.setPassword({ userId, from: user.passwordHash, to: await hashPassword(newPassword), email, keepSid: sid, now: new Date() })
  } catch (error) {
    if (isUniqueViolation(error)) throw new EmailTakenError()
    throw error
  }
  // Changed by another request since it was read (or disabled): the current password given is no longer current.
  if (ended === undefined) throw new PasswordIncorrectError()
  for (const endedSid of ended) revocations.add(endedSid)
  return ended
}
