import type { FastifyBaseLogger } from 'fastify'
import t, { type Test } from 'tap'
import { createRevocationList } from '../lib/revocation.js'
import type { Store } from '../lib/store/index.js'

// The revoked-session list on its own, with a store double and a clock the test moves: its
// housekeeping (forgetting old ids, the background refresh, stop) and its failure paths, which the
// end-to-end tests cannot see without waiting for real timers or breaking a real database.

const SECOND = 1000
const MAX_DELAY_MS = 5 * SECOND
const RETAIN_MS = 60 * SECOND

/** Replaces `Date.now()` with a clock that only moves when the test says, until the test ends. */
function fakeClock (t: Test): { now: number } {
  const realNow = Date.now
  const clock = { now: realNow() }
  Date.now = () => clock.now
  t.teardown(() => { Date.now = realNow })
  return clock
}

interface Revocation { id: string, revokedAt: Date }

/**
 * A store whose only method the list uses answers what the test puts in `rows` (a log: a row's
 * position is its index + 1) from the cursor it is given, or `failure`.
 */
function storeDouble () {
  const double = {
    rows: [] as Revocation[],
    failure: undefined as Error | undefined,
    /** The `since` argument of every read. */
    reads: [] as Date[],
    /** The `cursor` argument of every read. */
    cursors: [] as Array<number | undefined>,
    /** Makes the next reads wait until the returned function is called. */
    hold (): () => void {
      let release!: () => void
      double.gate = new Promise<void>((resolve) => { release = resolve })
      return release
    },
    gate: Promise.resolve(),
    store: {
      revocationsAfter: async (cursor: number | undefined, since: Date) => {
        double.reads.push(since)
        double.cursors.push(cursor)
        const next = double.rows.length + 1
        await double.gate
        if (double.failure !== undefined) throw double.failure
        const revocations = double.rows.slice((cursor ?? 1) - 1).filter((row) => row.revokedAt.getTime() > since.getTime())
        return { cursor: next, revocations }
      },
    } as unknown as Store,
  }
  return double
}

/** A logger that keeps its error lines. */
function logDouble () {
  const errors: Array<{ fields: Record<string, unknown>, message: string }> = []
  const log = { error: (fields: Record<string, unknown>, message: string) => { errors.push({ fields, message }) } } as unknown as FastifyBaseLogger
  return { log, errors }
}

function listWith (t: Test, store: Store, log: FastifyBaseLogger, maxDelayMs = MAX_DELAY_MS) {
  const list = createRevocationList({ store, maxDelayMs, retainMs: RETAIN_MS, log })
  t.teardown(() => list.stop())
  return list
}

t.test('start reads the revocations of the whole retention window and trusts them for maxDelay', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  double.rows = [{ id: 'a', revokedAt: new Date(clock.now - 10 * SECOND) }]
  const list = listWith(t, double.store, logDouble().log)
  await list.start()
  t.same(double.reads.map((since) => clock.now - since.getTime()), [RETAIN_MS], 'one read, of the revocations since retainMs ago')
  t.equal(list.isRevoked('a'), true, 'a session revoked in the database is on the list')
  t.equal(list.isRevoked('b'), false, 'another is not')

  clock.now += MAX_DELAY_MS
  t.equal(list.isRevoked('b'), false, 'a list exactly maxDelay old is still trusted: an answer, not a promise')
  t.equal(double.reads.length, 1, 'without a read')
  clock.now += 1
  const answer = list.isRevoked('b')
  t.type(answer, Promise, 'a list older than maxDelay is read again before answering')
  t.equal(await answer, false)
  t.equal(double.reads.length, 2)
})

t.test('each read after the first asks only for what the log holds past the last read, and the list keeps what it knew', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  double.rows = [{ id: 'a', revokedAt: new Date(clock.now - 10 * SECOND) }, { id: 'b', revokedAt: new Date(clock.now - 5 * SECOND) }]
  const list = listWith(t, double.store, logDouble().log)
  await list.start()
  clock.now += MAX_DELAY_MS + 1
  double.rows.push({ id: 'c', revokedAt: new Date(clock.now) })
  t.equal(await list.isRevoked('c'), true, 'the new revocation is read')
  t.same(double.cursors, [undefined, 3], 'the first read from the start of the log, the next from the cursor the first returned')
  t.equal(list.isRevoked('a'), true, 'what the first read found is still on the list, though not read again')
  t.equal(list.isRevoked('b'), true)
})

t.test('each stale check after a completed read starts a new read', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  const list = listWith(t, double.store, logDouble().log)
  await list.start()
  clock.now += MAX_DELAY_MS + 1
  double.rows = [{ id: 'first', revokedAt: new Date(clock.now) }]
  t.equal(await list.isRevoked('first'), true, 'the first re-read sees the first revocation')
  clock.now += MAX_DELAY_MS + 1
  double.rows.push({ id: 'second', revokedAt: new Date(clock.now) })
  t.equal(await list.isRevoked('second'), true, 'the next re-read is a new read, not the finished one again')
  t.equal(double.reads.length, 3)
})

t.test('concurrent stale checks share one read', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  const list = listWith(t, double.store, logDouble().log)
  await list.start()
  clock.now += MAX_DELAY_MS + 1
  const release = double.hold()
  const answers = [list.isRevoked('x'), list.isRevoked('y')]
  release()
  t.same(await Promise.all(answers), [false, false])
  t.equal(double.reads.length, 2, 'the start and one re-read for both checks')
})

t.test('an id is kept for exactly retainMs after its revocation, then forgotten', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  const list = listWith(t, double.store, logDouble().log)
  await list.start()
  // Revoked here: only the list knows, the store double returns nothing.
  list.add('ended')
  t.equal(list.isRevoked('ended'), true)

  // An access token signed at the instant of the revocation is valid until retainMs later.
  clock.now += RETAIN_MS
  t.equal(await list.isRevoked('ended'), true, 'retainMs after the revocation the id is still on the list')
  clock.now += MAX_DELAY_MS + 1
  t.equal(await list.isRevoked('ended'), false, 'later, the refresh forgets it (its access tokens have expired)')
})

t.test('the background refresh runs every maxDelay / 2, at least 50 ms apart, until stop', async (t) => {
  const realSetInterval = globalThis.setInterval
  t.teardown(() => { globalThis.setInterval = realSetInterval })
  const periods: number[] = []
  globalThis.setInterval = ((callback: () => void, ms: number) => {
    periods.push(ms)
    return realSetInterval(callback, ms)
  }) as typeof setInterval

  await listWith(t, storeDouble().store, logDouble().log, 1001).start()
  await listWith(t, storeDouble().store, logDouble().log, 60).start()
  t.same(periods, [500, 50], 'half of maxDelay in whole milliseconds, and never under 50 ms')
})

t.test('the background refresh reads the store again, and stop ends it', async (t) => {
  const double = storeDouble()
  const list = listWith(t, double.store, logDouble().log, 100)
  await list.start()
  await new Promise((resolve) => setTimeout(resolve, 400))
  const whileRunning = double.reads.length
  t.ok(whileRunning >= 2, `refreshed in the background: ${whileRunning} reads in 400 ms at a 50 ms period`)
  await list.stop()
  const atStop = double.reads.length
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(double.reads.length, atStop, 'no read after stop')
})

t.test('stop waits for a read in flight, and resolves when there is none', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  const list = listWith(t, double.store, logDouble().log)
  await t.resolves(list.stop(), 'stop before start, nothing in flight')
  await list.start()
  clock.now += MAX_DELAY_MS + 1
  const release = double.hold()
  double.failure = new Error('the read in flight fails')
  const answer = list.isRevoked('x') as Promise<boolean>
  answer.catch(() => {})
  let stopped = false
  const stopping = list.stop().then(() => { stopped = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(stopped, false, 'stop has not resolved while the read is in flight')
  release()
  await stopping
  t.equal(stopped, true, 'it resolves once the read ends, even when the read failed')
})

t.test('a stale list that cannot be read again answers 503 with Retry-After and logs the cause', async (t) => {
  const clock = fakeClock(t)
  const double = storeDouble()
  const { log, errors } = logDouble()
  const list = listWith(t, double.store, log)
  await list.start()
  clock.now += MAX_DELAY_MS + 1
  const failure = new Error('database unreachable')
  double.failure = failure
  const error = await Promise.resolve(list.isRevoked('x')).then(() => undefined, (rejection: unknown) => rejection) as { code?: string, statusCode?: number, retryAfter?: number, cause?: unknown } | undefined
  t.match(error, { code: 'SECURELOGIN_UNAVAILABLE', statusCode: 503, retryAfter: 2 }, 'refused as unavailable, with the seconds to wait')
  t.equal(error?.cause, failure, 'the database error kept as the cause')
  t.equal(errors.length, 1, 'one error line')
  t.equal(errors[0]?.message, 'fastify-securelogin: revoked-session list is stale and the database is unreachable')
  t.match(errors[0]?.fields, { err: { message: 'database unreachable' } }, 'with the database error')
})

t.test('a background refresh that fails is logged, and the next one tries again', async (t) => {
  const double = storeDouble()
  const { log, errors } = logDouble()
  const list = listWith(t, double.store, log, 100)
  await list.start()
  double.failure = new Error('database unreachable')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(errors.length >= 2, `each failed refresh is logged: ${errors.length} lines`)
  t.equal(errors[0]?.message, 'fastify-securelogin: could not refresh the revoked-session list')
  t.match(errors[0]?.fields, { err: { message: 'database unreachable' } }, 'with the database error')
})
