import fastifyJwt, { type FastifyJWTOptions, type JWT } from '@fastify/jwt'
import { TokenError } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'
import type { ResolvedOptions } from './options.js'
import { isClaimsOf, userFromAccessClaims, type AccessClaims } from './claims.js'
import type { SigningKey } from './keys.js'

/** Access tokens without `jwt.keys`, and refresh tokens always. */
export const HMAC_ALGORITHM = 'HS256' as const

// Explicit types (RFC 8725 §3.11), each required by its own verifier: a token of one kind is never
// taken for the other, even by a verifier that holds both keys. `at+jwt` is RFC 9068's; refresh
// tokens have no registered type, and `rt+jwt` is the same pattern.
const ACCESS_TOKEN_TYPE = 'at+jwt'
export const REFRESH_TOKEN_TYPE = 'rt+jwt'

/**
 * fast-jwt's key lookup for `jwt.keys`: the public key the token's `kid` names, and only for the
 * algorithm that key is listed with. A token naming no listed key, or another algorithm (HS256
 * keyed with a public key's PEM, `none`), gets no key and fails as a bad key (401 everywhere).
 */
function publicKeyByKid (keys: SigningKey[]) {
  const byKid = new Map(keys.map((key) => [key.kid, key]))
  return (decoded: { header: Record<string, unknown> }, callback: (error: Error | null, key: string) => void): void => {
    const { kid, alg } = decoded.header
    const key = typeof kid === 'string' ? byKid.get(kid) : undefined
    if (key === undefined || key.alg !== alg) return callback(new TokenError(TokenError.codes.invalidKey, 'No key of jwt.keys has this kid and alg.'), '')
    callback(null, key.publicKeyPem)
  }
}

/** @fastify/jwt's key, signing and verifying options for access tokens: HS256 with the secret, or `jwt.keys`. */
function accessKeyOptions (options: ResolvedOptions): Pick<FastifyJWTOptions, 'secret' | 'sign' | 'verify'> {
  // fast-jwt's signer takes `typ` (the header's), though its type definitions omit it; `header`
  // would do too, but an app's per-call `header` would then replace ours wholesale.
  const signed = { iss: options.issuer, aud: options.audience, typ: ACCESS_TOKEN_TYPE }
  // One verifier, built once, with fast-jwt's cache of verified tokens: `authenticate` verifies
  // the same access token on every request of a session. Cached entries never outlive `exp`.
  const verify = { allowedIss: options.issuer, allowedAud: options.audience, checkTyp: ACCESS_TOKEN_TYPE, cache: 10_000 }
  const keys = options.jwtKeys
  if (keys === undefined) {
    const sign = { ...signed, algorithm: HMAC_ALGORITHM }
    return { secret: options.jwtSecret, sign, verify: { ...verify, algorithms: [HMAC_ALGORITHM] } }
  }
  const signing = keys[0] as SigningKey
  const sign = { ...signed, algorithm: signing.alg, kid: signing.kid }
  return {
    secret: { private: signing.privateKeyPem, public: signing.publicKeyPem },
    sign,
    verify: {
      ...verify,
      algorithms: [...new Set(keys.map((key) => key.alg))],
      // A key function (fast-jwt's, which @fastify/jwt's types leave out) makes the verifier
      // asynchronous: fastify.jwt.verify() then returns a promise. request.jwtVerify() uses this
      // same verifier, as a verify key wins over `secret`.
      key: publicKeyByKid(keys) as unknown as string,
    },
  }
}

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
    ...accessKeyOptions(options),
    namespace,
    // request.jwtVerify() gives our access tokens the shape `authenticate` gives them; tokens of
    // the app's own design keep their payload.
    // A copy, as the cache hands every request the same payload object.
    formatUser: (payload) => isClaimsOf<AccessClaims>(payload, 'access') ? userFromAccessClaims(payload, options.jwtClaims !== undefined) : structuredClone(payload) as never,
  })
  const decorator = fastify.jwt as JWT & Record<string, JWT>
  return namespace === undefined ? decorator : decorator[namespace] as JWT
}
