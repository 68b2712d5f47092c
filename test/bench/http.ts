// GET / over HTTP: bare Fastify (the baseline), a bare fast-jwt check with and without the
// verifier cache, and the plugin's `authenticate`. The four servers run side by side and are
// measured in interleaved rounds (the starting case rotates), so drift in the machine's other load
// hits every case alike; each case reports the median of its rounds, and its ratio is the median of
// its per-round ratios to the baseline of the same round. Run alone: npx tsx test/bench/http.ts
import { formatTable, interleavedRounds, isMain, load, loadNote, median, medianOfRuns, ROUND_SECONDS, ROUNDS, startServer, WARMUP, type Row, type ServerHandle } from './common.js'

export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)

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
    const runs = await interleavedRounds(CASES.length, async (i, round) => load({
      port: servers[i]!.port, server: servers[i], path: '/', connections: CONNECTIONS, headers: headers[i], duration: ROUND_SECONDS, noWarmup: round > 0 || WARMUP === 0,
      // With BENCH_PROFILE: the last round of each case.
      profile: round === ROUNDS - 1 ? servers[i]!.name : undefined,
    }))
    const rows = CASES.map((c, i): Row => ({
      group: 'GET /',
      name: c.name,
      ...medianOfRuns(runs[i]!),
      ratio: median(runs[i]!.map((r, round) => r.rps / runs[0]![round]!.rps)),
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
