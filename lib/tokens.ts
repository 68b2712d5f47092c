import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import { isClaimsOf, type AccessClaims, type RefreshClaims } from './claims.js'
import { TokenExpiredError, TokenInvalidError } from './errors.js'
import { HMAC_ALGORITHM, REFRESH_TOKEN_TYPE } from './jwt.js'
import { deriveKey } from './keys.js'
import type { ResolvedOptions } from './options.js'


/** What a client is told about a token fast-jwt refused. */
function refusal (error: unknown): Error {
  return error instanceof TokenError && error.code === TokenError.codes.expired ? new TokenExpiredError() : new TokenInvalidError()
}

function checked<T extends AccessClaims | RefreshClaims> (verified: unknown, type: T['type']): T {
  if (!isClaimsOf<T>(verified, type) || typeof verified.exp !== 'number') throw new TokenInvalidError()
  return verified
}

/**
 * Access tokens go through the app's @fastify/jwt instance (`jwt.secret` with HS256, or `jwt.keys`),
 * so the app and other services holding the secret or the public keys can verify them. Refresh
 * tokens are read by this plugin alone: they are signed with an HMAC key of their own derived from
 * the secret, so `request.jwtVerify()`, a holder of the access-token key or of the key set can
 * neither accept nor mint them. The header's `typ` and the `type` claim are checked too.
 */
export function createTokenService (options: ResolvedOptions, accessJwt: JWT) {
  const { issuer, audience } = options
  const refreshKey = deriveKey(options.jwtSecret, 'refresh-token')
  // fast-jwt's signer takes `typ` (the header's), though its type definitions omit it.
  const refreshSigning = { key: refreshKey, algorithm: HMAC_ALGORITHM, typ: REFRESH_TOKEN_TYPE, iss: issuer, aud: audience }
  const signRefreshToken = createSigner(refreshSigning)
  const verifyRefreshToken = createVerifier({ key: refreshKey, algorithms: [HMAC_ALGORITHM], checkTyp: REFRESH_TOKEN_TYPE, allowedIss: issuer, allowedAud: audience, requiredClaims: ['exp', 'sub', 'sid', 'type'] })

  return {
    signAccess (args: { userId: string, sessionId: string, phone: string | null, fresh: boolean, now: number, sessionExpiresAt: number, extraClaims: Record<string, unknown> }): { token: string, expiresIn: number } {
      const iat = Math.floor(args.now / 1000)
      // An access token never outlives its session.
      const exp = Math.min(iat + Math.floor(options.accessTokenTtlMs / 1000), Math.floor(args.sessionExpiresAt / 1000))
      // Extra claims first: ours are written last, though extraClaimsFor already refuses overrides.
      const token = accessJwt.sign({ ...args.extraClaims, type: 'access', sub: args.userId, sid: args.sessionId, phone: args.phone, fresh: args.fresh, iat, exp, jti: randomUUID() })
      return { token, expiresIn: exp - iat }
    },

    signRefresh (args: { userId: string, sessionId: string, phone: string | null, generation: number, now: number, sessionExpiresAt: number }): string {
      const iat = Math.floor(args.now / 1000)
      const exp = Math.floor(args.sessionExpiresAt / 1000)
      return signRefreshToken({ type: 'refresh', sub: args.userId, sid: args.sessionId, phone: args.phone, gen: args.generation, iat, exp, jti: randomUUID() })
    },

    /** The claims of a genuine access token; a promise with `jwt.keys`, whose verifier looks keys up asynchronously. */
    verifyAccess (token: string): AccessClaims | Promise<AccessClaims> {
      let verified: unknown
      try {
        verified = accessJwt.verify(token)
      } catch (error) {
        throw refusal(error)
      }
      if (!(verified instanceof Promise)) return checked<AccessClaims>(verified, 'access')
      return verified.then((claims: unknown) => checked<AccessClaims>(claims, 'access'), (error: unknown) => { throw refusal(error) })
    },

    verifyRefresh (token: string): RefreshClaims {
      let verified: unknown
      try {
        verified = verifyRefreshToken(token)
      } catch (error) {
        throw refusal(error)
      }
      const claims = checked<RefreshClaims>(verified, 'refresh')
      if (!Number.isInteger(claims.gen)) throw new TokenInvalidError()
      return claims
    },
  }
}

export type TokenService = ReturnType<typeof createTokenService>
