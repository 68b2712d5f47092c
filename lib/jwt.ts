import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import type { ResolvedOptions } from './options.js'
import { userFromAccessClaims, type AccessClaims } from './claims.js'

export const ACCESS_ALGORITHM = 'HS256'

/**
 * Registers @fastify/jwt for access tokens on the host app, so that it gets the ecosystem's
 * `fastify.jwt`, `request.jwtVerify()` and `request.user` typing. An app that registered
 * @fastify/jwt itself before us keeps its own: ours then lives under `fastify.jwt[namespace]`
 * (with `request[namespace + 'JwtVerify']`) instead of clashing on the decorators. So does an app
 * whose request.user belongs to another plugin.
 */
export async function registerAccessJwt (fastify: FastifyInstance, options: ResolvedOptions): Promise<JWT> {
  const hasJwt = fastify.hasDecorator('jwt')
  const userTaken = !hasJwt && fastify.hasRequestDecorator('user')
  // Another plugin (passport, say) owns request.user: @fastify/jwt would decorate it again and
  // crash, unless it finds fastify.jwt present, as a namespace container like the one it makes.
  if (userTaken) fastify.decorate('jwt', Object.create(null))
  const namespace = hasJwt || userTaken ? options.jwtNamespace : undefined
  await fastify.register(fastifyJwt, {
    secret: options.jwtSecret,
    namespace,
    sign: { algorithm: ACCESS_ALGORITHM, iss: options.issuer, aud: options.audience },
    // One verifier, built once, with fast-jwt's cache of verified tokens: `authenticate` verifies
    // the same access token on every request of a session. Cached entries never outlive `exp`.
    verify: { algorithms: [ACCESS_ALGORITHM], allowedIss: options.issuer, allowedAud: options.audience, cache: 10_000 },
    // request.jwtVerify() gives our access tokens the shape `authenticate` gives them; tokens of
    // the app's own design keep their payload.
    // A copy, as the cache hands every request the same payload object.
    formatUser: (payload) => isAccessClaims(payload) ? userFromAccessClaims(payload, options.jwtClaims !== undefined) : structuredClone(payload) as never,
  })
  const decorator = fastify.jwt as JWT & Record<string, JWT>
  return namespace === undefined ? decorator : decorator[namespace] as JWT
}

function isAccessClaims (payload: unknown): payload is AccessClaims {
  const claims = payload as Partial<AccessClaims> | null
  return typeof claims === 'object' && claims !== null && claims.type === 'access' && typeof claims.sub === 'string' && typeof claims.sid === 'string'
}
