import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { JwksResponse } from '../../schemas/jwks.js'
import type { SecureLoginContext } from '../context.js'
import { operationIdFor, refTo } from './responses.js'

/**
 * How long verifiers may cache the key set. A key must be listed this long before it signs, so that
 * services that cached the set know it (docs/jwt.md, rotation); short, as the set is cheap to serve.
 */
const JWKS_MAX_AGE_SECONDS = 300

/**
 * The public keys of `jwt.keys`, for services that verify access tokens themselves (RFC 7517).
 * Always registered: without `jwt.keys` (HS256 access tokens) the set is empty, so the route list
 * and the API document do not depend on the options, and a verifier configured with the URL before
 * the keys are gets a valid, empty set rather than an error.
 */
export const jwksRoute: FastifyPluginAsyncTypebox<{ ctx: SecureLoginContext }> = async (fastify, { ctx }) => {
  const keySet: JwksResponse = { keys: ctx.options.jwtKeys?.map((key) => key.jwk) ?? [] }
  const cacheControl = `public, max-age=${JWKS_MAX_AGE_SECONDS}`
  fastify.get('/.well-known/jwks.json', {
    schema: {
      tags: ['auth'],
      operationId: operationIdFor(fastify.prefix, 'jwks'),
      summary: 'The public keys that verify access tokens (JSON Web Key Set)',
      description: `The public halves of \`jwt.keys\`, the signing key first, for services that verify access tokens themselves (match the token's \`kid\` and \`alg\`; require \`typ: at+jwt\`). Empty when access tokens are HS256. Cacheable for ${JWKS_MAX_AGE_SECONDS} seconds.`,
      response: {
        200: {
          ...refTo(JwksResponse),
          description: 'The key set',
          headers: { 'cache-control': { type: 'string', description: `\`public, max-age=${JWKS_MAX_AGE_SECONDS}\`` } },
        },
      },
    },
  }, async (_request, reply) => {
    reply.header('cache-control', cacheControl)
    return keySet
  })
}
