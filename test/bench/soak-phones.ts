// Phone numbers for the soak, and the codes the server "texts" to them.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max'
import type { ServerHandle } from './common.js'

// US area codes in which libphonenumber-js takes every exchange 200-999 as a valid mobile-or-landline
// number; numbers without an account come from another one, so the two never meet.
const ACCOUNT_AREA_CODES = ['212', '213', '312', '415', '617', '718', '917', '303', '206']
const NO_ACCOUNT_AREA_CODES = ['646']

/**
 * How many numbers share one prefix (all digits but the last 3, what `rateLimit.sendsPerPrefix`
 * counts, 20 codes an hour by default): a number gets at most 3 codes in the soak, so 5 of them
 * stay within the default and the load is not merely 429s.
 */
const NUMBERS_PER_PREFIX = 5
const SERVED_TYPES = new Set(['MOBILE', 'FIXED_LINE_OR_MOBILE', 'VOIP', 'PERSONAL_NUMBER'])

/** The i-th number of a run: +1 AAA XXX P SSS, five numbers per prefix +1AAAXXXP. */
function phoneAt (i: number, areaCodes: readonly string[]): string {
  const slot = i % NUMBERS_PER_PREFIX
  const prefix = Math.floor(i / NUMBERS_PER_PREFIX)
  const lastOfPrefix = prefix % 10
  const exchange = 200 + Math.floor(prefix / 10) % 800
  const area = areaCodes[Math.floor(prefix / 8000) % areaCodes.length]
  return `+1${area}${exchange}${lastOfPrefix}${String(100 + slot * 111)}`
}

/** Distinct valid numbers that the plugin serves by default (checked as the plugin checks them). */
export function phoneSupply (kind: 'accounts' | 'no-account'): () => string {
  const areaCodes = kind === 'accounts' ? ACCOUNT_AREA_CODES : NO_ACCOUNT_AREA_CODES
  let next = 0
  return () => {
    for (;;) {
      const phone = phoneAt(next++, areaCodes)
      const parsed = parsePhoneNumberFromString(phone)
      if (parsed?.isValid() === true && SERVED_TYPES.has(parsed.getType() ?? '')) return phone
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The codes the server's in-memory SMS provider was given, read over IPC. The plugin answers
 * /login before it calls the provider, so a code may arrive a moment after the answer; `take`
 * waits for it. One IPC read at a time: the server handle keeps one waiter per message type.
 */
export class CodeBox {
  private readonly codes = new Map<string, string>()
  private pulling: Promise<void> | undefined

  constructor (private readonly server: ServerHandle) {}

  /** The code last sent to `phone`, or undefined when none came within `timeoutMs`. */
  async take (phone: string, timeoutMs = 3000): Promise<string | undefined> {
    const until = Date.now() + timeoutMs
    for (;;) {
      const code = this.codes.get(phone)
      if (code !== undefined) {
        this.codes.delete(phone)
        return code
      }
      if (Date.now() > until) return undefined
      await this.pull()
      if (!this.codes.has(phone)) await sleep(5)
    }
  }

  private pull (): Promise<void> {
    this.pulling ??= this.server.ask<{ codes: Array<{ phone: string, code: string }> }>('codes')
      .then(({ codes }) => { for (const { phone, code } of codes) this.codes.set(phone, code) })
      .finally(() => { this.pulling = undefined })
    return this.pulling
  }
}
