import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import type { AccessClaims, RefreshClaims } from './claims.js'
import { TokenExpiredError, TokenInvalidError } from './errors.js'
import { ACCESS_ALGORITHM } from './jwt.js'
import { deriveKey } from './keys.js'
import type { ResolvedOptions } from './options.js'

export type { AccessClaims, RefreshClaims } from './claims.js'

function verifyWith<T extends AccessClaims | RefreshClaims> (verify: (token: string) => unknown, token: string, type: T['type']): T {
  let claims: T
  try {
    claims = verify(token) as T
  } catch (error) {
    if (error instanceof TokenError && error.code === TokenError.codes.expired) throw new TokenExpiredError()
    throw new TokenInvalidError()
  }
  if (claims.type !== type || typeof claims.sub !== 'string' || typeof claims.sid !== 'string' || typeof claims.exp !== 'number') throw new TokenInvalidError()
  return claims
}

/**
 * Access tokens go through the app's @fastify/jwt instance (`jwt.secret`, HS256), so the app and
 * other services holding the secret can verify them. Refresh tokens are read by this plugin alone:
 * they are signed with a key of their own derived from the secret, so `request.jwtVerify()` or any
 * holder of the access-token key can neither accept nor mint them. The `type` claim is checked too.
 */
export function createTokenService (options: ResolvedOptions, accessJwt: JWT) {
  const { issuer, audience } = options
  const refreshKey = deriveKey(options.jwtSecret, 'refresh-token')
  const signRefreshToken = createSigner({ key: refreshKey, algorithm: ACCESS_ALGORITHM, iss: issuer, aud: audience })
  const verifyRefreshToken = createVerifier({ key: refreshKey, algorithms: [ACCESS_ALGORITHM], allowedIss: issuer, allowedAud: audience, requiredClaims: ['exp', 'sub', 'sid', 'type'] })
  const verifyAccessToken = (token: string) => accessJwt.verify(token)

  return {
    signAccess (args: { userId: string, sessionId: string, phone: string, fresh: boolean, now: number, sessionExpiresAt: number, extraClaims: Record<string, unknown> }): { token: string, expiresIn: number } {
      const iat = Math.floor(args.now / 1000)
      // An access token never outlives its session.
      const exp = Math.min(iat + Math.floor(options.accessTokenTtlMs / 1000), Math.floor(args.sessionExpiresAt / 1000))
      // Extra claims first: ours are written last, though extraClaimsFor already refuses overrides.
      const token = accessJwt.sign({ ...args.extraClaims, type: 'access', sub: args.userId, sid: args.sessionId, phone: args.phone, fresh: args.fresh, iat, exp, jti: randomUUID() })
      return { token, expiresIn: exp - iat }
    },

    signRefresh (args: { userId: string, sessionId: string, phone: string, generation: number, now: number, sessionExpiresAt: number }): string {
      const iat = Math.floor(args.now / 1000)
      const exp = Math.floor(args.sessionExpiresAt / 1000)
      return signRefreshToken({ type: 'refresh', sub: args.userId, sid: args.sessionId, phone: args.phone, gen: args.generation, iat, exp, jti: randomUUID() })
    },

    verifyAccess: (token: string) => verifyWith<AccessClaims>(verifyAccessToken, token, 'access'),
    verifyRefresh: (token: string) => {
      const claims = verifyWith<RefreshClaims>(verifyRefreshToken, token, 'refresh')
      if (!Number.isInteger(claims.gen)) throw new TokenInvalidError()
      return claims
    },
  }
}

export type TokenService = ReturnType<typeof createTokenService>
