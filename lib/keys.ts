import { hkdfSync } from 'node:crypto'

/**
 * Derives an independent key from the JWT secret so that one secret never serves two purposes:
 * the JWT key signs tokens, the derived keys only hash codes and make pseudonymous ids.
 */
export function deriveKey (secret: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'fastify-securelogin', purpose, 32))
}
