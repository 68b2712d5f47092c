import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyInstance } from 'fastify'
import secureLogin, { type SecureLoginDatabase, type SmsProvider } from '../lib/index.js'
import { ErrorResponse, Message, refResolver, securitySchemes } from '../schemas/index.js'

export interface ExampleAppOptions {
  db: SecureLoginDatabase
  sms: SmsProvider
  jwtSecret: string
  logger?: boolean
  /** Lifetime of access tokens. @default '10m' */
  accessTokenTtl?: string
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string, version: string, description: string }

/**
 * The seed of an app: the plugin, two sample protected routes, and the OpenAPI document of all of
 * them at `/docs/json` with Swagger UI at `/docs`.
 */
export async function buildExampleApp (options: ExampleAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })

  // Before the plugin: @fastify/swagger documents the routes added after it.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: pkg.name, version: pkg.version, description: pkg.description },
      tags: [
        { name: 'auth', description: 'Passwordless sign-in by SMS code, sessions and tokens (fastify-securelogin)' },
        { name: 'account', description: 'The signed-in user\'s account, sessions and number (fastify-securelogin)' },
        { name: 'example', description: 'Routes of the example app, protected by `app.authenticate`' },
      ],
      components: { securitySchemes },
    },
    // Components named after the schemas' $id (SecureLoginError…), not def-0, def-1…
    refResolver,
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  // The app's own routes refer to the plugin's error shape by $ref too.
  app.addSchema(ErrorResponse)
  // cookies: browser clients (the page at /) may keep the refresh token in an HttpOnly cookie;
  // Bearer clients (curl, mobile apps) are unaffected.
  await app.register(secureLogin, { db: options.db, sms: options.sms, jwt: { secret: options.jwtSecret, accessTokenTtl: options.accessTokenTtl }, cookies: true })

  // A tiny browser client of the cookie transport: sign in, call op, refresh, log out.
  const page = readFileSync(new URL('./public/index.html', import.meta.url), 'utf8')
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))

  const ExampleMessage = { ...Message, description: 'The operation succeeded' }
  const error = (description: string) => ({ $ref: 'SecureLoginError#', description })
  const unauthorized = error('No valid access token of a live session (SECURELOGIN_TOKEN_MISSING, SECURELOGIN_TOKEN_INVALID, SECURELOGIN_TOKEN_EXPIRED, SECURELOGIN_SESSION_REVOKED)')
  const unavailable = error('The list of ended sessions cannot be read from the database (SECURELOGIN_UNAVAILABLE)')

  // Any valid access token.
  app.post('/api/auth/op', {
    preHandler: app.authenticate,
    schema: {
      tags: ['example'],
      operationId: 'exampleOp',
      summary: 'A sample route that needs any valid access token',
      security: [{ accessToken: [] }],
      response: { 200: ExampleMessage, 401: unauthorized, 503: unavailable },
    },
  }, async () => ({ message: 'test op successful' }))
  // Only an access token from a fresh sign-in (verify_sms), not one from refresh.
  app.post('/api/auth/op2', {
    preHandler: app.authenticateFresh,
    schema: {
      tags: ['example'],
      operationId: 'exampleOp2',
      summary: 'A sample route that needs an access token from a fresh sign-in',
      security: [{ accessToken: [] }],
      response: {
        200: ExampleMessage,
        401: error(`${unauthorized.description.slice(0, -1)}, SECURELOGIN_FRESH_TOKEN_REQUIRED)`),
        503: unavailable,
      },
    },
  }, async () => ({ message: 'test op2 successful' }))
  return app
}
