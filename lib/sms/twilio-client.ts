import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { loggableError } from '../redact.js'
import { SmsDeliveryError, isTransientStatus } from './errors.js'

/**
 * The parts of a client made by the `twilio` package (`twilio(accountSid, authToken)`) that the
 * providers call. Declared here rather than imported, so that the emitted types do not name
 * `twilio`, an optional peer: an app that never uses Twilio type-checks without it installed. A
 * real client of twilio 5 or 6 is assignable to it.
 */
export interface TwilioClient {
  verify: { v2: { services (serviceSid: string): TwilioVerifyService } }
  messages: {
    create (params: { to: string, body: string, from?: string, messagingServiceSid?: string }): Promise<{ status: string, errorCode?: number | null }>
  }
  /** The SDK's request method; its presence tells a client from a look-alike. */
  request (opts: { method?: string, uri?: string }): Promise<unknown>
  /** The SDK's http client, usually wrapping an axios instance. */
  readonly httpClient?: unknown
}

/** What `client.verify.v2.services(serviceSid)` returns, as far as the providers use it. */
export interface TwilioVerifyService {
  verifications: { create (params: { to: string, channel: string, locale?: string }): Promise<unknown> }
  verificationChecks: { create (params: { to: string, code: string }): Promise<{ status: string }> }
}

type TwilioFactory = (accountSid: string, authToken: string) => TwilioClient

export interface TwilioCredentials {
  /** Your account SID (`AC…`). Not needed when `client` is given. */
  accountSid?: string
  /** Your auth token. Not needed when `client` is given. */
  authToken?: string
  /**
   * A ready `twilio` client to use instead of `accountSid`/`authToken`, e.g. one the app already
   * shares, one authenticated with an API key, or one pointed at a test server.
   */
  client?: TwilioClient
}

let twilioModule: TwilioFactory | undefined

// Loaded on first use rather than imported, so that apps which never use Twilio need not install it.
function loadTwilio (factory: string): TwilioFactory {
  if (twilioModule === undefined) {
    try {
      twilioModule = createRequire(import.meta.url)('twilio') as TwilioFactory
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw error
      throw new TypeError(`fastify-securelogin: ${factory} needs the "twilio" package: npm install twilio`, { cause: error })
    }
  }
  return twilioModule
}

export function fail (factory: string, message: string): never {
  throw new TypeError(`fastify-securelogin: ${factory}: ${message}`)
}

export function checkSid (factory: string, name: string, value: unknown, prefix: string): string {
  // The value is not echoed: a misplaced auth token must not end up in a startup log.
  if (typeof value !== 'string' || !new RegExp(`^${prefix}[0-9a-fA-F]{32}$`).test(value)) {
    fail(factory, `${name} must be a Twilio SID: '${prefix}' followed by 32 hexadecimal digits`)
  }
  return value
}

/** Validates `client` or `accountSid` + `authToken` and returns a client whose calls can be cancelled. */
export function resolveTwilioClient (factory: string, options: TwilioCredentials): TwilioClient {
  if (options.client !== undefined) {
    if (options.accountSid !== undefined || options.authToken !== undefined) {
      fail(factory, 'give either client or accountSid and authToken, not both')
    }
    if (typeof options.client !== 'object' || options.client === null || typeof (options.client as { request?: unknown }).request !== 'function') {
      fail(factory, 'client must be a client made by the twilio package: twilio(accountSid, authToken)')
    }
    return makeAbortable(options.client)
  }
  const accountSid = checkSid(factory, 'accountSid', options.accountSid, 'AC')
  if (typeof options.authToken !== 'string' || options.authToken.length === 0) {
    fail(factory, 'authToken is required (or pass a ready twilio client as client)')
  }
  const sdk = loadTwilio(factory)
  return makeAbortable(sdk(accountSid, options.authToken))
}

const callSignal = new AsyncLocalStorage<AbortSignal>()
const abortable = new WeakSet<object>()

/**
 * The SDK takes no AbortSignal. Its default http client is an axios instance, so a request
 * interceptor hands axios the signal of the provider call in progress: a request cut by the
 * plugin's timeout is closed at once instead of holding one of the agent's few sockets for the
 * SDK's own 30 s. The interceptor does nothing outside a provider call. Clients with a custom http
 * client that has no axios instance are still bounded by the race in `callTwilio`.
 */
function makeAbortable (client: TwilioClient): TwilioClient {
  const http = client.httpClient as AxiosHolder | undefined
  const interceptors = http?.axios?.interceptors?.request
  if (http !== undefined && typeof interceptors?.use === 'function' && !abortable.has(http)) {
    interceptors.use((config) => {
      const signal = callSignal.getStore()
      if (signal !== undefined) config.signal = signal
      return config
    })
    abortable.add(http)
  }
  return client
}

/** The bit of the SDK's RequestClient (an axios instance) that `makeAbortable` touches. */
interface AxiosHolder {
  axios?: { interceptors?: { request?: { use?: (onRequest: (config: { signal?: unknown }) => { signal?: unknown }) => unknown } } }
}

/**
 * Runs one SDK call bounded by `signal`. When the signal fires first the call rejects with the
 * signal's reason, as `fetch` does, whatever the SDK is still doing.
 */
export async function callTwilio<T> (signal: AbortSignal, call: () => Promise<T>): Promise<T> {
  signal.throwIfAborted()
  const pending = callSignal.run(signal, call)
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    pending.then(
      (value) => { signal.removeEventListener('abort', onAbort); resolve(value) },
      (error: unknown) => { signal.removeEventListener('abort', onAbort); reject(error) },
    )
  })
}

/** What Twilio answered, for an error thrown by the SDK after an HTTP answer (RestException and kin). */
export function twilioAnswer (error: unknown): { status: number, code?: number } | undefined {
  if (!(error instanceof Error)) return undefined
  const { status, code } = error as { status?: unknown, code?: unknown }
  if (typeof status !== 'number') return undefined
  // axios errors also carry `status`, but axios never rejects on a status here (the SDK accepts
  // every status and throws its own exception); their `code` is a string such as 'ECONNRESET'.
  if (typeof code === 'string') return undefined
  return typeof code === 'number' && code !== 0 ? { status, code } : { status }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT',
])

/**
 * Turns anything the SDK threw into an SmsDeliveryError whose message holds no vendor text, URL,
 * SID or credential. Its `cause` is a copy of what the SDK threw with only the fields worth
 * logging, and numbers and account SIDs masked: Twilio's messages quote the number they refused,
 * and an axios error's `config` holds the Authorization header, which a logger printing the whole
 * object would write out. An app logging the error (e.g. in `routeSms`'s `onFallback`) gets it safe.
 */
export function toDeliveryError (provider: string, error: unknown): SmsDeliveryError {
  const cause = loggableError(error)
  const answer = twilioAnswer(error)
  if (answer !== undefined) {
    const code = answer.code === undefined ? '' : ` (code ${answer.code})`
    return new SmsDeliveryError(`${provider}: Twilio answered HTTP ${answer.status}${code}`, {
      transient: isTransientStatus(answer.status), status: answer.status, vendorCode: answer.code, provider, cause,
    })
  }
  const { code } = (error ?? {}) as { code?: unknown }
  if (typeof code === 'string' && NETWORK_CODES.has(code)) {
    return new SmsDeliveryError(`${provider}: could not reach Twilio (${code})`, { transient: true, provider, cause })
  }
  return new SmsDeliveryError(`${provider}: the Twilio call failed`, { transient: false, provider, cause })
}
