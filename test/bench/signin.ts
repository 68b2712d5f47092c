// The sign-in steps over HTTP, each feeding the next, against one server:
//   POST /register    a new number per request
//   POST /login       a number registered by the step before, once each: every request sends a code
//   POST /verify_sms  the codes login sent (captured by the server's in-memory SMS provider)
//   POST /refresh     the refresh tokens verify_sms issued; each response's new token goes back
//                     into the pool, so the supply never runs out and no token is used twice
// Run alone: npx tsx test/bench/signin.ts [sqlite|postgres]
import pg from 'pg'
import type { Request as AutocannonRequest } from 'autocannon'
import { DURATION, formatTable, isMain, load, loadNote, startServer, WARMUP, type Row, type ServerHandle } from './common.js'

export const SIGNIN_CONNECTIONS = Number(process.env.BENCH_SIGNIN_CONNECTIONS ?? 20)
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'
const JSON_HEADERS = { 'content-type': 'application/json' }

/** Distinct numbers that libphonenumber accepts (+1 212 200-0000 and up). */
function phoneAt (i: number): string {
  return `+1212${2_000_000 + i}`
}

/** Leaves some inputs unused: each connection may build one request beyond the amount asked for. */
const MARGIN = SIGNIN_CONNECTIONS * 2 + 10

async function step (server: ServerHandle, group: string, name: string, note: string, requests: AutocannonRequest[], remaining?: () => number): Promise<Row> {
  const result = await load({
    port: server.port,
    server,
    path: '/',
    connections: SIGNIN_CONNECTIONS,
    requests,
    // The warm-up may take its share of the inputs (by time); the measured run gets the rest.
    amount: remaining === undefined ? undefined : (seconds) => Math.floor((remaining() - MARGIN) * (seconds === DURATION ? 1 : seconds / (seconds + DURATION))),
  })
  if (result.ok === 0 && result.bad === 0) return { group, name, rps: NaN, p50: NaN, p99: NaN, bad: 0, note: `${note}; skipped: too few inputs from the step before` }
  const short = result.seconds < DURATION * 0.9 ? `; inputs ran out after ${result.seconds.toFixed(1)} s` : ''
  return { group, name, rps: result.rps, p50: result.p50, p99: result.p99, cpu: result.cpu, bad: result.bad, note: note + short }
}

export async function signinBench (dialect: 'sqlite' | 'postgres'): Promise<Row[]> {
  const group = `sign-in, ${dialect === 'sqlite' ? 'SQLite file (WAL)' : 'PostgreSQL'}`
  const server = await startServer(`signin-${dialect}`)
  try {
    const rows: Row[] = []

    // register: an endless supply of new numbers.
    let next = 0
    const registered: string[] = []
    rows.push(await step(server, group, 'POST /register', 'new account; 1 insert', [{
      method: 'POST',
      path: '/api/auth/register',
      headers: JSON_HEADERS,
      setupRequest: (request, context) => {
        const phone = phoneAt(next++)
        Object.assign(context, { phone })
        return { ...request, body: JSON.stringify({ phone }) }
      },
      onResponse: (status, _body, context) => { if (status === 201) registered.push((context as { phone: string }).phone) },
    }]))

    // login: each registered number once, so every request opens a challenge and sends a code.
    let used = 0
    rows.push(await step(server, group, 'POST /login', 'registered number; code sent', [{
      method: 'POST',
      path: '/api/auth/login',
      headers: JSON_HEADERS,
      setupRequest: (request) => ({ ...request, body: JSON.stringify({ phone: registered[used++ % registered.length] }) }),
    }], () => registered.length - used))

    // verify_sms: the codes login sent.
    const { codes } = await server.ask<{ codes: Array<{ phone: string, code: string }> }>('codes')
    let c = 0
    const refreshTokens: string[] = []
    rows.push(await step(server, group, 'POST /verify_sms', 'code checked; session + 2 JWTs', [{
      method: 'POST',
      path: '/api/auth/verify_sms',
      headers: JSON_HEADERS,
      setupRequest: (request) => {
        const entry = codes[c++ % codes.length]!
        return { ...request, body: JSON.stringify({ phone: entry.phone, token: entry.code }) }
      },
      onResponse: (status, body) => { if (status === 200) refreshTokens.push((JSON.parse(body) as { refresh_token: string }).refresh_token) },
    }], () => codes.length - c))

    // refresh: a pool of tokens, each used once and replaced by the one its response carries.
    if (refreshTokens.length <= SIGNIN_CONNECTIONS) throw new Error(`only ${refreshTokens.length} refresh tokens for ${SIGNIN_CONNECTIONS} connections`)
    rows.push(await step(server, group, 'POST /refresh', 'rotation; 2 JWTs', [{
      method: 'POST',
      path: '/api/auth/refresh',
      setupRequest: (request) => ({ ...request, headers: { authorization: `Bearer ${refreshTokens.shift()}` } }),
      onResponse: (status, body) => { if (status === 200) refreshTokens.push((JSON.parse(body) as { refresh_token: string }).refresh_token) },
    }]))
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
