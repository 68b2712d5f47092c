import { fork, type ChildProcess } from 'node:child_process'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { migrate } from '../lib/index.js'
import { createTestDatabase, dialects, shippedMigrations } from './helper.js'

for (const dialect of dialects) {
  t.test(`${dialect}: instances migrating one empty database at once all succeed`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => migrate(database.db)))
    t.same(results.map((result) => result.status), Array(6).fill('fulfilled'), String(results.find((r) => r.status === 'rejected') && (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))
    const applied = await database.query(dialect === 'sqlite' ? 'SELECT hash FROM __securelogin_migrations' : 'SELECT hash FROM drizzle.__securelogin_migrations')
    t.equal(applied.length, shippedMigrations(dialect), 'each migration is recorded once')
  })
}

// Processes starting at the same moment on one empty SQLite file: drizzle's migrator reads what
// was applied before it takes the write lock, so without BEGIN IMMEDIATE around the whole migration
// two of them both create the tables (about one start in eight, with two processes).
// tap puts its process-info hook into NODE_OPTIONS for coverage, which is off here and slows every start.
const CHILD_ENV = { ...process.env, NODE_OPTIONS: (process.env.NODE_OPTIONS ?? '').replace(/--import=\S*@tapjs\/processinfo\S*/g, '').trim() }

t.test('sqlite: processes migrating one empty file at the same moment all succeed', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/sqlite-migrate-process.ts', import.meta.url))
  const children = Array.from({ length: 5 }, () => fork(fixture, [], { execArgv: ['--import', 'tsx'], env: CHILD_ENV, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  t.teardown(() => { for (const child of children) child.kill() })
  const next = <T>(child: ChildProcess) => new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`a migrating process exited (${code})`))
    child.once('exit', onExit)
    child.once('message', (message) => { child.off('exit', onExit); resolve(message as T) })
  })
  await Promise.all(children.map((child) => next(child)))
  for (let round = 0; round < 15; round++) {
    const file = join(t.testdir(), `round-${round}.db`)
    // An empty database file in WAL mode, as an app's would be.
    const setup = new Database(file)
    setup.pragma('journal_mode = WAL')
    setup.close()
    const ready = children.map((child) => next(child))
    for (const child of children) child.send({ open: file })
    await Promise.all(ready)
    const done = children.map((child) => next<{ ok: boolean, error?: string }>(child))
    for (const child of children) child.send({ go: true })
    const outcomes = await Promise.all(done)
    t.same(outcomes.filter((outcome) => !outcome.ok), [], `round ${round + 1}: all five migrated`)
  }
  for (const child of children) child.send({ exit: true })
})
