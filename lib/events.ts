import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { maskPhone } from './phone.js'
import { loggableError } from './redact.js'

/** What happened, for an audit trail: each emitted after the action, never on the request's path. */
export type SecureLoginEventType =
  | 'otp.sent' | 'otp.failed' | 'otp.locked' | 'sms.failed'
  | 'login' | 'refresh' | 'refresh.reuse' | 'logout'
  | 'limit' | 'budget.exhausted'
  | 'login.failed' | 'login.locked'
  | 'account.deleted' | 'phone.changed' | 'password.changed'

export interface SecureLoginEvent {
  type: SecureLoginEventType
  /** When the plugin emitted it. */
  at: Date
  /** The client's address as the plugin counts it (Fastify's `request.ip`). */
  ip: string | undefined
  /** The account, when the event concerns one. */
  userid?: string
  /** The session, for login, refresh, refresh.reuse and logout. */
  sid?: string
  /** The number, masked (`+1415•••••23`): never a full number in an audit trail. */
  phone?: string
  /** Why: a refusal's code (`SECURELOGIN_RATE_LIMITED`), `wrong-code` / `userid-mismatch`, `logout_all_other_sessions`… */
  reason?: string
}

/** The app's audit hook (`onEvent`). */
export type SecureLoginEventHandler = (event: SecureLoginEvent) => void | Promise<void>

/** What a caller gives: `phone` in full (masked here), or null for an account without a number. */
export type EventFields = Omit<SecureLoginEvent, 'at' | 'ip' | 'phone'> & { phone?: string | null }

/**
 * Hands events to the app's `onEvent` after the current request's work: a throwing or slow
 * handler is logged and never breaks or delays the request.
 */
export function createEvents (handler: SecureLoginEventHandler | undefined, log: FastifyBaseLogger) {
  return {
    emit (request: FastifyRequest | undefined, fields: EventFields): void {
      if (handler === undefined) return
      const { phone, ...rest } = fields
      const event: SecureLoginEvent = {
        ...rest,
        at: new Date(),
        ip: request?.ip,
        ...(phone === undefined || phone === null ? {} : { phone: maskPhone(phone) }),
      }
      setImmediate(() => {
        Promise.resolve().then(() => handler(event)).catch((error: unknown) => {
          log.error({ err: loggableError(error), event: event.type }, 'fastify-securelogin: the onEvent handler failed')
        })
      })
    },
  }
}

export type Events = ReturnType<typeof createEvents>
