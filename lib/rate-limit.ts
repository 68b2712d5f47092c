import { hex4, type ClientAddress } from './client-ip.js'
import { RateLimitedError, withRetryAfter } from './errors.js'
import type { ResolvedRateLimitRule } from './options.js'
import type { HitAt, HitCount, Store } from './store/index.js'

/** What a full limit answers, given the seconds until its window ends. */
export type Refusal = (seconds: number) => Error

const rateLimited: Refusal = (seconds) => withRetryAfter(new RateLimitedError(seconds), seconds)

/** The counter of one of a limit's rules: with several rules (hourly and daily), each window has its own. */
function ruleKey (key: string, rule: ResolvedRateLimitRule, rules: readonly ResolvedRateLimitRule[]): string {
  return rules.length > 1 ? `${key}/${rule.windowMs / 1000}s` : key
}

function secondsUntil (resetAt: Date, now: Date): number {
  return Math.max(1, Math.ceil((resetAt.getTime() - now.getTime()) / 1000))
}

/** The hits one request counts on `key`: one per rule, each rule's window its own counter. */
export function limitHits (key: string, rules: readonly ResolvedRateLimitRule[], now: Date): HitAt[] {
  return rules.map((rule) => ({ key: ruleKey(key, rule, rules), windowMs: rule.windowMs, max: rule.max, now }))
}

/**
 * Counts `hits` in order, one upsert each (so concurrent hits on several instances all count), and
 * throws 429 with the seconds to wait at the first full one: the later ones are then not counted,
 * so a client refused at its own limit spends nothing of its neighbours'. `firstCounted`: what
 * counting the first answered, when the statement it guards counted it (store.readBeforeSend,
 * store.endedAccountsAfterHit, store.takeFirstFreeSlot: on PostgreSQL one round trip fewer).
 */
export async function countHits (store: Store, hits: readonly HitAt[], firstCounted?: HitCount): Promise<void> {
  for (const [index, { key, windowMs, max, now }] of hits.entries()) {
    const { count, resetAt } = index === 0 && firstCounted !== undefined ? firstCounted : await store.hitRateLimit(key, windowMs, now)
    if (count > max) throw rateLimited(secondsUntil(resetAt, now))
  }
}

/** A limit to check before anything is counted: a fixed-window counter, or with `sliding` a sliding window's slots. */
export interface Check extends Limit { sliding?: boolean }

/** Counter rows by key, as they are (window not applied). */
export type Counters = Map<string, { count: number, windowStart: Date }>

/**
 * What `checks` read, and their refusal once read: the keys of every counter of every check, in
 * one list, so that a request reads them all in one statement (with other reads, see
 * store.readBeforeSend), and `refuseIfAnyFull`, which throws the refusal of the first full rule
 * of `checks`, in their order, counting nothing: for limits that must be counted only once the
 * request has won (a send counts only for the request that opened the code), and for a lock that
 * refuses before anything is spent.
 */
export function planChecks (checks: readonly Check[]) {
  // Each rule's counter keys, made once: read together, then checked rule by rule.
  const planned = checks.map(({ key, rules, sliding }) => rules.map((rule) => ({
    rule,
    keys: sliding === true ? slidingWindow.slotKeys(key, rule, rules) : [ruleKey(key, rule, rules)],
  })))
  return {
    keys: planned.flatMap((rules) => rules.flatMap(({ keys }) => keys)),
    refuseIfAnyFull (counters: Counters, now: Date): void {
      for (const [index, check] of checks.entries()) {
        const refusal = check.refusal ?? rateLimited
        for (const { rule, keys } of planned[index]!) {
          if (check.sliding === true) {
            const { free, secondsUntilFree } = slotsInUse(keys, counters, rule, now)
            if (free.length === 0) throw refusal(secondsUntilFree)
            continue
          }
          const counter = counters.get(keys[0] as string)
          const resetAt = counter === undefined ? 0 : counter.windowStart.getTime() + rule.windowMs
          // A counter whose window has ended counts nothing.
          if (counter !== undefined && resetAt > now.getTime() && counter.count >= rule.max) throw refusal(secondsUntil(new Date(resetAt), now))
        }
      }
    },
  }
}

/** Which of a sliding window's slots (`keys`) are free now, and when the first busy one frees. */
function slotsInUse (keys: readonly string[], counters: Counters, rule: ResolvedRateLimitRule, now: Date): { free: string[], secondsUntilFree: number } {
  const floor = now.getTime() - rule.windowMs
  const busy = keys.filter((slot) => (counters.get(slot)?.windowStart.getTime() ?? 0) > floor)
  const free = keys.filter((slot) => !busy.includes(slot))
  const firstFrees = Math.min(...busy.map((slot) => (counters.get(slot) as { windowStart: Date }).windowStart.getTime() + rule.windowMs))
  return { free, secondsUntilFree: busy.length === 0 ? 1 : secondsUntil(new Date(firstFrees), now) }
}

/** A limit to take a slot of: its counter's key, its rules and what a full one answers. */
export interface Limit { key: string, rules: readonly ResolvedRateLimitRule[], refusal?: Refusal }

/** Takes a hit on every counter or on none, and answers the index of the first full one or -1 (store.takeRateLimits, or a statement that does more, such as store.openChallengeTaking). */
export type TakeCounters = (counters: ReadonlyArray<{ key: string, windowMs: number, max: number }>) => Promise<number>

/**
 * Takes one slot of every rule of every limit, all atomically or none (see store.takeRateLimits):
 * at a full rule the limit's refusal is thrown, so a refused request spends nothing of any limit
 * and concurrent requests never overshoot.
 */
export async function takeSlots (store: Store, limits: readonly Limit[], now: Date, take: TakeCounters = async (counters) => store.takeRateLimits(counters, now)): Promise<void> {
  const counters = limits.flatMap(({ key, rules, refusal = rateLimited }) =>
    rules.map((rule) => ({ key: ruleKey(key, rule, rules), windowMs: rule.windowMs, max: rule.max, refusal })))
  const full = counters[await take(counters)]
  if (full === undefined) return
  const counter = await store.readRateLimit(full.key, full.windowMs, now)
  throw full.refusal(counter === undefined ? Math.ceil(full.windowMs / 1000) : secondsUntil(counter.resetAt, now))
}

/**
 * A sliding window kept as one row per allowed hit (`key#0` … `key#max-1`), each holding when it was
 * last taken: a hit takes a free slot (one taken a window ago or more) with one conditional upsert,
 * so at most `max` hits fall in ANY span of one window, whatever the boundaries (a fixed-window
 * counter allows twice that across one). For small budgets: a hit may try up to `max` slots.
 */
export const slidingWindow = {
  slotKeys (key: string, rule: ResolvedRateLimitRule, rules: readonly ResolvedRateLimitRule[]): string[] {
    const base = ruleKey(key, rule, rules)
    return Array.from({ length: rule.max }, (_, i) => `${base}#${i}`)
  },

  /** The slots of a rule in use now (taken less than a window ago), and when the first of them frees. */
  async inUse (store: Store, key: string, rule: ResolvedRateLimitRule, rules: readonly ResolvedRateLimitRule[], now: Date) {
    const keys = slidingWindow.slotKeys(key, rule, rules)
    return slotsInUse(keys, await store.readCounters(keys), rule, now)
  },

  /**
   * Takes a slot under every rule, or none (the ones taken are freed) and throws `refusal`. First
   * takes the first free slot in one statement; when that finds none (all busy, or the one it
   * picked was taken meanwhile), reads the slots once and tries only those that read as free. Each
   * take is one conditional upsert, so a slot another request took meanwhile is simply not won.
   * `clientHits` are counted first (see countHits). Returns the slots taken.
   */
  async take (store: Store, key: string, rules: readonly ResolvedRateLimitRule[], now: Date, refusal: Refusal = rateLimited, clientHits: readonly HitAt[] = []): Promise<string[]> {
    const taken: string[] = []
    // A slot taken is seen by every other request at once (on PostgreSQL each statement commits on
    // its own), so a client refused must never hold one, not even for a moment: a single client hit
    // goes with the first take (on PostgreSQL in its statement, which then takes no slot past the
    // hit's max); several (an IPv6 client's /64, /56 and /48, or several rules) are counted before.
    const withTake = clientHits.length === 1 ? clientHits[0] : undefined
    if (withTake === undefined || rules.length === 0) await countHits(store, clientHits)
    for (const [index, rule] of rules.entries()) {
      const hit = index === 0 ? withTake : undefined
      const first = await store.takeFirstFreeSlot(slidingWindow.slotKeys(key, rule, rules), rule.windowMs, now, hit)
      if (hit !== undefined) await countHits(store, [hit], first.hit)
      if (first.slot !== undefined) {
        taken.push(first.slot)
        continue
      }
      const { free, secondsUntilFree } = await slidingWindow.inUse(store, key, rule, rules, now)
      let slot: string | undefined
      for (const candidate of free) {
        if (await store.takeSlidingSlot(candidate, rule.windowMs, now)) {
          slot = candidate
          break
        }
      }
      if (slot === undefined) {
        for (const done of taken) await store.freeSlot(done)
        throw refusal(secondsUntilFree)
      }
      taken.push(slot)
    }
    return taken
  },

  async free (store: Store, slots: readonly string[]): Promise<void> {
    for (const slot of slots) await store.freeSlot(slot)
  },

  async reset (store: Store, key: string, rules: readonly ResolvedRateLimitRule[]): Promise<void> {
    for (const rule of rules) for (const slot of slidingWindow.slotKeys(key, rule, rules)) await store.deleteRateLimit(slot)
  },
}

/**
 * Where a client is counted, as rows of one table: an IPv4 address on its own; an IPv6 client
 * usually holds a whole /64 (2^64 addresses), a site a /56, and anybody gets a /48 free from a
 * tunnel broker, so IPv6 counts per /64 with the rule's budget and also per /56 and /48 with 4 and
 * 16 times it. A /48 then gets 16 clients' worth of requests, not 65,536.
 */
const CLIENT_SCOPES: ReadonlyArray<{ family: 4 | 6, prefixLength: number, budget: number }> = [
  { family: 4, prefixLength: 32, budget: 1 },
  { family: 6, prefixLength: 64, budget: 1 },
  { family: 6, prefixLength: 56, budget: 4 },
  { family: 6, prefixLength: 48, budget: 16 },
]

/** What a per-client rule counts; part of the key, so each action has its own counters. */
export type ClientAction = 'send' | 'verify' | 'register' | 'login'

/** The keys `address` is counted under, narrowest first, each with its multiple of a rule's `max`. */
export function clientLimitKeys (address: ClientAddress): Array<{ key: string, budget: number }> {
  return CLIENT_SCOPES.filter((scope) => scope.family === address.family).map(({ prefixLength, budget }) => ({
    key: address.groups === undefined ? address.ip : networkKey(address.groups, prefixLength),
    budget,
  }))
}

/** `2001:0db8:0001:0200::/56`: the groups of the network, host bits zeroed, then the prefix length. */
function networkKey (groups: number[], prefixLength: number): string {
  const kept = Math.ceil(prefixLength / 16)
  const network = groups.slice(0, kept).map((group, i) => {
    const bits = Math.min(16, prefixLength - 16 * i)
    return hex4(group & ((0xffff << (16 - bits)) & 0xffff))
  })
  return `${network.join(':')}::/${prefixLength}`
}

/** The hits one request of `action` from `address` counts, in order: the client's keys, narrowest first, each under every rule. */
export function clientLimitHits (action: ClientAction, address: ClientAddress, rules: readonly ResolvedRateLimitRule[], now: Date): HitAt[] {
  return clientLimitKeys(address).flatMap(({ key, budget }) => limitHits(`${action}:ip:${key}`, rules.map((rule) => ({ max: rule.max * budget, windowMs: rule.windowMs })), now))
}

/**
 * Counts one request of `action` from `address` under each of the client's keys, narrowest first,
 * and throws 429 at the first full one (see countHits).
 * @example await enforceClientLimit(store, 'send', clientAddress(request), options.rateLimit.sendsPerIp, now)
 */
export async function enforceClientLimit (store: Store, action: ClientAction, address: ClientAddress, rules: readonly ResolvedRateLimitRule[], now: Date): Promise<void> {
  await countHits(store, clientLimitHits(action, address, rules, now))
}
