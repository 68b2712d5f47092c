import type { FastifyBaseLogger } from 'fastify'
import { loggableError } from '../redact.js'

interface Emitter {
  on: (event: 'error', listener: (error: unknown) => void) => unknown
  listenerCount: (event: 'error') => number
  query: unknown
}

/**
 * node-postgres emits `error` on a pool (or client) whose idle connection the server closed: a
 * restart, a failover, an idle-connection reaper. With no listener Node ends the process. An app
 * that attached none gets one that logs a warning, and the pool makes new connections on demand.
 * @returns whether a listener was attached
 */
export function guardPoolErrors (db: unknown, log: FastifyBaseLogger): boolean {
  const client = (db as { $client?: unknown }).$client as Partial<Emitter> | undefined
  if (client === undefined || client === null || typeof client.on !== 'function' || typeof client.listenerCount !== 'function' || typeof client.query !== 'function') return false
  if (client.listenerCount('error') > 0) return false
  client.on('error', (error) => {
    log.warn({ err: loggableError(error) }, 'fastify-securelogin: a database connection was closed under the pool; it will reconnect. Attach your own pool.on(\'error\') listener to handle this yourself')
  })
  return true
}
