import type { FastifyRequest } from 'fastify'
import type { SecureLoginContext } from '../context.js'
import { PasswordDisabledError } from '../errors.js'

/**
 * A preValidation hook: while `password.enabled` is off, a body with `auth_type: "PASSWORD"` is
 * answered 400 SECURELOGIN_PASSWORD_DISABLED before its fields are checked, so that the client
 * learns the server's choice rather than which field it would have wanted.
 */
export function refusePasswordWhileDisabled (ctx: SecureLoginContext) {
  return async (request: FastifyRequest): Promise<void> => {
    if (!ctx.options.password.enabled && (request.body as { auth_type?: unknown } | undefined)?.auth_type === 'PASSWORD') throw new PasswordDisabledError()
  }
}
