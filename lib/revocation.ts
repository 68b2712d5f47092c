import type { FastifyBaseLogger } from 'fastify'
import { UnavailableError, withRetryAfter } from './errors.js'
import { RETRY_AFTER_SECONDS } from './store/deadline.js'
import { loggableError } from './redact.js'
import type { Store } from './store/index.js'

/**
 * Every instance keeps the ids of sessions revoked within the last access-token lifetime (older
 * ones' access tokens have expired anyway) and refreshes that list from the database in the
 * background, each time reading only the revocations logged since its last read. `authenticate`
 * then costs one Map lookup; it waits for the database only when the list is older than
 * `maxDelayMs`, and refuses (503) rather than trust a list it cannot refresh.
 */
export function createRevocationList (args: { store: Store, maxDelayMs: number, retainMs: number, log: FastifyBaseLogger }) {
  const { store, maxDelayMs, retainMs, log } = args
  const revoked = new Map<string, number>()
  let syncedAt = 0
  let inFlight: Promise<void> | undefined
  let timer: NodeJS.Timeout | undefined

  // Where the next read resumes in the database's log of revocations; undefined until the first
  // read, which takes the whole retention window.
  let cursor: number | undefined

  async function refresh (): Promise<void> {
    const startedAt = Date.now()
    const horizon = startedAt - retainMs
    const read = await store.revocationsAfter(cursor, new Date(horizon))
    for (const row of read.revocations) revoked.set(row.id, row.revokedAt.getTime())
    for (const [id, at] of revoked) if (at < horizon) revoked.delete(id)
    cursor = read.cursor
    syncedAt = startedAt
  }

  function sync (): Promise<void> {
    inFlight ??= refresh().finally(() => { inFlight = undefined })
    return inFlight
  }

  return {
    /** Loads the list and starts the background refresh. */
    async start (): Promise<void> {
      await sync()
      timer = setInterval(() => {
        sync().catch((error: unknown) => log.error({ err: loggableError(error) }, 'fastify-securelogin: could not refresh the revoked-session list'))
      }, Math.max(50, Math.floor(maxDelayMs / 2)))
      timer.unref()
    },

    /** Stops the background refresh and waits for one in flight, so the app can close its pool. */
    async stop (): Promise<void> {
      if (timer !== undefined) clearInterval(timer)
      await inFlight?.catch(() => {})
    },

    /** Marks a session revoked here at once; other instances learn it within `maxDelayMs`. */
    add (sessionId: string): void {
      revoked.set(sessionId, Date.now())
    },

    /** True when the session is revoked. Returns a promise only when the list is stale. */
    isRevoked (sessionId: string): boolean | Promise<boolean> {
      if (Date.now() - syncedAt <= maxDelayMs) return revoked.has(sessionId)
      return sync().then(() => revoked.has(sessionId), (error: unknown) => {
        log.error({ err: loggableError(error) }, 'fastify-securelogin: revoked-session list is stale and the database is unreachable')
        throw withRetryAfter(new UnavailableError({ cause: error }), RETRY_AFTER_SECONDS)
      })
    },
  }
}

export type RevocationList = ReturnType<typeof createRevocationList>
