import { isIP } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ClientAddressInvalidError } from './errors.js'

/** A client's IP address, checked, in one canonical form per address. */
export interface ClientAddress {
  family: 4 | 6
  /** IPv4 dotted (an IPv4-mapped IPv6 address counts as its IPv4 address); IPv6 as its eight 16-bit groups. */
  ip: string
  /** IPv6 only: the eight groups as numbers. */
  groups?: number[]
}

// The address as read when the request arrived. `request.ip` reads the socket's peer when asked:
// a client that resets the connection right after sending leaves a socket that no longer knows
// it, and every such request would share one `undefined` bucket.
const arrivedFrom = new WeakMap<FastifyRequest, string | undefined>()

/**
 * Reads each request's address as it arrives (an onRequest hook of the plugin's routes) and warns
 * once when the app trusts every proxy: then any client picks its own address in X-Forwarded-For,
 * and every per-IP limit is only as good as the client's honesty.
 */
export function captureClientAddresses (fastify: FastifyInstance): void {
  let checkedTrust = false
  fastify.addHook('onRequest', async (request) => {
    arrivedFrom.set(request, request.ip)
    if (!checkedTrust) {
      checkedTrust = true
      if (trustsEveryProxy(request)) {
        fastify.log.warn('fastify-securelogin: Fastify trusts every proxy (trustProxy: true), so any client chooses its own address with X-Forwarded-For and escapes the per-IP limits: set trustProxy to your proxy\'s address or the number of hops (see docs/deploying.md)')
      }
    }
  })
}

/**
 * The checked address of the client of `request`, as captured on arrival; throws 400
 * SECURELOGIN_CLIENT_ADDRESS_INVALID when it is not an IP address (a forged X-Forwarded-For behind
 * `trustProxy: true`, a socket already closed), so that such a request never gets an allowance of its own.
 */
export function clientAddress (request: FastifyRequest): ClientAddress {
  const address = parseClientAddress(arrivedFrom.has(request) ? arrivedFrom.get(request) : request.ip)
  if (address === undefined) throw new ClientAddressInvalidError()
  return address
}

/** `value` as a {@link ClientAddress}, or undefined when it is not an IP address. */
export function parseClientAddress (value: unknown): ClientAddress | undefined {
  if (typeof value !== 'string' || value.length > 64) return undefined
  // A zone (fe80::1%eth0) names the server's interface, not the client.
  const ip = value.includes(':') ? value.split('%')[0] as string : value
  const family = isIP(ip)
  if (family === 4) return { family: 4, ip }
  if (family !== 6) return undefined
  const groups = ipv6Groups(ip)
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return { family: 4, ip: [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.') }
  }
  return { family: 6, ip: groups.map(hex4).join(':'), groups }
}

export function hex4 (group: number): string {
  return group.toString(16).padStart(4, '0')
}

/** The eight groups of an IPv6 address that `net.isIP` accepted (`::` and an IPv4 tail allowed). */
function ipv6Groups (ip: string): number[] {
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip)
  const text = dotted === null
    ? ip
    : `${ip.slice(0, dotted.index)}${hex4((Number(dotted[1]) << 8) | Number(dotted[2]))}:${hex4((Number(dotted[3]) << 8) | Number(dotted[4]))}`
  const [head = '', tail] = text.toLowerCase().split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0')
  return [...left, ...middle, ...right].map((group) => parseInt(group, 16))
}

/**
 * Whether the app takes X-Forwarded-For from anybody: asks Fastify's own `request.ip` about a
 * made-up request from a public address with a long forwarded chain. Fastify does not expose its
 * trustProxy option (`initialConfig` leaves it out), and a hop count or an address list answers
 * with an address near the end of the chain, while `true` (or a list trusting everything) answers
 * with its first entry.
 */
function trustsEveryProxy (request: FastifyRequest): boolean {
  let ip: (() => unknown) | undefined
  for (let proto = Object.getPrototypeOf(request); proto !== null && ip === undefined; proto = Object.getPrototypeOf(proto)) {
    ip = Object.getOwnPropertyDescriptor(proto, 'ip')?.get
  }
  if (ip === undefined) return false
  const chain = Array.from({ length: 32 }, (_, i) => `198.51.100.${i + 1}`)
  const socket = { remoteAddress: '203.0.113.1' }
  const probe = { raw: { headers: { 'x-forwarded-for': chain.join(', ') }, socket, connection: socket }, socket }
  try {
    return ip.call(probe) === chain[0]
  } catch {
    return false
  }
}
