/** A text we deliver: the plugin made the code and wrote the message. */
export interface SmsMessage {
  /** Destination in E.164, e.g. `+14155550123`. */
  to: string
  /** The full text to deliver. */
  body: string
  /** The code inside `body`, for vendors that fill their own template. Never log it. */
  code: string
  /** A BCP 47 language tag when the client sent one (`Accept-Language`), else undefined. */
  locale?: string
}

/** Common to both provider kinds. */
interface ProviderBase {
  /** A short name used in server logs, e.g. `'twilio-messaging'`. */
  name?: string
}

/** A vendor that only delivers text: the plugin makes, hashes and checks the code. */
export interface TextingSmsProvider extends ProviderBase {
  send (message: SmsMessage, signal: AbortSignal): Promise<void>
}

/** A vendor that makes, sends and checks the code itself (e.g. Twilio Verify). */
export interface VerifyingSmsProvider extends ProviderBase {
  start (request: { to: string, channel?: string, locale?: string }, signal: AbortSignal): Promise<void>
  /** Resolves true when the vendor approves the code, false when it rejects it. */
  check (request: { to: string, code: string }, signal: AbortSignal): Promise<boolean>
}

/** What the `sms` option accepts. */
export type SmsProvider = TextingSmsProvider | VerifyingSmsProvider

export function isVerifyingProvider (provider: SmsProvider): provider is VerifyingSmsProvider {
  return typeof (provider as VerifyingSmsProvider).start === 'function' &&
    typeof (provider as VerifyingSmsProvider).check === 'function'
}
