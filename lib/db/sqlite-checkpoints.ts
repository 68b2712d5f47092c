import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/** The part of a better-sqlite3 connection this needs. */
interface SqliteConnection { name: string, memory: boolean, pragma: (source: string, options?: { simple: boolean }) => unknown }

export interface SqliteCheckpoints {
  /** Stops the checkpoints and gives the connection its own automatic checkpoints back. */
  stop: () => Promise<void>
}

// A worker thread of its own: its checkpoints (and their syncs) block neither the app's event loop
// nor, being PASSIVE, the app's writers. Evaluated source, so that it runs the same compiled or under
// a TypeScript loader; it loads the better-sqlite3 the app has.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.file, { fileMustExist: true })
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)') } catch (error) { parentPort.postMessage(String(error)) }
}, workerData.intervalMs)
parentPort.once('message', () => { clearInterval(timer); db.close(); parentPort.close() })
`

/**
 * Moves a WAL database's checkpoints off the app's connection into a worker thread. SQLite copies
 * the log back into the database file from inside the commit that fills it (every 1,000 pages by
 * default), syncing both files under `synchronous = NORMAL` as well as `FULL`: with better-sqlite3,
 * which runs synchronously, one request in a hundred or so then blocks the whole process for the
 * length of two disk syncs (docs/databases.md has the figures). Opt-in, as it changes a setting of
 * the app's connection: `wal_autocheckpoint` is set to 0 on `connection` until `stop()`, and a
 * second connection to the same file runs `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`.
 * @example const checkpoints = startSqliteCheckpoints(sqlite); app.addHook('onClose', () => checkpoints.stop())
 */
export function startSqliteCheckpoints (connection: SqliteConnection, options: { intervalMs?: number, onError?: (message: string) => void } = {}): SqliteCheckpoints {
  const { intervalMs = 1000, onError = (message) => process.emitWarning(`fastify-securelogin: SQLite checkpoint failed: ${message}`) } = options
  if (connection.memory) throw new TypeError('fastify-securelogin: startSqliteCheckpoints needs a database file, not an in-memory database')
  if (connection.pragma('journal_mode', { simple: true }) !== 'wal') throw new TypeError('fastify-securelogin: startSqliteCheckpoints needs journal_mode = WAL on the connection')
  if (!Number.isInteger(intervalMs) || intervalMs < 10) throw new TypeError('fastify-securelogin: startSqliteCheckpoints: intervalMs must be an integer of at least 10')
  const previous = connection.pragma('wal_autocheckpoint', { simple: true }) as number
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: connection.name, intervalMs } })
  let exited = false
  const exit = new Promise<void>((resolve) => worker.once('exit', () => { exited = true; resolve() }))
  worker.on('message', onError)
  // A worker's uncaught error arrives as a copy, not always an Error instance.
  worker.on('error', (error: { code?: unknown, message?: unknown }) => onError([error.code, error.message].filter((part) => typeof part === 'string').join(': ') || String(error)))
  // A process may exit while the worker runs: it must not keep the app alive.
  worker.unref()
  connection.pragma(`wal_autocheckpoint = 0`)
  let stopped: Promise<void> | undefined
  return {
    async stop (): Promise<void> {
      stopped ??= (async () => {
        // Referenced again, so that the process waits for the worker's close.
        worker.ref()
        if (!exited) worker.postMessage('stop')
        await exit
        connection.pragma(`wal_autocheckpoint = ${previous}`)
      })()
      return stopped
    },
  }
}
