import * as drizzleOrm from 'drizzle-orm'
import { DrizzleError, is } from 'drizzle-orm'

// DrizzleQueryError exists from drizzle-orm 0.44.4 on; older versions (in our peer range) lack it.
const DrizzleQueryError = (drizzleOrm as { DrizzleQueryError?: abstract new (...args: never[]) => Error }).DrizzleQueryError

/** Node's socket errors and postgres-js' own connection errors: the server cannot be reached. */
export const UNREACHABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'EPIPE',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
])

// SQLSTATEs of a server that cannot serve now but will: a connection lost or refused (08), too
// many connections or a full disk (53), a shutdown, restart or a database not accepting
// connections yet (57P01–57P05), a statement cancelled by statement_timeout (57014), a
// serialization failure or deadlock (40001, 40P01), a lock not available (55P03), a read-only
// transaction on a promoted replica's old primary (25006), a database not accepting connections (55000).
const PG_UNAVAILABLE = /^(08|53|57P0|57014|40001|40P01|55P03|25006|55000)/

// SQLite result codes of a database that is busy, locked or cannot do I/O now.
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL)/

// A named statement (postgres.namedStatements) whose result type a migration changed while the app
// ran: the server refuses it on that connection until the statement is dropped. A node-postgres
// Pool drops the connection that failed (postgres.js re-prepares by itself), so a retry works.
const STALE_PLAN = /^cached plan must not change result type/

// node-postgres says these in words only.
const NODE_PG_UNAVAILABLE = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Cannot use a pool after calling end)/

/** The driver's error: drizzle wraps it in one that quotes the statement (and its parameters). */
export function driverError (error: unknown): unknown {
  let current = error
  while (((DrizzleQueryError !== undefined && current instanceof DrizzleQueryError) || is(current, DrizzleError)) && (current as Error).cause !== undefined) {
    current = (current as Error).cause
  }
  return current
}

/** The driver's (or the socket's) error code: a SQLSTATE, a SQLite code, or a Node one. */
export function errorCode (error: unknown): string | undefined {
  const inner = driverError(error) as { code?: unknown, errors?: unknown } | null
  if (typeof inner?.code === 'string') return inner.code
  // Node 20 tries every address of "localhost" and reports an AggregateError.
  if (Array.isArray(inner?.errors)) return errorCode(inner.errors[0])
  return undefined
}

/**
 * Whether a database error means the database cannot serve now (a restart, a failover, a lost or
 * refused connection, a timeout, a busy SQLite file), which a retry later can cure, rather than a
 * bug or a broken schema. The former is answered 503, the latter 500.
 */
export function isDatabaseUnavailable (error: unknown): boolean {
  const code = errorCode(error)
  if (code !== undefined && (UNREACHABLE.has(code) || PG_UNAVAILABLE.test(code) || SQLITE_UNAVAILABLE.test(code))) return true
  const message = (driverError(error) as { message?: unknown } | null)?.message
  if (typeof message !== 'string') return false
  return NODE_PG_UNAVAILABLE.test(message) || (code === '0A000' && STALE_PLAN.test(message))
}

/** A row still referenced by a foreign key (an app's table pointing at an account). */
export function isForeignKeyViolation (error: unknown): boolean {
  const code = errorCode(error)
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
}

/** A row that a unique index already holds (an id or a number taken an instant ago). */
export function isUniqueViolation (error: unknown): boolean {
  const code = errorCode(error)
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE'
}
