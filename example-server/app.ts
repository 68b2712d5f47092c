import Fastify, { type FastifyInstance } from 'fastify'
import secureLogin, { type SecureLoginDatabase, type SmsProvider } from '../lib/index.js'

export interface ExampleAppOptions {
  db: SecureLoginDatabase
  sms: SmsProvider
  jwtSecret: string
  logger?: boolean
}

/** The seed of an app: the plugin plus two sample protected routes. */
export async function buildExampleApp (options: ExampleAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(secureLogin, { db: options.db, sms: options.sms, jwt: { secret: options.jwtSecret } })

  // Any valid access token.
  app.post('/api/auth/op', { preHandler: app.authenticate }, async () => ({ message: 'test op successful' }))
  // Only an access token from a fresh sign-in (verify_sms), not one from refresh.
  app.post('/api/auth/op2', { preHandler: app.authenticateFresh }, async () => ({ message: 'test op2 successful' }))
  return app
}
