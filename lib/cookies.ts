import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CookieOriginRefusedError } from './errors.js'
import type { ResolvedOptions } from './options.js'

export type CookieOptions = NonNullable<ResolvedOptions['cookies']>

export const REFRESH_COOKIE = 'securelogin_refresh'
export const ACCESS_COOKIE = 'securelogin_access'
/** A browser client asks for the cookie transport with this header (value `cookie`). */
const TRANSPORT_HEADER = 'x-securelogin-transport'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

// @fastify/cookie is an optional peer: typed structurally here so that our published types never
// import it, and loaded only by apps that turn cookies on.
interface CookieRequest { cookies?: Record<string, string | undefined> }
interface CookieReply {
  setCookie: (name: string, value: string, options: Record<string, unknown>) => unknown
  clearCookie: (name: string, options: Record<string, unknown>) => unknown
}

/** Registers @fastify/cookie on the host unless the app already did. */
export async function ensureCookieSupport (fastify: FastifyInstance): Promise<void> {
  if (fastify.hasReplyDecorator('setCookie')) return
  let cookiePlugin
  try {
    cookiePlugin = (await import('@fastify/cookie')).default
  } catch (error) {
    throw new TypeError('fastify-securelogin: the cookies option needs the "@fastify/cookie" package: npm install @fastify/cookie', { cause: error })
  }
  await fastify.register(cookiePlugin)
}

/**
 * Whether this request uses the cookie transport. A cookie is read or written only for a request
 * that asks for it with `X-SecureLogin-Transport: cookie`: a header no cross-site form can send and
 * no cross-origin script can send without the app's CORS consent. On top of SameSite, its Origin
 * must be the app's own or an allowed one, and unsafe methods must name one.
 */
export function usesCookies (request: FastifyRequest, cookies: CookieOptions | undefined): cookies is CookieOptions {
  if (cookies === undefined || request.headers[TRANSPORT_HEADER] !== 'cookie') return false
  const origin = request.headers.origin
  if (origin === undefined) {
    if (SAFE_METHODS.has(request.method)) return true
    throw new CookieOriginRefusedError()
  }
  if (origin !== `${request.protocol}://${request.host}` && cookies.allowedOrigins?.includes(origin) !== true) throw new CookieOriginRefusedError()
  return true
}

/** The token in a cookie of a request that uses the cookie transport, else undefined. */
export function cookieToken (request: FastifyRequest, cookies: CookieOptions | undefined, name: string): string | undefined {
  if (!usesCookies(request, cookies)) return undefined
  // Two cookies of one name: another subdomain or path planted one (cookie tossing), and the
  // parser would take whichever comes first. Take neither rather than the attacker's session.
  if (cookieNames(request.headers.cookie ?? '').filter((each) => each === name).length !== 1) return undefined
  return (request as CookieRequest).cookies?.[name]
}

/**
 * The names in a Cookie header as @fastify/cookie's parser (cookie@2) reads them: each `;`-separated
 * pair's text before its first `=`, without the spaces and tabs around it (`name =x` is `name`).
 * Pairs without `=` are no cookie.
 */
function cookieNames (header: string): string[] {
  return header.split(';').flatMap((pair) => {
    const equals = pair.indexOf('=')
    return equals === -1 ? [] : [pair.slice(0, equals).replace(/^[ \t]+|[ \t]+$/g, '')]
  })
}

function attributes (cookies: CookieOptions, path: string, maxAgeSeconds: number) {
  return { httpOnly: true, secure: cookies.secure, sameSite: cookies.sameSite, domain: cookies.domain, path, maxAge: Math.max(0, Math.floor(maxAgeSeconds)) }
}

/**
 * Moves the tokens of a sign-in or refresh into cookies: the refresh token always (scoped to the
 * plugin's routes), the access token when `cookies.accessToken` is `'cookie'`. What went into a
 * cookie is left out of the body, where page scripts could read it.
 */
export function sendTokensAsCookies<T extends { access_token?: string, refresh_token?: string, expires_in: number }> (
  reply: FastifyReply, cookies: CookieOptions, prefix: string, body: T, sessionExpiresAt: number,
): T {
  const jar = reply as unknown as CookieReply
  const answer = { ...body }
  jar.setCookie(REFRESH_COOKIE, body.refresh_token as string, attributes(cookies, prefix === '' ? '/' : prefix, (sessionExpiresAt - Date.now()) / 1000))
  delete answer.refresh_token
  if (cookies.accessTokenInCookie) {
    jar.setCookie(ACCESS_COOKIE, body.access_token as string, attributes(cookies, '/', body.expires_in))
    delete answer.access_token
  }
  return answer
}

/** Removes the session's cookies (logout). */
export function clearTokenCookies (reply: FastifyReply, cookies: CookieOptions, prefix: string): void {
  const jar = reply as unknown as CookieReply
  jar.clearCookie(REFRESH_COOKIE, attributes(cookies, prefix === '' ? '/' : prefix, 0))
  if (cookies.accessTokenInCookie) jar.clearCookie(ACCESS_COOKIE, attributes(cookies, '/', 0))
}
