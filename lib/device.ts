import type { FastifyRequest } from 'fastify'
import { parseClientAddress } from './client-ip.js'
import type { Device } from './store/index.js'

/** The most characters of a User-Agent a session keeps. */
export const USER_AGENT_MAX_LENGTH = 256

// Characters that break or disguise whatever shows the list of sessions (a log line, a terminal, a
// page): controls, format characters (bidi overrides, zero-width), surrogates, private use, line separators.
const CONTROL = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/gu

/**
 * The device of a request, as the user's list of sessions shows it: the User-Agent (cut to 256
 * characters, without control, format or private-use characters) and the checked client address, each null when absent.
 */
export function deviceOf (request: FastifyRequest): Device {
  const header = request.headers['user-agent']
  const userAgent = typeof header === 'string' && header !== '' ? Array.from(header.replace(CONTROL, '')).slice(0, USER_AGENT_MAX_LENGTH).join('') : null
  return { userAgent, ip: parseClientAddress(request.ip)?.ip ?? null }
}
