import type { Account, SessionList } from '../schemas/account.js'
import type { Session, User } from './store/index.js'

/** An account as the API and the app's own code see it (GET /me, `secureLogin.findUser`). */
export function accountView (user: User): Account {
  return {
    userid: user.id,
    phone: user.phone,
    username: user.username,
    ...(user.email === null ? {} : { email: user.email }),
    auth_types: [...(user.phone === null ? [] : ['PHONE' as const]), ...(user.passwordHash === null ? [] : ['PASSWORD' as const])],
    created_at: user.createdAt.toISOString(),
    phone_verified_at: user.phoneVerifiedAt?.toISOString() ?? null,
  }
}

/** One session in the user's list. */
export function sessionView (session: Session, currentSid: string): SessionList['sessions'][number] {
  return {
    sid: session.id,
    created_at: session.createdAt.toISOString(),
    last_seen_at: session.refreshedAt.toISOString(),
    user_agent: session.userAgent,
    ip: session.ip,
    current: session.id === currentSid,
  }
}
