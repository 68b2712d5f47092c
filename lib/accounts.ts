import { createHmac } from 'node:crypto'
import { isUniqueViolation } from './db/faults.js'
import { countHits } from './rate-limit.js'
import type { RevocationList } from './revocation.js'
import type { HitAt, Store, User } from './store/index.js'

/** What the account operations need. */
export interface AccountContext {
  store: Store
  /** Key for code hashes, account ids and number history, derived from (never equal to) the JWT key. */
  hashKey: Buffer
  revocations: RevocationList
}

/**
 * The id of the next account of a number that has had `endedAccounts` accounts before: the id
 * registration gives it, and the one login answers for the number while it has no account, so
 * the two cannot tell a caller whether the number has an account today. A keyed hash, so ids
 * reveal nothing of the number; counting the accounts the number has had means an id never
 * passes to the next holder of a recycled number. (The first account's id is the hash of the
 * number alone, as before this count existed.)
 */
export function accountIdFor (hashKey: Buffer, phone: string, endedAccounts = 0): string {
  const input = endedAccounts === 0 ? `account-id\n${phone}` : `account-id\n${phone}\n${endedAccounts}`
  const hex = createHmac('sha256', hashKey).update(input).digest('hex')
  const variant = ((parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

/** The key of a number in `securelogin_phone_history`: a keyed hash, so no deleted account's number is kept. */
export function phoneKeyFor (hashKey: Buffer, phone: string): string {
  return createHmac('sha256', hashKey).update(`phone-history\n${phone}`).digest('base64url')
}

/** A number's account, if any, and the id the number's account has or would get. */
export interface FoundAccount { user: User | undefined, userid: string }

/** A number's account and the id a new one would get, from a read of the account and the number's ended accounts (store.readBeforeSend, store.recordAttemptAndFindAccount). */
export function accountFound (hashKey: Buffer, phone: string, { user, endedAccounts }: { user: User | undefined, endedAccounts: number }): FoundAccount {
  return { user, userid: user?.id ?? accountIdFor(hashKey, phone, endedAccounts) }
}

/**
 * Creates the account of a number, or returns the one it has (see store.registerUser). When an
 * account leaves the number while this runs (deleted, or moved to another number), the id read
 * before may be the leaving account's: the history is read again after the insert, which cannot
 * complete before that change commits (the number's unique index waits for it), and a stale id
 * is taken back and the registration done again. `clientHits` (the register route's client) are
 * counted first, by the first read of the history (see countHits), and a full one refuses (429).
 */
export async function registerAccount (ctx: Pick<AccountContext, 'store' | 'hashKey'>, phone: string, username: string | undefined, now: Date, clientHits: readonly HitAt[] = []): Promise<User> {
  const { store, hashKey } = ctx
  const phoneKey = phoneKeyFor(hashKey, phone)
  const [firstHit] = clientHits
  for (let attempt = 1; ; attempt++) {
    let endedAccounts: number
    if (attempt === 1 && firstHit !== undefined) {
      const read = await store.endedAccountsAfterHit(phoneKey, firstHit)
      await countHits(store, clientHits, read.hit)
      endedAccounts = read.endedAccounts
    } else {
      endedAccounts = await store.endedAccountsOf(phoneKey)
    }
    const id = accountIdFor(hashKey, phone, endedAccounts)
    let registered: Awaited<ReturnType<Store['registerUser']>>
    try {
      registered = await store.registerUser(id, phone, username, now)
    } catch (error) {
      // The id is still that of the account that has just moved from this number to another.
      if (isUniqueViolation(error) && attempt < 3) continue
      throw error
    }
    if (!registered.created || await store.endedAccountsOf(phoneKey) === endedAccounts) return registered.user
    await store.deleteNewAccount(id)
    if (attempt >= 3) throw new Error('fastify-securelogin: the number kept changing accounts during registration')
  }
}

/** Ends every session of the account; their tokens stop working here at once, elsewhere within `revocationMaxDelay`. */
export async function endAllSessions (ctx: AccountContext, userId: string, reason: string): Promise<number> {
  const ended = await ctx.store.endSessions(userId, reason, new Date())
  for (const sid of ended) ctx.revocations.add(sid)
  return ended.length
}

/** Sets the account's status: any but 'active' ends every session and refuses sign-in. False when there is no such account. */
export async function setAccountStatus (ctx: AccountContext, userId: string, status: 'active' | 'disabled'): Promise<boolean> {
  const ended = await ctx.store.setStatus(userId, status, new Date())
  for (const sid of ended ?? []) ctx.revocations.add(sid)
  return ended !== undefined
}

/**
 * Deletes the account (see store.deleteAccount): its sessions end, its number may register again
 * and then gets a new id. False when there is no such account.
 */
export async function deleteAccount (ctx: AccountContext, userId: string): Promise<boolean> {
  // Read, then delete on condition that the number is still the one read: a phone change in
  // between would otherwise count the ended account against the wrong number.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const user = await ctx.store.findUserById(userId)
    if (user === undefined) return false
    const ended = await ctx.store.deleteAccount({ userId, phone: user.phone, phoneKey: user.phone === null ? undefined : phoneKeyFor(ctx.hashKey, user.phone), now: new Date() })
    if (ended === undefined) continue
    for (const sid of ended) ctx.revocations.add(sid)
    return true
  }
  throw new Error('fastify-securelogin: the account kept changing during its deletion')
}
