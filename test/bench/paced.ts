// Bare Fastify at a sign-in step's pace. GET / (test/bench/http.ts) runs bare Fastify as fast as it
// goes; a sign-in step answers a few thousand times a second, and at that pace the same HTTP work
// costs the server more (docs/performance.md, "A step's figure holds HTTP at its own pace").
// POST /work?us=n on the bare server spends n µs of CPU in its handler before it answers, as a
// sign-in step spends its own: its CPU per request less n is bare Fastify's HTTP at that pace.
// Run alone: npx tsx test/bench/paced.ts
import { formatTable, interleavedRounds, isMain, load, medianOfRuns, ROUND_SECONDS, ROUNDS, startServer, type Row } from './common.js'
import { SIGNIN_CONNECTIONS } from './signin.js'

/** CPU µs spent in the handler: none, then paces that bracket the sign-in steps' own work (about 120–350 µs). */
export const PACES = [0, 100, 200, 300, 400]

/** One pace's row, with its handler's µs and what the server spent besides them. */
export interface PacedRow extends Row { busy: number, http: number | undefined }

const BODY = JSON.stringify({ phone: '+14155550123' })
const HEADERS = { 'content-type': 'application/json' }

/**
 * Each pace in interleaved rounds (the starting pace rotates), as GET / is measured: a minute of
 * other load on the machine moves one round, not one pace; each pace reports its median round.
 */
export async function pacedBench (): Promise<PacedRow[]> {
  const server = await startServer('bare', { BENCH_LABEL: 'paced' })
  try {
    for (const busy of PACES) {
      const probe = await fetch(`http://127.0.0.1:${server.port}/work?us=${busy}`, { method: 'POST', headers: HEADERS, body: BODY })
      if (probe.status !== 200) throw new Error(`POST /work?us=${busy} answered ${probe.status}: ${await probe.text()}`)
    }
    const runs = await interleavedRounds(PACES.length, async (i, round) => load({
      port: server.port, server, method: 'POST', path: `/work?us=${PACES[i]!}`, body: BODY, headers: HEADERS, connections: SIGNIN_CONNECTIONS, duration: ROUND_SECONDS, noWarmup: round > 0,
      profile: round === ROUNDS - 1 ? `${server.name}-${PACES[i]!}` : undefined,
    }))
    return PACES.map((busy, i): PacedRow => {
      const figures = medianOfRuns(runs[i]!)
      const http = figures.cpu === undefined ? undefined : figures.cpu - busy
      return {
        group: 'POST /work, bare Fastify',
        name: `${busy} µs of work a request`,
        ...figures,
        // Not comparable with GET /: the column is left empty.
        ratio: NaN,
        note: `${busy} µs of CPU in the handler${http === undefined ? '' : `; HTTP ${http.toFixed(0)} µs`}`,
        busy,
        http,
      }
    })
  } finally {
    await server.stop()
  }
}

/**
 * A step's own work: its CPU per request less bare Fastify's HTTP at the step's pace, read off the
 * paces by straight lines (beyond the last, the last one's). The pace is the step's own work, so
 * the answer is found by a few rounds of substitution.
 */
export function ownWork (cpu: number, paced: readonly PacedRow[]): number | undefined {
  const points = paced.filter((row): row is PacedRow & { http: number } => row.http !== undefined).sort((a, b) => a.busy - b.busy)
  if (points.length === 0) return undefined
  const httpAt = (busy: number): number => {
    const upper = points.findIndex((point) => point.busy >= busy)
    if (upper === -1) return points.at(-1)!.http
    if (upper === 0) return points[0]!.http
    const [a, b] = [points[upper - 1]!, points[upper]!]
    return a.http + (b.http - a.http) * (busy - a.busy) / (b.busy - a.busy)
  }
  let own = cpu - points[0]!.http
  for (let round = 0; round < 5; round++) own = cpu - httpAt(own)
  return own
}

if (isMain(import.meta.url)) console.log(formatTable(await pacedBench(), undefined))
