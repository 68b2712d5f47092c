import type { TextingSmsProvider } from './types.js'
import { SmsDeliveryError } from './errors.js'
import { type TwilioCredentials, callTwilio, checkSid, fail, resolveTwilioClient, toDeliveryError } from './twilio-client.js'

const FACTORY = 'twilioMessaging()'
const NAME = 'twilio-messaging'

/** What a function template receives. */
export interface SmsTemplateInput {
  code: string
  /** Destination in E.164. */
  to: string
  /** A BCP 47 tag when the client sent one, else undefined. */
  locale?: string
}

export interface TwilioMessagingOptions extends TwilioCredentials {
  /** Sender: a Twilio number in E.164, a short code or an alphanumeric sender ID. Give this or `messagingServiceSid`. */
  from?: string
  /** A Messaging Service (`MG…`) that picks the sender. Give this or `from`. */
  messagingServiceSid?: string
  /**
   * The text to send: a string in which `{code}` is replaced, or a function. Without it the text the
   * plugin wrote is sent.
   * @default the plugin's text
   * @example template: 'Your Acme code is {code}'
   * @example template: ({ code, locale }) => locale?.startsWith('fr') ? `Votre code : ${code}` : `Your code: ${code}`
   */
  template?: string | ((input: SmsTemplateInput) => string)
}

// Delivery errors after which another vendor may well succeed: queue overflow, unknown error.
const TRANSIENT_MESSAGE_CODES = new Set([30001, 30008])

/**
 * Twilio Programmable Messaging: the plugin makes and checks the code, Twilio delivers the text
 * (`POST /2010-04-01/Accounts/{sid}/Messages.json`).
 * @example sms: twilioMessaging({ accountSid, authToken, from: '+15005550006' })
 */
export function twilioMessaging (options: TwilioMessagingOptions): TextingSmsProvider {
  if (typeof options !== 'object' || options === null) fail(FACTORY, 'options are required')
  const { from, messagingServiceSid, template } = options
  if ((from === undefined) === (messagingServiceSid === undefined)) {
    fail(FACTORY, 'give exactly one of from (a Twilio number or sender ID) and messagingServiceSid')
  }
  if (from !== undefined && (typeof from !== 'string' || from.trim() === '')) fail(FACTORY, 'from must be a non-empty string')
  if (messagingServiceSid !== undefined) checkSid(FACTORY, 'messagingServiceSid', messagingServiceSid, 'MG')
  if (typeof template === 'string' && !template.includes('{code}')) fail(FACTORY, "template must contain '{code}'")
  if (template !== undefined && typeof template !== 'string' && typeof template !== 'function') {
    fail(FACTORY, "template must be a string containing '{code}' or a function ({ code, to, locale }) => string")
  }
  const client = resolveTwilioClient(FACTORY, options)
  const sender = from !== undefined ? { from } : { messagingServiceSid: messagingServiceSid as string }

  function render (body: string, input: SmsTemplateInput): string {
    if (template === undefined) return body
    if (typeof template === 'string') return template.replaceAll('{code}', input.code)
    const text = template(input)
    if (typeof text !== 'string' || text === '') throw new TypeError(`fastify-securelogin: ${FACTORY}: template returned no text`)
    return text
  }

  return {
    name: NAME,
    async send ({ to, body, code, locale }, signal) {
      const text = render(body, { code, to, locale })
      let message
      try {
        message = await callTwilio(signal, () => client.messages.create({ to, body: text, ...sender }))
      } catch (error) {
        if (signal.aborted) throw error
        throw toDeliveryError(NAME, error)
      }
      // Twilio usually answers 'queued' or 'accepted'; a message it refused at once is already
      // 'failed' or 'undelivered' in this answer, with the reason in error_code.
      if (message.status === 'failed' || message.status === 'undelivered') {
        const vendorCode = message.errorCode ?? undefined
        throw new SmsDeliveryError(`${NAME}: message ${message.status}${vendorCode === undefined ? '' : ` (code ${vendorCode})`}`, {
          transient: vendorCode !== undefined && TRANSIENT_MESSAGE_CODES.has(vendorCode), vendorCode, provider: NAME,
        })
      }
    },
  }
}
