import type { FastifyBaseLogger } from 'fastify'
import { SmsSendFailedError, SmsTimeoutError } from '../errors.js'
import { maskPhone } from '../phone.js'
import { loggableError } from '../redact.js'

/** True for the plugin's own 4xx errors, which a provider may throw to be answered as they are. */
function isClientError (error: unknown): boolean {
  const { statusCode, code } = (error ?? {}) as { statusCode?: unknown, code?: unknown }
  return typeof statusCode === 'number' && statusCode < 500 && typeof code === 'string' && code.startsWith('SECURELOGIN_')
}

/**
 * Runs one vendor call with a time bound. The vendor's own error is logged with every number and
 * account SID in it masked (vendors quote the number they refused), and replaced by an error whose
 * text is safe for the client: vendor messages carry URLs, account SIDs and sometimes terminal
 * colour codes.
 */
export async function callSmsVendor<T> (args: { to: string, timeoutMs: number, log: FastifyBaseLogger, provider: string, call: (signal: AbortSignal) => Promise<T> }): Promise<T> {
  const controller = new AbortController()
  let timedOut = false
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      timedOut = true
      controller.abort()
      reject(new SmsTimeoutError())
    }, args.timeoutMs)
  })
  try {
    return await Promise.race([args.call(controller.signal), timeout])
  } catch (error) {
    if (isClientError(error)) throw error
    args.log.error({ err: loggableError(error), to: maskPhone(args.to), provider: args.provider, timedOut }, 'fastify-securelogin: SMS vendor call failed')
    throw timedOut ? new SmsTimeoutError() : new SmsSendFailedError()
  } finally {
    clearTimeout(timer)
  }
}
