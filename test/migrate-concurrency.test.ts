import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { migrate } from '../lib/index.js'
import { createTestDatabase, dialects } from './helper.js'

for (const dialect of dialects) {
  t.test(`${dialect}: instances migrating one empty database at once all succeed`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => migrate(database.db)))
    t.same(results.map((result) => result.status), Array(6).fill('fulfilled'), String(results.find((r) => r.status === 'rejected') && (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))
    const applied = await database.query(dialect === 'sqlite' ? 'SELECT hash FROM __securelogin_migrations' : 'SELECT hash FROM drizzle.__securelogin_migrations')
    t.equal(applied.length, 1, 'each migration is recorded once')
  })
}

// Processes (here threads, each with its own connection) starting at the same moment on one empty
// SQLite file: drizzle's migrator reads what was applied before it takes the write lock, so
// without BEGIN IMMEDIATE around the whole migration two of them both create the tables.
t.test('sqlite: connections migrating one empty file at the same moment all succeed', async (t) => {
  const workers = Array.from({ length: 6 }, () => new Worker(new URL('./fixtures/sqlite-migrate-worker.ts', import.meta.url)))
  t.teardown(() => Promise.all(workers.map((worker) => worker.terminate())))
  for (const worker of workers) worker.on('error', (error) => t.fail(`a worker failed: ${String(error)}`))
  const nextMessage = <T>(worker: Worker) => new Promise<T>((resolve) => worker.once('message', resolve))
  await Promise.all(workers.map((worker) => nextMessage(worker)))
  for (let round = 0; round < 5; round++) {
    const file = join(t.testdir(), `round-${round}.db`)
    const go = new SharedArrayBuffer(4)
    const ready = workers.map((worker) => nextMessage(worker))
    for (const worker of workers) worker.postMessage({ file, go })
    await Promise.all(ready)
    const done = workers.map((worker) => nextMessage<{ ok: boolean, error?: string }>(worker))
    Atomics.store(new Int32Array(go), 0, 1)
    Atomics.notify(new Int32Array(go), 0)
    const outcomes = await Promise.all(done)
    t.same(outcomes.filter((outcome) => !outcome.ok), [], `round ${round + 1}: all six migrated`)
  }
})
