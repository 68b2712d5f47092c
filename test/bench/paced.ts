// What bare Fastify's HTTP work costs at a sign-in step's pace. GET / (test/bench/http.ts) runs
// bare Fastify as fast as it goes: every connection has a request waiting, the load generator never
// sleeps, and reads and writes come in batches. A sign-in step serves a few thousand requests a
// second, not tens of thousands, and the same HTTP work then costs the server more: fewer requests
// per turn of the event loop, and a write that must wake the load generator's idle CPU (on a VM,
// an interrupt to another virtual CPU). POST /work?us=n on the bare server is busy for n µs, as
// a sign-in step is with its own work: its CPU per request less n is bare Fastify's cost at that
// pace, the part of a step's figure that is not the plugin's.
// Run alone: npx tsx test/bench/paced.ts
import { formatTable, isMain, load, startServer, type Row } from './common.js'
import { SIGNIN_CONNECTIONS } from './signin.js'

/** Busy µs per request: none, then about refresh's and about login's CPU per request. */
export const PACES = [0, 150, 300]

export async function pacedBench (): Promise<Row[]> {
  const server = await startServer('bare', { BENCH_LABEL: 'paced' })
  try {
    const rows: Row[] = []
    for (const us of PACES) {
      const path = `/work?us=${us}`
      const body = JSON.stringify({ phone: '+14155550123' })
      const probe = await fetch(`http://127.0.0.1:${server.port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      if (probe.status !== 200) throw new Error(`POST ${path} answered ${probe.status}: ${await probe.text()}`)
      const result = await load({ port: server.port, server, method: 'POST', path, body, headers: { 'content-type': 'application/json' }, connections: SIGNIN_CONNECTIONS, profile: `paced-${us}` })
      const overhead = result.cpu === undefined ? '' : `; HTTP ${(result.cpu - us).toFixed(0)} µs`
      rows.push({ group: 'POST /work, bare Fastify', name: `${us} µs of work a request`, rps: result.rps, p50: result.p50, p99: result.p99, cpu: result.cpu, bad: result.bad, note: `busy ${us} µs in the handler${overhead}` })
    }
    return rows
  } finally {
    await server.stop()
  }
}

if (isMain(import.meta.url)) console.log(formatTable(await pacedBench(), undefined))
