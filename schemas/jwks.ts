import { Type, type Static } from '@sinclair/typebox'

// The key set of GET {prefix}/.well-known/jwks.json (RFC 7517): the public halves of `jwt.keys`.
// Only public members are listed, and the answer is serialized through this schema, so a private
// member (`d`, `p`, `q`, `dp`, `dq`, `qi`) could not be sent even by mistake.

const B64 = (description: string) => Type.String({ pattern: '^[A-Za-z0-9_-]+$', description })

export const Jwk = Type.Object({
  kty: Type.Union([Type.Literal('OKP'), Type.Literal('EC'), Type.Literal('RSA')], { description: 'Key type: OKP (Ed25519), EC (P-256) or RSA' }),
  kid: Type.String({ description: 'The key id, as in the `kid` header of the tokens it signed' }),
  use: Type.Literal('sig', { description: 'Signatures only' }),
  alg: Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256'), Type.Literal('RS256')], { description: 'The one algorithm this key verifies' }),
  crv: Type.Optional(Type.Union([Type.Literal('Ed25519'), Type.Literal('P-256')], { description: 'OKP and EC keys: the curve' })),
  x: Type.Optional(B64('OKP and EC keys: the public x coordinate (base64url)')),
  y: Type.Optional(B64('EC keys: the public y coordinate (base64url)')),
  n: Type.Optional(B64('RSA keys: the modulus (base64url)')),
  e: Type.Optional(B64('RSA keys: the public exponent (base64url)')),
}, { additionalProperties: false, title: 'SecureLoginJwk', description: 'A public key of `jwt.keys`' })
export type Jwk = Static<typeof Jwk>

export const JwksResponse = Type.Object({
  keys: Type.Array(Jwk, { description: 'Every key of `jwt.keys`, the signing key first; empty when access tokens are HS256 (no `jwt.keys`)' }),
}, {
  $id: 'SecureLoginJwks',
  title: 'SecureLoginJwks',
  additionalProperties: false,
  description: 'The public keys that verify access tokens (RFC 7517 JSON Web Key Set)',
  examples: [{ keys: [{ kty: 'OKP', kid: '2025-06', use: 'sig', alg: 'EdDSA', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }] }],
})
export type JwksResponse = Static<typeof JwksResponse>
