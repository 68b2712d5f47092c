export interface SmsDeliveryErrorOptions {
  /** True when another attempt, or another vendor, may succeed: 5xx, 429, network errors, timeouts. */
  transient: boolean
  /** The vendor's own error code, e.g. Twilio's `20003` or `30007`. */
  vendorCode?: string | number
  /** The vendor's HTTP status, when it answered. */
  status?: number
  /** The provider's name, e.g. `'twilio-verify'`. */
  provider?: string
  /** The vendor or network error; logged server-side (numbers and account SIDs masked), never sent to a client. */
  cause?: unknown
}

/**
 * A vendor failed to deliver (or check) a code. Providers throw it so that `routeSms()` can tell a
 * failure worth a second vendor (`transient`) from one that is not (bad credentials, invalid number).
 * The message names the provider and the vendor's status and code only: vendor text, URLs, SIDs and
 * credentials stay in `cause`, which the plugin logs and never answers with.
 * @example throw new SmsDeliveryError('acme-sms: HTTP 503', { transient: true, status: 503 })
 */
export class SmsDeliveryError extends Error {
  override name = 'SmsDeliveryError'
  transient: boolean
  vendorCode?: string | number
  status?: number
  provider?: string

  constructor (message: string, options: SmsDeliveryErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.transient = options.transient
    if (options.vendorCode !== undefined) this.vendorCode = options.vendorCode
    if (options.status !== undefined) this.status = options.status
    if (options.provider !== undefined) this.provider = options.provider
  }
}

/** HTTP statuses after which another attempt may succeed. */
export function isTransientStatus (status: number): boolean {
  return status >= 500 || status === 429 || status === 408
}
