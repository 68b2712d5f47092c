// No HTTP: the plugin's `authenticate` hook function against fast-jwt verification alone, a fixed
// number of calls each, timed with process.hrtime. Cases run in interleaved rounds; each reports the
// median round. Run alone: npx tsx test/bench/micro.ts
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { createVerifier } from 'fast-jwt'
import secureLogin, { type SmsMessage } from '../../lib/index.js'
import { isMain, loadNote, median } from './common.js'

const ROUNDS = Number(process.env.BENCH_MICRO_ROUNDS ?? 3)
const SECRET = randomBytes(48).toString('base64')

export interface MicroRow {
  name: string
  iterations: number
  opsPerSec: number
  nsPerOp: number
}

async function time (iterations: number, fn: () => unknown, isAsync: boolean): Promise<number> {
  const start = process.hrtime.bigint()
  if (isAsync) for (let i = 0; i < iterations; i++) await fn()
  else for (let i = 0; i < iterations; i++) fn()
  return Number(process.hrtime.bigint() - start)
}

export async function microBench (): Promise<MicroRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'securelogin-micro-'))
  const sqlite = new Database(join(dir, 'micro.db'))
  sqlite.pragma('journal_mode = WAL')
  const codes: string[] = []
  const app = Fastify({ logger: false })
  try {
    await app.register(secureLogin, {
      db: drizzle(sqlite),
      sms: { async send (message: SmsMessage) { codes.push(message.code) } },
      jwt: { secret: SECRET },
    })
    await app.ready()
    const phone = '+14155550123'
    const post = (url: string, payload: object) => app.inject({ method: 'POST', url: `/api/auth${url}`, payload })
    await post('/register', { phone })
    await post('/login', { phone })
    const verified = await post('/verify_sms', { phone, token: codes.at(-1) ?? '' })
    if (verified.statusCode !== 200) throw new Error(`sign-in failed: ${verified.body}`)
    const token = verified.json().access_token as string
    const header = `Bearer ${token}`

    const request = { headers: { authorization: header }, user: null } as unknown as FastifyRequest
    const reply = {} as FastifyReply
    // The access-token verifier of lib/jwt.ts, option for option (no issuer or audience configured here).
    const ours = createVerifier({ key: Buffer.from(SECRET), algorithms: ['HS256'], checkTyp: 'at+jwt', cache: 10_000 })
    const bareCached = createVerifier({ key: SECRET, algorithms: ['HS256'], cache: 10_000 })
    const bareUncached = createVerifier({ key: SECRET, algorithms: ['HS256'], cache: false })
    const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i

    const cases: Array<{ name: string, iterations: number, fn: () => unknown, isAsync: boolean }> = [
      { name: 'app.authenticate(request, reply) (awaited)', iterations: 100_000, fn: () => app.authenticate(request, reply), isAsync: true },
      { name: 'fast-jwt verify, cache 10000, lib/tokens.ts options', iterations: 100_000, fn: () => ours(token), isAsync: false },
      { name: 'fast-jwt verify, cache 10000, bare options', iterations: 100_000, fn: () => bareCached(token), isAsync: false },
      { name: 'fast-jwt verify, cache 10000, in an awaited async fn', iterations: 100_000, fn: async () => bareCached(token.slice(0)), isAsync: true },
      { name: 'fast-jwt verify, no cache', iterations: 25_000, fn: () => bareUncached(token), isAsync: false },
      { name: 'Bearer regex alone', iterations: 500_000, fn: () => BEARER.exec(header), isAsync: false },
    ]
    // Sanity: the hook accepts the token and sets request.user.
    await app.authenticate(request, reply)
    if ((request as unknown as { user: { sid?: string } }).user?.sid === undefined) throw new Error('authenticate did not set request.user')

    const samples = cases.map(() => [] as number[])
    for (const c of cases) await time(Math.min(c.iterations, 20_000), c.fn, c.isAsync) // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, c] of cases.entries()) samples[i]!.push(await time(c.iterations, c.fn, c.isAsync))
    }
    return cases.map((c, i) => {
      const ns = median(samples[i]!) / c.iterations
      return { name: c.name, iterations: c.iterations, opsPerSec: 1e9 / ns, nsPerOp: ns }
    })
  } finally {
    await app.close()
    sqlite.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export function formatMicro (rows: MicroRow[]): string {
  const ref = rows.find((r) => r.name.startsWith('fast-jwt verify, cache 10000, bare'))
  const head = ['function (no HTTP)', 'calls/round', 'ops/s', 'ns/op', 'vs bare cached verify']
  const lines = rows.map((r) => [
    r.name,
    r.iterations.toLocaleString('en-US'),
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    Math.round(r.nsPerOp).toLocaleString('en-US'),
    ref === undefined ? '-' : `${(r.nsPerOp / ref.nsPerOp).toFixed(2)}x time`,
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return [fmt(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`, ...lines.map(fmt)].join('\n')
}

if (isMain(import.meta.url)) {
  console.log(formatMicro(await microBench()))
  console.log(`\n${ROUNDS} rounds, median; ${loadNote()}`)
}
