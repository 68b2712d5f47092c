import { createHmac, randomInt, timingSafeEqual } from 'node:crypto'

/** A uniformly random numeric code of `length` digits from the system CSPRNG. */
export function generateCode (length: number): string {
  return randomInt(0, 10 ** length).toString().padStart(length, '0')
}

/**
 * The keyed hash stored in place of a code. Binding the phone and the challenge id means a hash
 * copied to another row or another challenge never matches; binding the `owner` (the account a
 * change of number was asked for) means no other account, and no sign-in, can use that code.
 */
export function hashCode (key: Buffer, phone: string, challengeId: string, code: string, owner?: string): string {
  const bound = owner === undefined ? `${phone}\n${challengeId}\n${code}` : `${phone}\n${challengeId}\n${code}\nowner:${owner}`
  return createHmac('sha256', key).update(bound).digest('base64url')
}

/** Constant-time comparison of two stored hashes. */
export function hashesMatch (a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}
