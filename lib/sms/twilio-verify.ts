import type { VerifyingSmsProvider } from './types.js'
import { BadRequestError, OtpAttemptsExceededError, OtpExpiredError, RateLimitedError, withRetryAfter } from '../errors.js'
import { type TwilioCredentials, callTwilio, checkSid, fail, resolveTwilioClient, toDeliveryError, twilioAnswer } from './twilio-client.js'

const FACTORY = 'twilioVerify()'
const NAME = 'twilio-verify'

export type TwilioVerifyChannel = 'sms' | 'whatsapp' | 'call'
const CHANNELS: readonly string[] = ['sms', 'whatsapp', 'call']

export interface TwilioVerifyOptions extends TwilioCredentials {
  /** The Verify Service (`VA…`) whose settings (code length, template, rate limits) apply. */
  serviceSid: string
  /**
   * How the code reaches the user when the request does not name a channel.
   * @default 'sms'
   */
  channel?: TwilioVerifyChannel
}

/** Twilio keeps a verification for 10 minutes; after 5 sends (60203) the number must wait it out. */
const SEND_LIMIT_RETRY_SECONDS = 600

// Twilio's code length is set per service (4 to 10 characters); anything else cannot be right,
// and sending it would spend one of Twilio's five check attempts.
const PLAUSIBLE_CODE = /^[0-9A-Za-z]{4,10}$/

/**
 * Twilio Verify v2: Twilio makes, sends and checks the code (`Verifications`, `VerificationCheck`).
 * The plugin's own attempt counter, expiry and single use still apply around it.
 * @example sms: twilioVerify({ accountSid, authToken, serviceSid: 'VA…' })
 * @example sms: twilioVerify({ client: twilio(apiKey, apiSecret, { accountSid }), serviceSid, channel: 'whatsapp' })
 */
export function twilioVerify (options: TwilioVerifyOptions): VerifyingSmsProvider {
  if (typeof options !== 'object' || options === null) fail(FACTORY, 'options are required')
  const serviceSid = checkSid(FACTORY, 'serviceSid', options.serviceSid, 'VA')
  const defaultChannel = options.channel ?? 'sms'
  if (!CHANNELS.includes(defaultChannel)) fail(FACTORY, `channel must be one of ${CHANNELS.join(', ')}`)
  const client = resolveTwilioClient(FACTORY, options)
  const service = () => client.verify.v2.services(serviceSid)

  return {
    name: NAME,
    async start ({ to, channel, locale }, signal) {
      const using = channel ?? defaultChannel
      if (!CHANNELS.includes(using)) throw new BadRequestError(`channel must be one of ${CHANNELS.join(', ')}`)
      const create = (withLocale: boolean): Promise<unknown> => callTwilio(signal, () =>
        service().verifications.create({ to, channel: using, ...(withLocale && locale !== undefined ? { locale } : {}) }))
      try {
        try {
          await create(true)
        } catch (error) {
          // Twilio answers 404 to a locale it has no translation for and advises sending again
          // without one: the number's country then picks the language.
          if (locale === undefined || signal.aborted || twilioAnswer(error)?.status !== 404) throw error
          await create(false)
        }
      } catch (error) {
        if (signal.aborted) throw error
        if (twilioAnswer(error)?.code === 60203) throw withRetryAfter(new RateLimitedError(SEND_LIMIT_RETRY_SECONDS), SEND_LIMIT_RETRY_SECONDS)
        throw toDeliveryError(NAME, error)
      }
    },

    async check ({ to, code }, signal) {
      if (!PLAUSIBLE_CODE.test(code)) return false
      let result
      try {
        result = await callTwilio(signal, () => service().verificationChecks.create({ to, code }))
      } catch (error) {
        if (signal.aborted) throw error
        const answer = twilioAnswer(error)
        if (answer?.code === 60202) throw new OtpAttemptsExceededError()
        // No pending verification: expired, already approved, or never started.
        if (answer?.code === 20404) throw new OtpExpiredError()
        throw toDeliveryError(NAME, error)
      }
      switch (result.status) {
        case 'approved': return true
        case 'max_attempts_reached': throw new OtpAttemptsExceededError()
        case 'expired':
        case 'deleted': throw new OtpExpiredError()
        // 'pending' (wrong code), 'canceled' and anything new: not approved.
        default: return false
      }
    },
  }
}
