import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * The JWT secret: JWT_SECRET when set. In development a missing one is generated once and kept in
 * a local file so that tokens survive restarts; in production a missing one is an error.
 */
export function jwtSecretFromEnv (env: NodeJS.ProcessEnv, secretFile: string, warn: (message: string) => void): string {
  if (env.JWT_SECRET !== undefined && env.JWT_SECRET !== '') return env.JWT_SECRET
  if (env.NODE_ENV === 'production') throw new Error('JWT_SECRET is required when NODE_ENV=production (e.g. openssl rand -base64 48)')
  if (!existsSync(secretFile)) {
    mkdirSync(dirname(secretFile), { recursive: true })
    writeFileSync(secretFile, randomBytes(48).toString('base64'), { mode: 0o600 })
  }
  warn(`JWT_SECRET is not set: using a development secret kept in ${secretFile}. Set JWT_SECRET in production.`)
  return readFileSync(secretFile, 'utf8').trim()
}
