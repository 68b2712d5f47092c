import { createPrivateKey, createPublicKey, hkdfSync, type KeyObject } from 'node:crypto'
import type { Jwk } from '../schemas/jwks.js'

/**
 * Derives an independent key from the JWT secret so that one secret never serves two purposes:
 * the JWT key signs tokens, the derived keys only hash codes and make pseudonymous ids.
 */
export function deriveKey (secret: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'fastify-securelogin', purpose, 32))
}

export type SigningAlgorithm = 'EdDSA' | 'ES256' | 'RS256'

/** A checked key pair of `jwt.keys`, in the forms fast-jwt takes (PEM strings) and the key set publishes. */
export interface SigningKey {
  kid: string
  alg: SigningAlgorithm
  privateKeyPem: string
  publicKeyPem: string
  /** The public key as published in the key set (RFC 7517): public members only. */
  jwk: Jwk
}

const MIN_RSA_BITS = 2048

/** Why `key` cannot sign with `alg`, or undefined. Ed448 is left out: common verifiers (jose 6) dropped it. */
function misfit (alg: SigningAlgorithm, key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  if (alg === 'EdDSA') return type === 'ed25519' ? undefined : `alg 'EdDSA' needs an Ed25519 key (got ${type})`
  if (alg === 'ES256') return type === 'ec' && details.namedCurve === 'prime256v1' ? undefined : `alg 'ES256' needs an EC key on the P-256 curve (got ${type === 'ec' ? `the ${details.namedCurve} curve` : type})`
  if (type !== 'rsa') return `alg 'RS256' needs an RSA key (got ${type})`
  return (details.modulusLength ?? 0) >= MIN_RSA_BITS ? undefined : `alg 'RS256' needs an RSA key of at least ${MIN_RSA_BITS} bits (got ${details.modulusLength})`
}

/** The public members of a JWK of each key type: a private key's `d`, `p`, `q`… can never slip through. */
const PUBLIC_MEMBERS = { OKP: ['crv', 'x'], EC: ['crv', 'x', 'y'], RSA: ['n', 'e'] } as const

function publicJwk (kid: string, alg: SigningAlgorithm, publicKey: KeyObject): Jwk {
  const exported = publicKey.export({ format: 'jwk' }) as Record<string, string>
  const kty = exported.kty as Jwk['kty']
  const jwk: Record<string, string> = { kty, kid, use: 'sig', alg }
  for (const member of PUBLIC_MEMBERS[kty]) jwk[member] = exported[member] as string
  return jwk as Jwk
}

/**
 * Checks the pairs of `jwt.keys` (each already a readable private and public key, see
 * schemas/options.ts): unique ids, keys that fit their `alg`, and public keys that belong to their
 * private keys. Throws a TypeError naming the entry; never quotes key material.
 */
export function resolveSigningKeys (keys: ReadonlyArray<{ kid: string, alg: SigningAlgorithm, privateKey: string | KeyObject, publicKey: string | KeyObject }>): SigningKey[] {
  const fail = (message: string): never => { throw new TypeError(`fastify-securelogin: ${message}`) }
  const seen = new Set<string>()
  return keys.map(({ kid, alg, privateKey, publicKey }, i) => {
    if (seen.has(kid)) fail(`jwt.keys[${i}].kid '${kid}' is used twice: each key needs its own`)
    seen.add(kid)
    const privateObject = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey
    const publicObject = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey
    const problem = misfit(alg, privateObject)
    if (problem !== undefined) fail(`jwt.keys[${i}] (kid '${kid}'): ${problem}`)
    const derived = createPublicKey(privateObject).export({ type: 'spki', format: 'der' })
    if (!derived.equals(publicObject.export({ type: 'spki', format: 'der' }))) fail(`jwt.keys[${i}] (kid '${kid}'): publicKey is not the public key of privateKey`)
    return {
      kid,
      alg,
      privateKeyPem: privateObject.export({ type: 'pkcs8', format: 'pem' }) as string,
      publicKeyPem: publicObject.export({ type: 'spki', format: 'pem' }) as string,
      jwk: publicJwk(kid, alg, publicObject),
    }
  })
}
