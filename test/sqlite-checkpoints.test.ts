import { rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { startSqliteCheckpoints } from '../lib/index.js'

// startSqliteCheckpoints (lib/db/sqlite-checkpoints.ts): a WAL database's checkpoints run in a
// worker thread instead of inside the app's commits. What shows it from outside: the app's
// connection stops checkpointing (its writes stay in the -wal file), and the database file still
// receives them, from the worker, within a few intervals.

type Tap = { testdir: () => string, teardown: (fn: () => unknown) => void }

function walDatabase (t: Tap) {
  const file = join(t.testdir(), 'app.db')
  const connection = new Database(file)
  connection.pragma('journal_mode = WAL')
  connection.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
  connection.pragma('wal_checkpoint(TRUNCATE)')
  t.teardown(() => connection.close())
  const insert = connection.prepare('INSERT INTO rows (body) VALUES (?)')
  // 3,000 commits of one row of 1 KB: each commit adds pages to the log.
  const write = () => { for (let i = 0; i < 3000; i++) insert.run('x'.repeat(1024)) }
  return { file, connection, write, size: () => statSync(file).size }
}

const waitFor = async (condition: () => boolean, ms: number) => {
  const until = Date.now() + ms
  while (!condition() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
  return condition()
}

t.test('the app\'s commits no longer checkpoint; the worker copies the log into the database file', async (t) => {
  const { connection, write, size } = walDatabase(t)
  const before = size()
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 50 })
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 0, 'the connection\'s automatic checkpoints are off')
  write()
  t.ok(await waitFor(() => size() > before + 3000 * 1024, 10_000), 'the rows reached the database file')
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000, 'stop() gives the connection its setting back')
})

t.test('without it the same connection would leave the rows in the log: the worker is what moved them', async (t) => {
  const { connection, write, size } = walDatabase(t)
  connection.pragma('wal_autocheckpoint = 0')
  const before = size()
  write()
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(size(), before, 'nothing checkpointed')
})

t.test('stop() twice, and after the worker has gone, resolves', async (t) => {
  const { connection } = walDatabase(t)
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 10 })
  await Promise.all([checkpoints.stop(), checkpoints.stop()])
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
})

t.test('a database it cannot serve is refused, and its connection left as it was', async (t) => {
  const memory = new Database(':memory:')
  t.teardown(() => memory.close())
  t.throws(() => startSqliteCheckpoints(memory), /a database file, not an in-memory database/)
  const file = new Database(join(t.testdir(), 'rollback-journal.db'))
  t.teardown(() => file.close())
  t.throws(() => startSqliteCheckpoints(file), /journal_mode = WAL/)
  t.equal(file.pragma('wal_autocheckpoint', { simple: true }), 1000)
  const { connection } = walDatabase(t)
  t.throws(() => startSqliteCheckpoints(connection, { intervalMs: 1 }), /intervalMs/)
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
})

t.test('a worker that cannot open the database reports it to onError, and stop() still resolves', async (t) => {
  const { file, connection } = walDatabase(t)
  // The app's connection keeps its open file; the worker, opening the path, finds nothing there.
  rmSync(file)
  const errors: string[] = []
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 20, onError: (message) => errors.push(message) })
  t.ok(await waitFor(() => errors.length > 0, 5000), 'told')
  t.match(errors[0], /unable to open database file|SQLITE_CANTOPEN/i)
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
})
