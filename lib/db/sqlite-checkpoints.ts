import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/** The part of a better-sqlite3 connection this needs. */
interface SqliteConnection { open: boolean, memory: boolean, readonly: boolean, pragma: (source: string, options?: { simple: boolean }) => unknown }

export interface SqliteCheckpoints {
  /** Stops the checkpoints and gives the connection its own automatic checkpoints back. */
  stop: () => Promise<void>
}

export interface SqliteCheckpointOptions {
  /**
   * How often the worker checkpoints, in ms (default 100): the more often, the less is left to copy
   * for the commit that reaches walLimitPages.
   */
  intervalMs?: number
  /**
   * The log size, in pages, at which the app's connection still checkpoints itself (default
   * 10,000: 40 MB with 4 KB pages; SQLite's own default is 1,000). Under steady writes the worker's
   * checkpoints, which run beside the app's commits, never leave the log empty at the moment a
   * commit starts, and only then does SQLite start the log over: without this bound it would grow
   * for as long as the writes go on. The commit that reaches it checkpoints as SQLite always does,
   * but finds only what the worker has not copied yet (its last interval's writes), and the log
   * starts over.
   */
  walLimitPages?: number
  /** better-sqlite3's `nativeBinding`, if the app's connection was opened with one: both must use the same SQLite. */
  nativeBinding?: string
  /** Told when a checkpoint fails or the worker stops (default: a process warning). */
  onError?: (message: string) => void
}

// A worker thread of its own: its checkpoints (and their syncs) block neither the app's event loop
// nor, being PASSIVE, the app's writers. Evaluated source, so that it runs the same compiled or under
// a TypeScript loader; it loads the better-sqlite3 the app has.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.file, { fileMustExist: true, nativeBinding: workerData.nativeBinding })
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)') } catch (error) { parentPort.postMessage([error.code, error.message].filter(Boolean).join(': ')) }
}, workerData.intervalMs)
parentPort.once('message', () => { clearInterval(timer); db.close(); parentPort.close() })
`

/** Connections whose checkpoints a worker runs: a second start on one would restore the wrong setting. */
const served = new WeakSet<object>()

/**
 * Moves most of a WAL database's checkpoints off the app's connection into a worker thread. SQLite
 * copies the log back into the database file from inside the commit that fills it (every 1,000
 * pages by default), syncing both files under `synchronous = NORMAL` as well as `FULL`: with
 * better-sqlite3, which runs synchronously, one request in a hundred or so then blocks the whole
 * process for the length of two disk syncs (docs/databases.md has the figures). Opt-in, as it
 * changes a setting of the app's connection: `wal_autocheckpoint` goes up to `walLimitPages` until
 * `stop()` (or until the worker stops), and a second connection to the same file runs
 * `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`.
 * @example const checkpoints = startSqliteCheckpoints(sqlite); app.addHook('onClose', () => checkpoints.stop())
 */
export function startSqliteCheckpoints (connection: SqliteConnection, options: SqliteCheckpointOptions = {}): SqliteCheckpoints {
  const { intervalMs = 100, walLimitPages = 10_000, nativeBinding, onError = (message) => process.emitWarning(`fastify-securelogin: SQLite checkpoints: ${message}`) } = options
  const refuse = (why: string) => { throw new TypeError(`fastify-securelogin: startSqliteCheckpoints: ${why}`) }
  if (!connection.open) refuse('the connection is closed')
  if (connection.memory) refuse('it needs a database file, not an in-memory database')
  if (connection.readonly) refuse('the connection is read-only: it takes no checkpoints, and a worker writing the file for it would be wrong')
  if (connection.pragma('journal_mode', { simple: true }) !== 'wal') refuse('it needs journal_mode = WAL on the connection')
  // In exclusive locking mode no other connection can read the file.
  if (connection.pragma('locking_mode', { simple: true }) !== 'normal') refuse('it needs locking_mode = NORMAL on the connection')
  if (served.has(connection)) refuse('checkpoints of this connection are already started')
  if (!Number.isInteger(intervalMs) || intervalMs < 10) refuse('intervalMs must be an integer of at least 10')
  if (!Number.isInteger(walLimitPages) || walLimitPages < 1) refuse('walLimitPages must be a positive integer')
  // The file the connection has open, as an absolute path: a relative name would be resolved
  // against the directory of the moment the worker starts.
  const file = (connection.pragma('database_list') as Array<{ name: string, file: string }>).find((database) => database.name === 'main')?.file
  if (file === undefined || file === '') refuse('the connection has no database file')
  const previous = connection.pragma('wal_autocheckpoint', { simple: true }) as number
  const restore = () => { if (connection.open) connection.pragma(`wal_autocheckpoint = ${previous}`) }

  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file, intervalMs, nativeBinding } })
  served.add(connection)
  connection.pragma(`wal_autocheckpoint = ${walLimitPages}`)
  let stopping = false
  let exited = false
  const exit = new Promise<void>((resolve) => worker.once('exit', () => {
    exited = true
    served.delete(connection)
    // A worker gone on its own leaves the connection as it was before: it checkpoints itself again.
    if (!stopping) {
      restore()
      onError('the checkpoint worker stopped; the connection checkpoints itself again')
    }
    resolve()
  }))
  worker.on('message', onError)
  // A worker's uncaught error arrives as a copy, not always an Error instance.
  worker.on('error', (error: { code?: unknown, message?: unknown }) => onError([error.code, error.message].filter((part) => typeof part === 'string').join(': ') || String(error)))
  // A process may exit while the worker runs: it must not keep the app alive.
  worker.unref()
  let stopped: Promise<void> | undefined
  return {
    async stop (): Promise<void> {
      stopped ??= (async () => {
        stopping = true
        // Referenced again, so that the process waits for the worker's close.
        worker.ref()
        if (!exited) worker.postMessage('stop')
        await exit
        restore()
      })()
      return stopped
    },
  }
}
