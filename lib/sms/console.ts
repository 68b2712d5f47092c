import type { TextingSmsProvider } from './types.js'

export interface ConsoleSmsOptions {
  /**
   * Where each line goes.
   * @default a function that writes to standard output
   */
  write?: (line: string) => void
}

/**
 * Development provider: prints one line per message with the destination and the text so that a
 * developer can sign in with curl. It prints the code, so it refuses to exist in production.
 * @example app.register(secureLogin, { ..., sms: consoleSms() })
 */
export function consoleSms (options: ConsoleSmsOptions = {}): TextingSmsProvider {
  if (process.env.NODE_ENV === 'production') {
    throw new Error('fastify-securelogin: consoleSms() prints codes and cannot be used when NODE_ENV=production')
  }
  const write = options.write ?? ((line: string) => { process.stdout.write(line + '\n') })
  return {
    name: 'console',
    async send ({ to, body }) {
      write(`[sms to ${to}] ${body}`)
    },
  }
}
