import type { TextingSmsProvider } from './types.js'
import { describeNodeEnv, isDevelopment } from '../environment.js'

export interface ConsoleSmsOptions {
  /**
   * Where each line goes.
   * @default a function that writes to standard output
   */
  write?: (line: string) => void
  /**
   * Run even when `NODE_ENV` is neither `'development'` nor `'test'`. Anybody who reads the output
   * can then sign in as anybody: only for a machine of your own that nobody else can reach.
   * @default false
   */
  allowInProduction?: boolean
}

/**
 * Development provider: prints one line per message with the destination and the text so that a
 * developer can sign in with curl. It prints the code, so it refuses to exist unless `NODE_ENV` is
 * `development` or `test`.
 * @example app.register(secureLogin, { ..., sms: consoleSms() }) // NODE_ENV=development npx tsx app.ts
 */
export function consoleSms (options: ConsoleSmsOptions = {}): TextingSmsProvider {
  if (!isDevelopment() && options.allowInProduction !== true) {
    throw new Error(`fastify-securelogin: consoleSms() prints codes, so it runs only when NODE_ENV is 'development' or 'test' (${describeNodeEnv()}). ` +
      'Start a development server with NODE_ENV=development (e.g. NODE_ENV=development npx tsx app.ts), use a real provider such as twilioVerify() elsewhere, ' +
      'or pass consoleSms({ allowInProduction: true }) if printing every code is really what you want')
  }
  const write = options.write ?? ((line: string) => { process.stdout.write(line + '\n') })
  return {
    name: 'console',
    async send ({ to, body }) {
      write(`[sms to ${to}] ${body}`)
    },
  }
}
