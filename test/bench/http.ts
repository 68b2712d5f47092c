// GET / over HTTP: bare Fastify (the baseline), a bare fast-jwt check with and without the
// verifier cache, and the plugin's `authenticate`. The four servers run side by side and are
// measured in interleaved rounds (the starting case rotates), so drift in the machine's other load
// hits every case alike; each case reports the median of its rounds, and its ratio is the median of
// its per-round ratios to the baseline of the same round. Run alone: npx tsx test/bench/http.ts
import { formatTable, isMain, load, loadNote, median, startServer, WARMUP, type Row, type ServerHandle } from './common.js'

export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
export const ROUND_SECONDS = Number(process.env.BENCH_ROUND_SECONDS ?? 2)

const CASES = [
  { scenario: 'bare', name: 'bare Fastify (baseline)', note: 'no preHandler' },
  { scenario: 'jwt-cache', name: 'bare fast-jwt, cache 10000', note: 'verifier cache as the plugin gives @fastify/jwt' },
  { scenario: 'jwt-nocache', name: 'bare fast-jwt, no cache', note: 'HMAC-SHA256 on every request' },
  { scenario: 'authenticate', name: 'app.authenticate (SQLite)', note: 'regex + cached verify + claims + revocation Set' },
]

export interface HttpResults {
  rows: Row[]
  /** Median baseline req/s, for the ratios of other groups. */
  baseline: number
  /** Median baseline server CPU µs per request. */
  baselineCpu: number
}

export async function httpBench (): Promise<HttpResults> {
  const servers: ServerHandle[] = []
  try {
    const started = await Promise.allSettled(CASES.map((c) => startServer(c.scenario)))
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value)
    for (const s of started) if (s.status === 'rejected') throw s.reason
    const headers = servers.map((server) => {
      const token = server.info.token as string | undefined
      return token === undefined ? undefined : { authorization: `Bearer ${token}` }
    })
    // One check that each route answers 200, so a broken setup cannot pass as fast.
    for (const [i, server] of servers.entries()) {
      const probe = await fetch(`http://127.0.0.1:${server.port}/`, { headers: headers[i] })
      if (probe.status !== 200) throw new Error(`${CASES[i]!.scenario}: GET / answered ${probe.status}: ${await probe.text()}`)
    }
    const runs = CASES.map(() => [] as Array<Awaited<ReturnType<typeof load>>>)
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < CASES.length; k++) {
        const i = (k + round) % CASES.length
        runs[i]!.push(await load({
          port: servers[i]!.port, server: servers[i], path: '/', connections: CONNECTIONS, headers: headers[i], duration: ROUND_SECONDS, noWarmup: round > 0 || WARMUP === 0,
          // With BENCH_PROFILE: the last round of each case.
          profile: round === ROUNDS - 1 ? servers[i]!.name : undefined,
        }))
      }
    }
    const rows = CASES.map((c, i): Row => ({
      group: 'GET /',
      name: c.name,
      rps: median(runs[i]!.map((r) => r.rps)),
      ratio: median(runs[i]!.map((r, round) => r.rps / runs[0]![round]!.rps)),
      p50: median(runs[i]!.map((r) => r.p50)),
      p99: median(runs[i]!.map((r) => r.p99)),
      cpu: median(runs[i]!.map((r) => r.cpu ?? NaN)),
      bad: runs[i]!.reduce((sum, r) => sum + r.bad, 0),
      note: c.note,
    }))
    return { rows, baseline: rows[0]!.rps, baselineCpu: rows[0]!.cpu! }
  } finally {
    for (const server of servers) await server.stop()
  }
}

export function httpSummary (): string {
  return `GET /: ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${ROUND_SECONDS} s per case (after a ${WARMUP} s warm-up); medians.`
}

if (isMain(import.meta.url)) {
  const { rows, baseline } = await httpBench()
  console.log(formatTable(rows, baseline))
  console.log(`\n${httpSummary()} ${loadNote()}`)
}
