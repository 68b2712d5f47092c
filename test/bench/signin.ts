// The sign-in steps over HTTP, each feeding the next, against one server:
//   POST /register    a new number per request
//   POST /login       a number registered by the step before, once each: every request sends a code
//   POST /verify_sms  the codes login sent (captured by the server's in-memory SMS provider)
//   POST /refresh     the refresh tokens verify_sms issued; each response's new token goes back
//                     into the pool, so the supply never runs out and no token is used twice
// Run alone: npx tsx test/bench/signin.ts [sqlite|postgres]
import pg from 'pg'
import { DURATION, formatTable, isMain, load, loadNote, setStep, startServer, stepState, WARMUP, type Row, type ServerHandle, type SignInStep } from './common.js'

export const SIGNIN_CONNECTIONS = Number(process.env.BENCH_SIGNIN_CONNECTIONS ?? 20)
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'

/** Leaves some inputs unused: each connection may build one request beyond the amount asked for. */
const MARGIN = SIGNIN_CONNECTIONS * 2 + 10

/**
 * One sign-in step, run by the load generator on `inputs`. A `finite` supply (each input used
 * once): the warm-up takes its share of them by time and the measured run stops before they run out.
 */
async function step (server: ServerHandle, group: string, name: string, note: string, sequence: SignInStep, inputs: unknown[], finite: boolean): Promise<Row> {
  await setStep(sequence, inputs)
  let remaining = inputs.length
  const result = await load({
    port: server.port,
    server,
    path: '/',
    connections: SIGNIN_CONNECTIONS,
    step: sequence,
    profile: `${server.name}-${sequence}`,
    amount: !finite
      ? undefined
      : (seconds) => Math.floor((remaining - MARGIN) * (seconds === DURATION ? 1 : seconds / (seconds + DURATION))),
    // Between the warm-up and the measured run: what the warm-up used is gone.
    beforeMeasure: !finite ? undefined : async () => { remaining = inputs.length - (await stepState(sequence)).used },
  })
  if (result.ok === 0 && result.bad === 0) return { group, name, rps: NaN, p50: NaN, p99: NaN, bad: 0, note: `${note}; skipped: too few inputs from the step before` }
  const short = result.seconds < DURATION * 0.9 ? `; inputs ran out after ${result.seconds.toFixed(1)} s` : ''
  const mainThread = result.mainThread === undefined ? '' : `; main thread ${result.mainThread.toFixed(0)} µs CPU`
  const inSqlite = result.inSqlite === undefined ? '' : `; ${(result.inSqlite.statements + result.inSqlite.commits).toFixed(0)} µs in ${result.inSqlite.calls.toFixed(0)} SQLite calls (commits ${result.inSqlite.commits.toFixed(0)})`
  return { group, name, rps: result.rps, p50: result.p50, p99: result.p99, cpu: result.cpu, bad: result.bad, note: note + short + mainThread + inSqlite }
}

/** What `--scale` reports besides the steps: the seeding and the housekeeping at that size. */
export interface ScaleReport { seedMs: number, revokedRows: number, revocationMs: number, nextRevokedRows: number, nextRevocationMs: number, purged: Record<string, number>, purgeMs: number }

/**
 * The four steps on a fresh database, or with `scale` on one first filled with that many accounts
 * and sessions (test/bench/server.ts, seedScale); then `onScale` gets the housekeeping's cost. On
 * SQLite, `synchronous` sets the pragma (else BENCH_SQLITE_SYNC, else the connection's own); the
 * group names the one the server ran with. On PostgreSQL, `namedStatements` (else BENCH_PG_NAMED=1)
 * names the store's statements.
 */
export async function signinBench (dialect: 'sqlite' | 'postgres', { scale = 0, onScale, synchronous, checkpoints, namedStatements }: { scale?: number, onScale?: (report: ScaleReport) => void, synchronous?: 'FULL' | 'NORMAL', checkpoints?: 'worker', namedStatements?: boolean } = {}): Promise<Row[]> {
  const size = scale === 0 ? '' : `, ${scale.toLocaleString('en-US')} accounts`
  const server = await startServer(`signin-${dialect}`, {
    ...(scale === 0 ? {} : { BENCH_SCALE: String(scale) }),
    ...(synchronous === undefined ? {} : { BENCH_SQLITE_SYNC: synchronous }),
    ...(checkpoints === undefined ? {} : { BENCH_SQLITE_CHECKPOINTS: checkpoints }),
    ...(namedStatements === undefined ? {} : { BENCH_PG_NAMED: namedStatements ? '1' : '0' }),
  })
  const group = `sign-in, ${dialect === 'sqlite' ? `SQLite file (WAL, synchronous ${String(server.info.synchronous)}${server.info.checkpoints === 'worker' ? ', checkpoints in a worker' : ''})` : `PostgreSQL${server.info.namedStatements === true ? ', named statements' : ''}`}${size}`
  try {
    const rows: Row[] = []
    // register: an endless supply of new numbers; login: each registered number once, so every
    // request opens a challenge and sends a code; verify_sms: the codes login sent; refresh: a
    // pool of the tokens verify_sms issued, each replaced by the one its answer carries.
    rows.push(await step(server, group, 'POST /register', 'new account; 1 insert', 'register', [], false))
    const registered = (await stepState<string>('register')).outputs
    rows.push(await step(server, group, 'POST /login', 'registered number; code sent', 'login', registered, true))
    const { codes } = await server.ask<{ codes: Array<{ phone: string, code: string }> }>('codes')
    rows.push(await step(server, group, 'POST /verify_sms', 'code checked; session + 2 JWTs', 'verify', codes, true))
    const refreshTokens = (await stepState<string>('verify')).outputs
    if (refreshTokens.length <= SIGNIN_CONNECTIONS) throw new Error(`only ${refreshTokens.length} refresh tokens for ${SIGNIN_CONNECTIONS} connections`)
    rows.push(await step(server, group, 'POST /refresh', 'rotation; 2 JWTs', 'refresh', refreshTokens, false))
    if (scale > 0) {
      const report = await server.ask<ScaleReport & { error?: string }>('housekeeping')
      if (report.error !== undefined) throw new Error(`housekeeping at scale: ${report.error}`)
      onScale?.({ ...report, seedMs: server.info.seedMs as number })
    }
    return rows
  } finally {
    await server.stop()
  }
}

/** True when PostgreSQL answers at BENCH_PG_URL within 3 s (and BENCH_PG is not 0). */
export async function postgresReachable (): Promise<boolean> {
  if (process.env.BENCH_PG === '0') return false
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

export function signinSummary (): string {
  return `Sign-in: ${SIGNIN_CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per step.`
}

if (isMain(import.meta.url)) {
  const dialect = process.argv[2] === 'postgres' ? 'postgres' : 'sqlite'
  if (dialect === 'postgres' && !await postgresReachable()) {
    console.log(`PostgreSQL is not reachable at ${PG_URL}: skipped`)
  } else {
    console.log(formatTable(await signinBench(dialect), undefined))
    console.log(`\n${signinSummary()} ${loadNote()}`)
  }
}
