import type { FastifyRequest } from 'fastify'
import type { SecureLoginClaims, SecureLoginUser } from './authenticate.js'

/** Claims of an access token. `sub` is the public user id. */
export interface AccessClaims {
  type: 'access'
  sub: string
  sid: string
  /** The account's number; null for an email-and-password account without one. */
  phone: string | null
  fresh: boolean
  iat: number
  exp: number
  jti: string
}

/** Claims of a refresh token; `gen` is the session generation it belongs to. */
export interface RefreshClaims {
  type: 'refresh'
  sub: string
  sid: string
  /** The account's number; null for an email-and-password account without one. */
  phone: string | null
  gen: number
  iat: number
  exp: number
  jti: string
}

/** Whether a verified payload is the plugin's token of `type` (with its subject and session). */
export function isClaimsOf<T extends AccessClaims | RefreshClaims> (payload: unknown, type: T['type']): payload is T {
  const claims = payload as Partial<AccessClaims | RefreshClaims> | null
  return typeof claims === 'object' && claims !== null && claims.type === type && typeof claims.sub === 'string' && typeof claims.sid === 'string'
}

/** Computes the app's extra claims for a user at sign-in and refresh (`jwt.claims`). */
export type ClaimsFunction = (user: { userid: string, phone: string | null }, request: FastifyRequest) => SecureLoginClaims | Promise<SecureLoginClaims>

/**
 * Ours, the registered JWT names, the fields of `request.user`, and names that would reach an
 * object's prototype: none can come from `jwt.claims`.
 */
const RESERVED = new Set(['type', 'sub', 'sid', 'phone', 'fresh', 'gen', 'iat', 'exp', 'nbf', 'jti', 'iss', 'aud', 'userid', 'generation', '__proto__', 'constructor', 'prototype'])

/** Calls `jwt.claims` and refuses anything that would override a claim the plugin relies on. */
export async function extraClaimsFor (claims: ClaimsFunction | undefined, user: { userid: string, phone: string | null }, request: FastifyRequest): Promise<Record<string, unknown>> {
  if (claims === undefined) return {}
  const extra: unknown = await claims(user, request)
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
    throw new TypeError('fastify-securelogin: jwt.claims must return an object of claims')
  }
  const reserved = Object.keys(extra).filter((name) => RESERVED.has(name))
  if (reserved.length > 0) throw new TypeError(`fastify-securelogin: jwt.claims may not set the reserved claim(s) ${reserved.join(', ')}`)
  return extra as Record<string, unknown>
}

/** `request.user` of an access token; the app's extra claims are copied only when `jwt.claims` is set. */
export function userFromAccessClaims (claims: AccessClaims, withExtraClaims: boolean): SecureLoginUser {
  const user = { userid: claims.sub, phone: claims.phone, sid: claims.sid, fresh: claims.fresh === true }
  if (!withExtraClaims) return user as SecureLoginUser
  const record = claims as unknown as Record<string, unknown>
  for (const name of Object.keys(record)) {
    if (RESERVED.has(name)) continue
    const value = record[name]
    // The verifier's cache hands every request the same claims object: a route that changes
    // request.user.roles must not change them for the next request.
    ;(user as Record<string, unknown>)[name] = typeof value === 'object' && value !== null ? structuredClone(value) : value
  }
  return user as SecureLoginUser
}
