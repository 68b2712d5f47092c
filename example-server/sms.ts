import { consoleSms, twilioMessaging, twilioVerify, type SmsProvider } from '../lib/index.js'

/** SMS_PROVIDER values the example server understands. */
export const SMS_PROVIDERS = ['console', 'twilio-verify', 'twilio-messaging'] as const

function required (env: NodeJS.ProcessEnv, names: string[], provider: string): string[] {
  const missing = names.filter((name) => env[name] === undefined || env[name] === '')
  if (missing.length > 0) throw new Error(`SMS_PROVIDER=${provider} needs ${missing.join(', ')}`)
  return names.map((name) => env[name] as string)
}

/**
 * The SMS provider named by SMS_PROVIDER (default `console`), configured from TWILIO_* variables.
 * A missing variable is a startup error that names it.
 */
export function smsProviderFromEnv (env: NodeJS.ProcessEnv): SmsProvider {
  const provider = env.SMS_PROVIDER ?? 'console'
  switch (provider) {
    case 'console':
      return consoleSms()
    case 'twilio-verify': {
      const [accountSid, authToken, serviceSid] = required(env, ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_VERIFY_SERVICE_SID'], provider) as [string, string, string]
      return twilioVerify({ accountSid, authToken, serviceSid })
    }
    case 'twilio-messaging': {
      const [accountSid, authToken, from] = required(env, ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM'], provider) as [string, string, string]
      return twilioMessaging({ accountSid, authToken, from })
    }
    default:
      throw new Error(`SMS_PROVIDER must be one of ${SMS_PROVIDERS.join(', ')} (got ${JSON.stringify(provider)})`)
  }
}
