// `npm run soak` (issue 9): a bounded mixed load of every route (test/bench/soak-load.ts) over
// several connections, on a SQLite file (WAL) and then on PostgreSQL, each in a server child
// process (test/bench/server.ts, scenarios soak-sqlite / soak-postgres). For each it prints the
// requests and req/s, the answers by status and by step, the 5xx, the server's RSS after the
// warm-up and at the end, and the rows left in each table.
//   SOAK_SECONDS      measured seconds per database (default 60)
//   SOAK_WARMUP       seconds of the same load before the first RSS sample (default: a tenth of
//                     SOAK_SECONDS, 1 to 5)
//   SOAK_CONNECTIONS  virtual users, one connection each (default 20)
//   SOAK_PG_URL       server for the scratch database (default postgres://root@127.0.0.1:5432/test);
//                     when it does not answer PostgreSQL is skipped, or the run fails when CI is set
// Exit code 1 on any 5xx, socket error or timeout, on a success where the step must be refused (a
// revoked refresh token, a wrong code), on a fault of the load itself, when no sign-in succeeded,
// and (only when SOAK_SECONDS >= 30: shorter runs are too noisy) when the RSS grew by more than 10 %.
import { cpus } from 'node:os'
import pg from 'pg'
import { loadNote, startServer, type ServerHandle } from './common.js'
import { createClient } from './soak-client.js'
import { MixedLoad } from './soak-load.js'
import { CodeBox } from './soak-phones.js'
import { Tally } from './soak-tally.js'
import { formatReport, type DatabaseRun, type ServerStats, type Slices } from './soak-report.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
const WARMUP = Number(process.env.SOAK_WARMUP ?? Math.min(5, Math.max(1, Math.round(SECONDS / 10))))
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 20)
/** About a dozen slices per run, whatever its length. */
const SLICE_SECONDS = Math.max(1, Math.round(SECONDS / 12))
const PG_URL = process.env.SOAK_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'
const IN_CI = process.env.CI !== undefined && process.env.CI !== ''
/** RSS at the end may exceed RSS after the warm-up by this much. */
const RSS_GROWTH_LIMIT = 0.10
/** Below this many seconds a run is too short for its RSS to say anything about a leak. */
const RSS_CHECKED_FROM_SECONDS = 30

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function postgresAnswers (url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
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

/**
 * Waits out the measured part, noting the requests answered and the server's RSS (without a GC)
 * at the end of each slice: a server that slows down, or whose memory climbs instead of levelling
 * off, shows here. One sample at a time (the server handle keeps one waiter per message type).
 */
async function sampleSlices (server: ServerHandle, load: MixedLoad, startedAt: number): Promise<Slices> {
  const slices: Slices = { seconds: SLICE_SECONDS, requests: [], rss: [] }
  let counted = 0
  for (let end = SLICE_SECONDS; end <= SECONDS; end += SLICE_SECONDS) {
    await sleep(startedAt + end * 1000 - performance.now())
    const { rss } = await server.ask<{ rss: number }>('memory')
    slices.requests.push(load.tally.requests - counted)
    slices.rss.push(rss)
    counted = load.tally.requests
  }
  await sleep(startedAt + SECONDS * 1000 - performance.now())
  return slices
}

async function soak (dialect: 'sqlite' | 'postgres'): Promise<DatabaseRun> {
  // --expose-gc: the server collects garbage before each memory sample, so the two compare.
  const server = await startServer(`soak-${dialect}`, { BENCH_PG_URL: PG_URL }, ['--expose-gc'])
  const client = createClient(server.port, CONNECTIONS)
  const load = new MixedLoad(client, new CodeBox(server))
  try {
    load.start(CONNECTIONS)
    await sleep(WARMUP * 1000)
    const warmup = load.tally
    const start = await server.ask<ServerStats>('stats')
    load.tally = new Tally()
    const startedAt = performance.now()
    const slices = await sampleSlices(server, load, startedAt)
    await load.stop()
    const seconds = (performance.now() - startedAt) / 1000
    const end = await server.ask<ServerStats>('stats')
    return { name: dialect === 'sqlite' ? 'SQLite file (WAL)' : 'PostgreSQL', seconds, warmup, measured: load.tally, slices, start, end }
  } finally {
    await load.stop()
    client.close()
    await server.stop()
  }
}

console.log(`fastify-securelogin soak: ${SECONDS} s per database after a ${WARMUP} s warm-up, ${CONNECTIONS} connections; Node ${process.version}, ${cpus().length} CPUs; ${loadNote()}\n`)
const verdicts: string[] = []
const runs: Array<'sqlite' | 'postgres'> = ['sqlite']
if (await postgresAnswers(PG_URL)) {
  runs.push('postgres')
} else if (IN_CI) {
  verdicts.push(`PostgreSQL does not answer at ${PG_URL}, and CI is set`)
} else {
  console.log(`PostgreSQL does not answer at ${PG_URL}: its soak is skipped (set SOAK_PG_URL).\n`)
}
for (const dialect of runs) {
  const run = await soak(dialect)
  const report = formatReport(run, { checkRss: SECONDS >= RSS_CHECKED_FROM_SECONDS, rssGrowthLimit: RSS_GROWTH_LIMIT })
  console.log(report.text + '\n')
  verdicts.push(...report.failures.map((failure) => `${run.name}: ${failure}`))
}
if (verdicts.length > 0) {
  console.log(`FAILED:\n${verdicts.map((v) => `  - ${v}`).join('\n')}`)
  process.exitCode = 1
} else {
  console.log('OK: no 5xx, no request errors or timeouts.')
}
