import { STATUS_CODES } from 'node:http'
import type { TSchema } from '@sinclair/typebox'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import { registerFormats } from '../../schemas/formats.js'
import { sharedSchemas } from '../../schemas/openapi.js'
import type { SecureLoginContext } from '../context.js'
import type { SecureLoginEventType } from '../events.js'
import { captureClientAddresses } from '../client-ip.js'
import { BadRequestError, InternalError } from '../errors.js'
import { loggableError } from '../redact.js'
import { accountRoutes } from './account.js'
import { jwksRoute } from './jwks.js'
import { loginRoute } from './login.js'
import { logoutRoutes } from './logout.js'
import { passwordRoute } from './password.js'
import { phoneRoutes } from './phone.js'
import { refreshRoute } from './refresh.js'
import { registerRoute } from './register.js'
import { sessionRoutes } from './sessions.js'
import { validatorCompiler } from './validator.js'
import { verifySmsRoute } from './verify-sms.js'

/** Refusals the app's audit trail hears of (`onEvent`), by error code. */
const REFUSAL_EVENTS: Partial<Record<string, SecureLoginEventType>> = {
  SECURELOGIN_RATE_LIMITED: 'limit',
  SECURELOGIN_SEND_REFUSED: 'limit',
  SECURELOGIN_OTP_ATTEMPTS_EXCEEDED: 'limit',
  SECURELOGIN_CLIENT_ADDRESS_INVALID: 'limit',
  SECURELOGIN_PHONE_LOCKED: 'otp.locked',
  SECURELOGIN_SMS_BUDGET_EXHAUSTED: 'budget.exhausted',
  SECURELOGIN_CREDENTIALS_INVALID: 'login.failed',
  SECURELOGIN_LOGIN_LOCKED: 'login.locked',
}

/** Request bodies here are a phone number or a token: anything larger is not ours. */
const BODY_LIMIT = 16 * 1024

const byRef = new Map(sharedSchemas.map((schema) => [`${schema.$id}#`, schema]))

/** The routes refer to their bodies by `$ref` (see refTo); validation uses the TypeBox schema itself. */
function dereference (schema: unknown): TSchema {
  const ref = (schema as { $ref?: unknown }).$ref
  return (typeof ref === 'string' ? byRef.get(ref) : undefined) ?? schema as TSchema
}

/**
 * Registers the schemas the routes refer to, so that @fastify/swagger emits each once as a named
 * component. A host may have registered the very same schemas already (to refer to them from its own
 * routes); another schema under one of our ids would be a silent mix-up, so that fails startup.
 */
function addSharedSchemas (fastify: Parameters<FastifyPluginAsync>[0]): void {
  for (const schema of sharedSchemas) {
    const existing = fastify.getSchema(schema.$id as string)
    if (existing === undefined) fastify.addSchema(schema)
    else if (existing !== schema && JSON.stringify(existing) !== JSON.stringify(schema)) {
      throw new Error(`fastify-securelogin: the app already has a different schema with $id "${schema.$id}"`)
    }
  }
}

/**
 * The auth routes, in an encapsulated context: the error handler and JSON parser below apply to
 * these routes only, never to the host app's.
 */
export const secureLoginRoutes: FastifyPluginAsync<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  // Strict validation: Fastify's default Ajv coerces types, so ["+1415…"] or 123456 would pass as a
  // string. TypeBox's compiler checks the schemas exactly as written.
  registerFormats()
  fastify.setValidatorCompiler((route) => validatorCompiler({ ...route, schema: dereference(route.schema) }))
  addSharedSchemas(fastify)

  // Flask clients POST `-d '{}'` or an empty body with a JSON content type to /refresh.
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (request, body, done) => {
    if ((body as string).trim() === '') return done(null, {})
    parseJson(request, body as string, done)
  })

  fastify.setErrorHandler((thrown: FastifyError & { retryAfter?: number, attemptsLeft?: number }, request, reply) => {
    const error = thrown.validation === undefined ? thrown : new BadRequestError(thrown.message)
    const status = error.statusCode ?? 500
    const ours = typeof error.code === 'string' && error.code.startsWith('SECURELOGIN_')
    if (status >= 400 && (status < 500 || ours)) {
      const event = REFUSAL_EVENTS[error.code]
      if (event !== undefined) {
        const phone = (request.body as { phone?: unknown } | undefined)?.phone
        ctx.events.emit(request, { type: event, reason: error.code, ...(typeof phone === 'string' ? { phone } : {}) })
      }
      if (error.code === 'SECURELOGIN_UNAVAILABLE' && error.cause !== undefined) {
        request.log.warn({ err: loggableError(error.cause) }, 'fastify-securelogin: the database cannot serve now; answered 503')
      }
      if (thrown.retryAfter !== undefined) reply.header('retry-after', String(thrown.retryAfter))
      const body = { statusCode: status, code: error.code ?? 'SECURELOGIN_BAD_REQUEST', error: STATUS_CODES[status] ?? 'Error', message: error.message }
      return reply.code(status).send(thrown.attemptsLeft === undefined ? body : { ...body, attempts_left: thrown.attemptsLeft })
    }
    // Anything else is our bug or the database's: its text may hold SQL, so the client gets none,
    // and the log gets it without the statement's parameters and with numbers masked.
    request.log.error({ err: loggableError(error) }, 'fastify-securelogin: request failed')
    const internal = new InternalError()
    return reply.code(500).send({ statusCode: 500, code: internal.code, error: 'Internal Server Error', message: internal.message })
  })

  // Each request's client address, read as it arrives, for the per-client limits.
  captureClientAddresses(fastify)

  // A request without any body (no content type) is an empty object here, as an empty JSON body is.
  fastify.addHook('preValidation', async (request) => { request.body ??= {} })

  const opts = { ctx }
  await fastify.register(async (routes) => {
    routes.addHook('onRoute', (route) => { route.bodyLimit ??= BODY_LIMIT })
    await routes.register(registerRoute, opts)
    await routes.register(loginRoute, opts)
    await routes.register(verifySmsRoute, opts)
    await routes.register(refreshRoute, opts)
    await routes.register(logoutRoutes, opts)
    await routes.register(jwksRoute, opts)
    await routes.register(accountRoutes, opts)
    await routes.register(sessionRoutes, opts)
    await routes.register(phoneRoutes, opts)
    await routes.register(passwordRoute, opts)
  })
}
