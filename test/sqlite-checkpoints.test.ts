import { rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { startSqliteCheckpoints } from '../lib/index.js'
import { waitFor } from './helper.js'

// startSqliteCheckpoints (lib/db/sqlite-checkpoints.ts): a WAL database's checkpoints run in a
// worker thread instead of inside the app's commits. What shows it from outside: the app's
// connection checkpoints only past a much larger log, the database file still receives its writes,
// from the worker, within a few intervals, and the log stays bounded under steady writes.

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


t.test('the app\'s commits no longer checkpoint; the worker copies the log into the database file', async (t) => {
  const { connection, write, size } = walDatabase(t)
  const before = size()
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 50 })
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 10_000, 'the connection checkpoints itself only past 10,000 pages')
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

t.test('stop() twice, after the worker has gone, and after the connection closed, resolves', async (t) => {
  const { connection } = walDatabase(t)
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 10 })
  await Promise.all([checkpoints.stop(), checkpoints.stop()])
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
  const closing = walDatabase(t).connection
  const late = startSqliteCheckpoints(closing, { intervalMs: 10 })
  closing.close()
  await late.stop()
})

t.test('under steady writes the log stays bounded: the commit that reaches walLimitPages starts it over', async (t) => {
  const { file, connection } = walDatabase(t)
  const insert = connection.prepare('INSERT INTO rows (body) VALUES (?)')
  const trim = connection.prepare('DELETE FROM rows WHERE id < ?')
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 10, walLimitPages: 100 })
  // A commit every millisecond or so while the worker checkpoints beside them: the worker alone
  // never finds the log fully copied when a commit starts, so only the limit starts it over.
  let largest = 0
  for (let i = 1, until = Date.now() + 1500; Date.now() < until; i++) {
    insert.run('x'.repeat(512))
    if (i % 50 === 0) trim.run(i - 200)
    largest = Math.max(largest, statSync(`${file}-wal`).size)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await checkpoints.stop()
  t.ok(largest < 2 * 1024 * 1024, `the log stayed under 2 MB (largest ${Math.round(largest / 1024)} KB; 100 pages are 400 KB)`)
})

t.test('the worker opens the file the connection has open, whatever the current directory', async (t) => {
  const dir = t.testdir()
  const start = process.cwd()
  process.chdir(dir)
  const connection = new Database('relative.db')
  process.chdir(start)
  t.teardown(() => connection.close())
  connection.pragma('journal_mode = WAL')
  connection.exec('CREATE TABLE rows (body TEXT NOT NULL)')
  const errors: string[] = []
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 20, onError: (message) => errors.push(message) })
  const insert = connection.prepare('INSERT INTO rows VALUES (?)')
  for (let i = 0; i < 300; i++) insert.run('x'.repeat(1024))
  t.ok(await waitFor(() => statSync(join(dir, 'relative.db')).size > 300 * 1024, 10_000), 'the rows reached the database file')
  await checkpoints.stop()
  t.same(errors, [])
})

t.test('a database it cannot serve is refused, and its connection left as it was', async (t) => {
  const memory = new Database(':memory:')
  t.teardown(() => memory.close())
  t.throws(() => startSqliteCheckpoints(memory), /a database file, not an in-memory database/)
  const file = new Database(join(t.testdir(), 'rollback-journal.db'))
  t.teardown(() => file.close())
  t.throws(() => startSqliteCheckpoints(file), /journal_mode = WAL/)
  t.equal(file.pragma('wal_autocheckpoint', { simple: true }), 1000)
  const { connection, file: path } = walDatabase(t)
  t.throws(() => startSqliteCheckpoints(connection, { intervalMs: 1 }), /intervalMs/)
  t.throws(() => startSqliteCheckpoints(connection, { walLimitPages: 0 }), /walLimitPages/)
  const readOnly = new Database(path, { readonly: true })
  t.teardown(() => readOnly.close())
  t.throws(() => startSqliteCheckpoints(readOnly), /read-only/)
  connection.pragma('locking_mode = EXCLUSIVE')
  t.throws(() => startSqliteCheckpoints(connection), /locking_mode = NORMAL/)
  connection.pragma('locking_mode = NORMAL')
  const checkpoints = startSqliteCheckpoints(connection)
  t.throws(() => startSqliteCheckpoints(connection), /already started/, 'a second start on one connection')
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
  const again = startSqliteCheckpoints(connection)
  await again.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000, 'started again after a stop, and stopped')
})

t.test('a worker that cannot open the database reports it to onError, and stop() still resolves', async (t) => {
  const { file, connection } = walDatabase(t)
  // The app's connection keeps its open file; the worker, opening the path, finds nothing there.
  rmSync(file)
  const errors: string[] = []
  const checkpoints = startSqliteCheckpoints(connection, { intervalMs: 20, onError: (message) => errors.push(message) })
  t.ok(await waitFor(() => errors.length > 1, 5000), 'told')
  t.match(errors[0], /unable to open database file|SQLITE_CANTOPEN/i)
  t.match(errors[1], /worker stopped; the connection checkpoints itself again/)
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000, 'its own setting back as soon as the worker stopped')
  await checkpoints.stop()
  t.equal(connection.pragma('wal_autocheckpoint', { simple: true }), 1000)
})
