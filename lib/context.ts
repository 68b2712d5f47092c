import type { ChallengeContext } from './challenges.js'
import type { SessionContext } from './sessions.js'
import type { AuthHook } from './authenticate.js'

/** Everything the routes need, built once at registration. */
export interface SecureLoginContext extends ChallengeContext, SessionContext {
  hooks: { authenticate: AuthHook, authenticateFresh: AuthHook, authenticateRefresh: AuthHook, refreshTokenClaims: AuthHook }
}
