import type { CountryCode } from '../phone.js'
import { phoneCountry } from '../phone.js'
import type { SmsProvider, TextingSmsProvider, VerifyingSmsProvider } from './types.js'
import { isVerifyingProvider } from './types.js'
import { SmsDeliveryError } from './errors.js'

const FACTORY = 'routeSms()'

/** Told when the chosen provider failed with a transient error and the fallback is tried. */
export interface SmsFallbackEvent {
  /** The error of the provider that failed (an SmsDeliveryError, or an AbortError for a stall). */
  error: unknown
  /** Name of the provider that failed. */
  from: string
  /** Name of the fallback. */
  to: string
  /** Country of the destination (never the number), or undefined. */
  country?: CountryCode
}

export interface RouteSmsOptions<P extends SmsProvider> {
  /**
   * Providers for some countries, by ISO 3166-1 alpha-2 code. A number goes to its own country's
   * entry: `US` does not cover Canada although both use +1.
   * @example byCountry: { CN: aliyunSms, HK: aliyunSms }
   */
  byCountry?: Partial<Record<CountryCode, P>>
  /** For every other number. */
  default: P
  /** Tried once when the chosen provider fails with a transient error (5xx, 429, network, stall). */
  fallback?: P
  /**
   * Milliseconds the chosen provider gets before the fallback is tried instead. Only used with
   * `fallback`; keep it below the plugin's `smsTimeout` so the fallback has time left.
   * @default 5000
   */
  attemptTimeout?: number
  /** Called on each switch to the fallback, e.g. to log or count it. */
  onFallback?: (event: SmsFallbackEvent) => void
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 5000
// Numbers that went to the fallback on start(), so check() asks the vendor that holds the code.
const REMEMBER_MS = 15 * 60 * 1000
const REMEMBER_MAX = 10_000

/**
 * Chooses a provider by the number's country and tries `fallback` when the chosen one fails with a
 * transient error. All providers must be of one kind: all texting (`send`) or all verifying
 * (`start`/`check`).
 *
 * For verifying providers `check()` must reach the vendor that sent the code. A number whose
 * `start()` went to the fallback is remembered in memory (bounded, 15 minutes) and checked there;
 * any other number is checked with its routed provider and, if that vendor has no verification for
 * it (SECURELOGIN_OTP_EXPIRED), with the fallback, which covers a restart or another instance.
 * @example sms: routeSms({ byCountry: { CN: chinaVendor }, default: twilioVerify({ ... }) })
 */
export function routeSms (options: RouteSmsOptions<TextingSmsProvider>): TextingSmsProvider
export function routeSms (options: RouteSmsOptions<VerifyingSmsProvider>): VerifyingSmsProvider
export function routeSms (options: RouteSmsOptions<SmsProvider>): SmsProvider {
  if (typeof options !== 'object' || options === null) fail('options are required')
  const { byCountry = {}, default: primaryDefault, fallback, onFallback } = options
  if (typeof byCountry !== 'object' || byCountry === null) fail('byCountry must be an object of country code to provider')
  const entries = Object.entries(byCountry) as Array<[string, SmsProvider]>
  for (const [country] of entries) {
    if (!/^[A-Z]{2}$/.test(country)) fail(`byCountry keys must be ISO 3166-1 alpha-2 codes such as 'CN' (got '${country}')`)
  }
  const named: Array<[string, unknown]> = [
    ...entries.map(([country, provider]): [string, unknown] => [`byCountry.${country}`, provider]),
    ['default', primaryDefault],
    ...(fallback === undefined ? [] : [['fallback', fallback] as [string, unknown]]),
  ]
  const kinds = new Set<string>()
  for (const [where, provider] of named) {
    const kind = providerKind(provider)
    if (kind === undefined) fail(`${where} must be a provider with send(), or with start() and check()`)
    kinds.add(kind)
  }
  if (kinds.size > 1) {
    fail('all providers must be of one kind: all with send() (the plugin makes the code) or all with start() and check() (the vendor makes it)')
  }
  const attemptTimeout = options.attemptTimeout ?? DEFAULT_ATTEMPT_TIMEOUT_MS
  if (!Number.isFinite(attemptTimeout) || attemptTimeout <= 0) fail('attemptTimeout must be a positive number of milliseconds')

  const table = new Map(entries)
  const choose = (to: string): { provider: SmsProvider, country: CountryCode | undefined } => {
    const country = phoneCountry(to)
    return { provider: (country === undefined ? undefined : table.get(country)) ?? primaryDefault, country }
  }

  /** Runs `call` on `provider`, and on `fallback` when that fails transiently. Returns who succeeded. */
  async function withFallback<T> (to: string, signal: AbortSignal, call: (provider: SmsProvider, signal: AbortSignal) => Promise<T>): Promise<{ value: T, provider: SmsProvider }> {
    const { provider, country } = choose(to)
    if (fallback === undefined || fallback === provider) return { value: await call(provider, signal), provider }
    const attempt = attemptSignal(signal, attemptTimeout)
    try {
      return { value: await call(provider, attempt.signal), provider }
    } catch (error) {
      // When the plugin's own timeout has fired there is no time left for a second vendor.
      if (signal.aborted || !(isTransient(error) || attempt.signal.aborted)) throw error
      onFallback?.({ error, from: nameOf(provider), to: nameOf(fallback), country })
      return { value: await call(fallback, signal), provider: fallback }
    } finally {
      attempt.release()
    }
  }

  const name = 'route'
  if (kinds.has('texting')) {
    return {
      name,
      async send (message, signal) {
        await withFallback(message.to, signal, (provider, s) => (provider as TextingSmsProvider).send(message, s))
      },
    } satisfies TextingSmsProvider
  }

  const startedOnFallback = new Map<string, number>()
  const remember = (to: string): void => {
    startedOnFallback.delete(to)
    startedOnFallback.set(to, Date.now() + REMEMBER_MS)
    for (const [key, until] of startedOnFallback) {
      if (startedOnFallback.size <= REMEMBER_MAX && until > Date.now()) break
      startedOnFallback.delete(key)
    }
  }
  const rememberedFallback = (to: string): boolean => {
    const until = startedOnFallback.get(to)
    if (until === undefined) return false
    if (until > Date.now()) return true
    startedOnFallback.delete(to)
    return false
  }

  return {
    name,
    async start (request, signal) {
      const { provider } = await withFallback(request.to, signal, (p, s) => (p as VerifyingSmsProvider).start(request, s))
      if (provider === fallback && provider !== choose(request.to).provider) remember(request.to)
      else startedOnFallback.delete(request.to)
    },
    async check (request, signal) {
      if (fallback !== undefined && rememberedFallback(request.to)) {
        return await (fallback as VerifyingSmsProvider).check(request, signal)
      }
      const { provider } = choose(request.to)
      try {
        return await (provider as VerifyingSmsProvider).check(request, signal)
      } catch (error) {
        if (fallback === undefined || fallback === provider || signal.aborted || (error as { code?: unknown }).code !== 'SECURELOGIN_OTP_EXPIRED') throw error
        return await (fallback as VerifyingSmsProvider).check(request, signal)
      }
    },
  } satisfies VerifyingSmsProvider
}

function fail (message: string): never {
  throw new TypeError(`fastify-securelogin: ${FACTORY}: ${message}`)
}

function providerKind (provider: unknown): 'texting' | 'verifying' | undefined {
  if (typeof provider !== 'object' || provider === null) return undefined
  if (isVerifyingProvider(provider as SmsProvider)) return 'verifying'
  return typeof (provider as TextingSmsProvider).send === 'function' ? 'texting' : undefined
}

function isTransient (error: unknown): boolean {
  if (error instanceof SmsDeliveryError) return error.transient
  const name = (error as { name?: unknown } | null)?.name
  return name === 'AbortError' || name === 'TimeoutError'
}

function nameOf (provider: SmsProvider): string {
  return provider.name ?? 'custom'
}

/**
 * A signal that fires when `outer` does or after `ms`. Not `AbortSignal.any([outer,
 * AbortSignal.timeout(ms)])`: on Node 20 the composite holds its sources weakly, so a garbage
 * collection during the attempt can take the timeout signal and the attempt then never times out
 * (seen in CI: a stalled vendor held the request until the plugin's own timeout, with no fallback).
 * The timer here holds the controller, and `release` clears both the timer and the listener.
 */
function attemptSignal (outer: AbortSignal, ms: number): { signal: AbortSignal, release: () => void } {
  const controller = new AbortController()
  const onOuterAbort = (): void => { controller.abort(outer.reason) }
  if (outer.aborted) onOuterAbort()
  else outer.addEventListener('abort', onOuterAbort, { once: true })
  const timer = setTimeout(() => {
    controller.abort(new DOMException('The provider did not answer within attemptTimeout', 'TimeoutError'))
  }, ms)
  return {
    signal: controller.signal,
    release: () => { clearTimeout(timer); outer.removeEventListener('abort', onOuterAbort) },
  }
}
