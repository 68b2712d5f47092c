import { isDatabaseUnavailable } from '../db/faults.js'
import { UnavailableError, withRetryAfter } from '../errors.js'

/** Seconds a client is told to wait (`Retry-After`) when the database cannot serve. */
export const RETRY_AFTER_SECONDS = 2

type AsyncMethods = Record<string, (...args: never[]) => Promise<unknown>>

const UNBOUNDED = new Set(['unitOfWork'])

/**
 * The store with every call bounded by `timeoutMs` and every sign of a database that cannot serve
 * now (lost or refused connections, a restart, a timeout, a busy SQLite file) turned into 503
 * SECURELOGIN_UNAVAILABLE: a request never hangs on the database, and never answers 500 for an
 * outage. The driver's error stays as `cause` (log it through `loggableError`). A call
 * past its deadline is not cancelled (no driver can take back a statement already sent): a write
 * may still commit after the client was told 503.
 *
 * `synchronous`: the driver answers before the call returns (better-sqlite3). Its call has settled
 * before any timer could run, so there is no deadline to keep, and none is set (a timer, a promise
 * and three closures a call, on every statement of every sign-in); its errors are turned as above.
 */
export function withDeadline<Store extends AsyncMethods> (store: Store, timeoutMs: number, { synchronous = false }: { synchronous?: boolean } = {}): Store {
  const bounded = {} as Record<string, unknown>
  for (const [name, method] of Object.entries(store)) {
    // A unit of work runs other store calls, each bounded on its own: bounding their sum would
    // answer 503 for a request whose every call was in time, and leave the work running on. Its
    // own statements (BEGIN IMMEDIATE on a file another process holds locked, a COMMIT on a full
    // disk) are turned like the others'; what the work throws goes out as it is (its store calls'
    // errors are turned already, and anything else is not the database's, whatever its code).
    if (UNBOUNDED.has(name)) {
      bounded[name] = (work: () => Promise<unknown>) => {
        let thrown: unknown = NOT_THROWN
        const watched = async () => {
          try {
            return await work()
          } catch (error) {
            thrown = error
            throw error
          }
        }
        return (method as (work: () => Promise<unknown>) => Promise<unknown>).call(bounded, watched)
          .then(undefined, (error: unknown) => { throw error === thrown ? error : turnedUnavailable(error) })
      }
      continue
    }
    if (synchronous) {
      bounded[name] = (...args: never[]) => method.apply(bounded, args).then(undefined, (error: unknown) => { throw turnedUnavailable(error) })
      continue
    }
    bounded[name] = (...args: never[]) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(unavailable(new Error(`no answer within ${timeoutMs} ms (dbTimeout) to ${name}`))), timeoutMs)
      method.apply(bounded, args).then((value) => {
        clearTimeout(timer)
        resolve(value)
      }, (error: unknown) => {
        clearTimeout(timer)
        reject(isDatabaseUnavailable(error) ? unavailable(error) : error)
      })
    })
  }
  return bounded as Store
}

/** What a unit's work has not thrown: any value the work could throw, undefined included, differs from it. */
const NOT_THROWN = Symbol('not thrown')

/** The 503 of a database that cannot serve now, or the error as it is. */
function turnedUnavailable (error: unknown): unknown {
  return isDatabaseUnavailable(error) ? unavailable(error) : error
}

function unavailable (cause: unknown): Error {
  return withRetryAfter(new UnavailableError({ cause }), RETRY_AFTER_SECONDS)
}
