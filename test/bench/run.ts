// `npm run bench`: every benchmark in one run (GET / in http.ts, the sign-in steps in signin.ts, bare
// Fastify at a sign-in step's pace in paced.ts, micro.ts), ratios against the bare Fastify baseline of this run.
//   BENCH_PG=0                skip PostgreSQL (skipped anyway when BENCH_PG_URL does not answer)
//   BENCH_PG_URL              default postgres://root@127.0.0.1:5432/test (a scratch database is created and dropped)
//   BENCH_DURATION / BENCH_WARMUP                 seconds per sign-in step / warm-up (4 / 1)
//   BENCH_ROUNDS / BENCH_ROUND_SECONDS            GET / and POST /work rounds and seconds per round (3 / 2)
//   BENCH_CONNECTIONS / BENCH_SIGNIN_CONNECTIONS  (50 / 20)
//   BENCH_SQLITE_SYNC=NORMAL  run SQLite under this `synchronous` only (by default: FULL, NORMAL, then
//                             NORMAL with checkpoints in a worker thread); BENCH_SQLITE_CHECKPOINTS=worker with it
//   BENCH_PG_NAMED=1          run PostgreSQL with named statements only (by default: unnamed, then named)
//   BENCH_PIPELINING          requests in flight per connection (1)
//   --smoke                   about a second per case, one round: for CI, so that the benchmark
//                             cannot rot. It fails on any non-2xx answer or a case that served
//                             nothing, and says nothing about speed.
//   --scale                   only the sign-in steps, on an empty database and then on one holding
//                             BENCH_SCALE_USERS accounts and sessions (1,000,000), with the cost of
//                             the housekeeping at that size. With --smoke: 10,000.
import { cpus, loadavg } from 'node:os'

const smoke = process.argv.includes('--smoke')
const scaleMode = process.argv.includes('--scale')
if (smoke) {
  // Read by the modules below when they load: set before importing them.
  Object.assign(process.env, { BENCH_DURATION: '1', BENCH_WARMUP: '0.2', BENCH_ROUNDS: '1', BENCH_ROUND_SECONDS: '1', BENCH_MICRO_ROUNDS: '1' }, { ...process.env })
}
const { formatTable, loadNote, peakRssNote } = await import('./common.js')
const { httpBench, httpSummary } = await import('./http.js')
const { formatMicro, microBench } = await import('./micro.js')
const { postgresReachable, signinBench, signinSummary } = await import('./signin.js')
const { ownWork, pacedBench } = await import('./paced.js')
type Row = import('./common.js').Row

const started = Date.now()
const loadBefore = loadavg()[0]!
console.log(`fastify-securelogin benchmarks: Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); ${loadNote()}\n`)

const phases: string[] = []
let mark = Date.now()
const phase = (name: string) => { phases.push(`${name} ${((Date.now() - mark) / 1000).toFixed(0)} s`); mark = Date.now() }

if (scaleMode) {
  const { runScale } = await import('./scale.js')
  await runScale(smoke ? 10_000 : Number(process.env.BENCH_SCALE_USERS ?? 1_000_000))
  console.log(`\nTotal ${((Date.now() - started) / 1000).toFixed(0)} s; load average ${loadBefore.toFixed(2)} at start, now ${loadNote()}.`)
  process.exit(process.exitCode ?? 0)
}

const http = await httpBench()
phase('GET /')
const rows: Row[] = [...http.rows]
// SQLite under both settings an app may run with (docs/databases.md), and as we recommend it
// (NORMAL, checkpoints in a worker thread); the smoke run skips the plain NORMAL.
type SqliteSetup = { synchronous?: 'FULL' | 'NORMAL', checkpoints?: 'worker' }
const setups: SqliteSetup[] = process.env.BENCH_SQLITE_SYNC !== undefined
  ? [{}]
  : [{ synchronous: 'FULL' }, ...(smoke ? [] : [{ synchronous: 'NORMAL' as const }]), { synchronous: 'NORMAL', checkpoints: 'worker' }]
for (const setup of setups) rows.push(...await signinBench('sqlite', setup))
phase('sign-in SQLite')
if (await postgresReachable()) {
  // PostgreSQL as it comes (unnamed statements, which any pooler takes) and with postgres.namedStatements.
  for (const namedStatements of process.env.BENCH_PG_NAMED !== undefined ? [undefined] : [false, true]) rows.push(...await signinBench('postgres', { namedStatements }))
  phase('sign-in PostgreSQL')
} else {
  console.log('PostgreSQL not reachable (or BENCH_PG=0): its sign-in steps are skipped.\n')
}
const paced = await pacedBench()
rows.push(...paced)
phase('paced')
console.log(formatTable(rows, http.baseline))
console.log(`\n${httpSummary()} ${signinSummary()} Ratios: req/s over the bare baseline's median req/s (${Math.round(http.baseline)}).`)
// A known cost first: HMAC-SHA256 on every request must come out clearly below bare Fastify.
// When it does not, the load generator paced the run, not the server, and no figure counts.
const uncached = http.rows.find((r) => r.name.startsWith('bare fast-jwt, no cache'))
if (uncached !== undefined && uncached.rps / http.baseline > 0.8) {
  console.log(`\nWARNING: the uncached HS256 case ran at ${(uncached.rps / http.baseline).toFixed(2)}x bare: this run cannot resolve a known cost (the load generator, not the server, set the pace). Its figures do not count; raise BENCH_CONNECTIONS or BENCH_PIPELINING.`)
}
const auth = http.rows.find((r) => r.name.startsWith('app.authenticate'))
const jwt = http.rows.find((r) => r.name.startsWith('bare fast-jwt, cache'))
if (auth?.cpu !== undefined && jwt?.cpu !== undefined) {
  console.log(`Server CPU per request: authenticate ${auth.cpu.toFixed(0)} µs vs bare cached fast-jwt ${jwt.cpu.toFixed(0)} µs vs no auth ${http.baselineCpu.toFixed(0)} µs.`)
}

const pacedHttp = paced.filter((row) => row.http !== undefined).map((row) => `${row.http!.toFixed(0)} µs at ${row.busy}`)
if (pacedHttp.length > 0) {
  console.log(`Bare Fastify's HTTP (POST /work: CPU per request less the handler's µs of CPU): ${pacedHttp.join(', ')}.`)
  // Each sign-in step less that HTTP at its own pace: the plugin's own work.
  const own = new Map<string, string[]>()
  for (const row of rows.filter((each) => each.group.startsWith('sign-in') && each.cpu !== undefined)) {
    const group = row.group.replace(/^sign-in, /, '')
    own.set(group, [...(own.get(group) ?? []), `${row.name.replace('POST /', '')} ${ownWork(row.cpu!, paced)?.toFixed(0) ?? '?'}`])
  }
  console.log(`Sign-in steps less that HTTP at their own pace, µs: ${[...own].map(([group, steps]) => `${group}: ${steps.join(', ')}`).join('; ')}.`)
}
console.log(`Peak server RSS (each server process, its whole life): ${peakRssNote()}.`)

console.log('\n' + formatMicro(await microBench()))
phase('micro')
console.log(`\nTotal ${((Date.now() - started) / 1000).toFixed(0)} s (${phases.join(', ')}); load average ${loadBefore.toFixed(2)} at start, now ${loadNote()}. Other processes on this machine skew absolute numbers: compare ratios.`)
if (smoke) {
  const broken = rows.filter((row) => row.bad > 0 || !(row.rps > 0))
  if (broken.length > 0) {
    console.error(`bench --smoke: ${broken.map((row) => `${row.group} ${row.name}: ${row.rps} req/s, ${row.bad} bad`).join('; ')}`)
    process.exitCode = 1
  }
}
