import { randomUUID } from 'node:crypto'
import t from 'tap'
import * as postgresTables from '../lib/db/postgres.js'
import * as sqliteTables from '../lib/db/sqlite.js'
import { purgeExpired } from '../lib/index.js'
import { buildApp, dialects } from './helper.js'

// Housekeeping: expired codes, ended sessions and stale counters go, in batches of 1,000 rows a
// statement; live rows stay.

const HOUR = 3_600_000

for (const dialect of dialects) {
  t.test(`${dialect}: purgeExpired deletes what has expired, in batches, and keeps what is live`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users, otpChallenges, sessions, rateLimits } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const now = new Date()
    const past = new Date(now.getTime() - 2 * HOUR)
    const future = new Date(now.getTime() + HOUR)
    const inChunks = async <T>(rows: T[], insert: (chunk: T[]) => Promise<unknown>) => {
      for (let i = 0; i < rows.length; i += 250) await insert(rows.slice(i, i + 250))
    }
    await db.insert(users).values({ id: '00000000-0000-4000-8000-000000000001', phone: '+14155550100', createdAt: now })
    const challenge = (i: number, expiresAt: Date) => ({ phone: `+1415${String(i).padStart(7, '0')}`, challengeId: randomUUID(), codeHash: 'h', attempts: 0, sentAt: past, expiresAt, consumedAt: null })
    await inChunks([...Array.from({ length: 2_345 }, (_, i) => challenge(i, past)), ...Array.from({ length: 7 }, (_, i) => challenge(10_000 + i, future))], (chunk) => db.insert(otpChallenges).values(chunk))
    const session = (_i: number, expiresAt: Date) => ({ id: randomUUID(), userId: '00000000-0000-4000-8000-000000000001', generation: 0, createdAt: past, refreshedAt: past, expiresAt, revokedAt: null, revokedReason: null })
    await inChunks([...Array.from({ length: 1_001 }, (_, i) => session(i, past)), ...Array.from({ length: 3 }, (_, i) => session(10_000 + i, future))], (chunk) => db.insert(sessions).values(chunk))
    const counter = (i: number, windowStart: Date) => ({ key: `send:ip:203.0.113.${i}`, windowStart, count: 1 })
    await inChunks([...Array.from({ length: 1_000 }, (_, i) => counter(i, new Date(now.getTime() - 8 * 24 * HOUR))), ...Array.from({ length: 5 }, (_, i) => counter(10_000 + i, now))], (chunk) => db.insert(rateLimits).values(chunk))

    t.same(await purgeExpired(test.database.db, now), { challenges: 2_345, sessions: 1_001, counters: 1_000 }, 'every expired row went, over several batches')
    const count = async (table: string) => Number((await test.database.query(`SELECT count(*) AS n FROM ${table}`))[0]!.n)
    t.equal(await count('securelogin_otp_challenges'), 7, 'live codes stay')
    t.equal(await count('securelogin_sessions'), 3, 'live sessions stay')
    t.equal(await count('securelogin_rate_limits'), 5, 'current counters stay')
    t.same(await purgeExpired(test.database.db, now), { challenges: 0, sessions: 0, counters: 0 }, 'a second run finds nothing')
  })
}

t.test('purgeInterval is checked', async (t) => {
  await t.rejects(buildApp(t, 'sqlite', { purgeInterval: 10 }), /purgeInterval must be false or a duration from 1 minute to 1 day/)
  await t.rejects(buildApp(t, 'sqlite', { purgeInterval: true as never }), /purgeInterval/)
})
