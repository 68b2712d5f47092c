import { randomUUID } from 'node:crypto'
import t from 'tap'
import { purgeExpired } from '../lib/index.js'
import { buildApp, createTestDatabase, dialects, post, postgresUrl, signIn, testPhone, type Dialect, type TestDatabase } from './helper.js'

// Every table grows with the users: a statement that reads a whole one works in every test and
// stalls at a million accounts. So every statement the plugin runs, captured through Drizzle's
// logger while an app goes through every route, the app's own levers and the purge, is explained
// on both databases, and none may scan one of our tables.

interface Statement { sql: string, params: unknown[] }

/** The plan's lines that read a whole table of ours. */
async function fullScans (dialect: Dialect, database: TestDatabase, statement: Statement): Promise<string[]> {
  if (dialect === 'sqlite') {
    const plan = await database.query(`EXPLAIN QUERY PLAN ${statement.sql}`, statement.params)
    // A partial index holds only the rows its query is about (the purge's unverified and deleted accounts).
    return plan.map((row) => String(row.detail)).filter((detail) => /^SCAN securelogin_/.test(detail) && !PARTIAL_INDEX.test(detail))
  }
  const [row] = await database.query(`EXPLAIN (FORMAT JSON) ${statement.sql}`, statement.params)
  const scans: string[] = []
  // A sequential scan reads the whole table; so does an index scan without an index condition
  // (the index only gives the order, and every entry is read).
  const walk = (node: PlanNode) => {
    const relation = node['Relation Name']
    if (relation?.startsWith('securelogin_') === true) {
      const byIndex = /Index/.test(node['Node Type']) && node['Index Cond'] !== undefined
      const partial = PARTIAL_INDEX.test(node['Index Name'] ?? '')
      if (node['Node Type'] === 'Seq Scan' || (/^Index/.test(node['Node Type']) && !byIndex && !partial)) scans.push(`${node['Node Type']} on ${relation}${node['Index Name'] === undefined ? '' : ` using ${node['Index Name']}`}`)
    }
    for (const child of node.Plans ?? []) walk(child)
  }
  const document = row?.['QUERY PLAN'] as Array<{ Plan: PlanNode }>
  for (const { Plan } of document) walk(Plan)
  return scans
}

const PARTIAL_INDEX = /securelogin_users_(unverified|deleted)_idx/

/**
 * PostgreSQL plans a table of a few rows with a sequential scan whatever its indexes; with a few
 * thousand rows in each table and fresh statistics it plans as it would at scale.
 */
async function seedAndAnalyze (database: TestDatabase): Promise<void> {
  const rows = 5000
  await database.query(`INSERT INTO securelogin_users (id, phone, phone_verified_at, created_at) SELECT gen_random_uuid(), '+1999' || lpad(i::text, 7, '0'), now(), now() FROM generate_series(1, ${rows}) AS i`)
  await database.query(`INSERT INTO securelogin_sessions (id, user_id, created_at, refreshed_at, expires_at) SELECT gen_random_uuid(), id, now(), now(), now() + interval '30 days' FROM securelogin_users`)
  await database.query(`INSERT INTO securelogin_otp_challenges (phone, challenge_id, code_hash, sent_at, expires_at) SELECT phone, gen_random_uuid(), 'x', now(), now() + interval '2 days' FROM securelogin_users WHERE phone LIKE '+1999%'`)
  await database.query(`INSERT INTO securelogin_rate_limits (key, window_start, count) SELECT 'seed:' || i, now(), 1 FROM generate_series(1, ${rows}) AS i`)
  await database.query(`INSERT INTO securelogin_phone_history (phone_key, ended_accounts) SELECT 'seed:' || i, 1 FROM generate_series(1, ${rows}) AS i`)
  await database.query(`INSERT INTO securelogin_revocations (session_id, revoked_at) SELECT gen_random_uuid(), now() - interval '2 days' FROM generate_series(1, ${rows})`)
  await database.query('ANALYZE')
}

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, 'Index Cond'?: string, Plans?: PlanNode[] }

function call (test: Awaited<ReturnType<typeof buildApp>>, method: 'GET' | 'PATCH' | 'DELETE' | 'POST', url: string, token: string, payload?: object) {
  return test.app.inject({ method, url: `/api/auth${url}`, payload, headers: { authorization: `Bearer ${token}` } })
}

for (const dialect of dialects) {
  t.test(`${dialect}: no statement of the plugin reads a whole table`, async (t) => {
    const seen = new Map<string, Statement>()
    const logger = { logQuery: (sql: string, params: unknown[]) => { if (!seen.has(sql)) seen.set(sql, { sql, params }) } }
    const database = await createTestDatabase(t, dialect, undefined, { logger })
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 }, unverifiedAccountTtl: '1h', password: { enabled: true } }, database)

    // Every route and lever, once each.
    const phone = testPhone()
    const first = await signIn(test, phone)
    const second = await signIn(test, phone)
    await post(test.app, '/refresh', undefined, second.refresh_token)
    await call(test, 'GET', '/me', first.access_token)
    await call(test, 'PATCH', '/me', first.access_token, { username: 'Ada' })
    const sessions = (await call(test, 'GET', '/sessions', first.access_token)).json().sessions as Array<{ sid: string, current: boolean }>
    await call(test, 'DELETE', `/sessions/${sessions.find((session) => !session.current)?.sid ?? randomUUID()}`, first.access_token)
    await post(test.app, '/logout_all_other_sessions', {}, first.access_token)
    const newPhone = testPhone()
    await call(test, 'POST', '/phone', first.access_token, { phone: newPhone })
    const moved = (await call(test, 'POST', '/phone/verify', first.access_token, { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) })).json()
    await post(test.app, '/logout', {}, moved.access_token)
    const other = await signIn(test, testPhone())
    await test.app.secureLogin.findUser({ phone: newPhone })
    await test.app.secureLogin.findUser({ userid: other.userid })
    await test.app.secureLogin.revokeSessions(other.userid)
    await test.app.secureLogin.setStatus(other.userid, 'disabled')
    await test.app.secureLogin.unlockPhone(newPhone)
    await call(test, 'DELETE', '/me', (await signIn(test, testPhone())).access_token)
    await post(test.app, '/register', { phone: testPhone() })
    // Password accounts: register, sign in (a wrong password too), change, add one to a phone account.
    const email = `plans.${process.pid}@example.com`
    const byPassword = (await post(test.app, '/register', { auth_type: 'PASSWORD', email, password: 'correct horse battery staple' })).json()
    await post(test.app, '/login', { auth_type: 'PASSWORD', email, password: 'wrong password' })
    t.equal((await post(test.app, '/login', { auth_type: 'PASSWORD', email, password: 'correct horse battery staple' })).statusCode, 200)
    t.equal((await call(test, 'POST', '/password', byPassword.access_token, { oldpassword: 'correct horse battery staple', newpassword: 'another long passphrase' })).statusCode, 200)
    t.equal((await call(test, 'POST', '/password', (await signIn(test, testPhone())).access_token, { newpassword: 'a phone account passphrase', email: `plans.phone.${process.pid}@example.com` })).statusCode, 200)
    await test.app.secureLogin.unlockEmail(email)
    await purgeExpired(database.db, { now: new Date(Date.now() + 86_400_000) })

    const statements = [...seen.values()]
    t.ok(statements.length >= 30, `${statements.length} distinct statements seen`)
    if (dialect === 'postgres') await seedAndAnalyze(database)
    const scanning: string[] = []
    for (const statement of statements) {
      if (/^\s*(begin|commit|rollback|savepoint|release|pragma|select pg_advisory|set )/i.test(statement.sql)) continue
      if (/__securelogin_migrations|__drizzle_migrations|__new_|CREATE |ALTER |DROP |information_schema/i.test(statement.sql)) continue
      // The revocation log holds only the revocations since the last purge and the access tokens'
      // lifetime, so most of its rows are due when the purge comes (all of them here), and
      // PostgreSQL rightly reads it in order until it has a batch rather than through the index.
      if (dialect === 'postgres' && /^delete from "securelogin_revocations"/.test(statement.sql)) continue
      const scans = await fullScans(dialect, database, statement)
      if (scans.length > 0) scanning.push(`${scans.join('; ')}\n    ${statement.sql}`)
    }
    t.same(scanning, [], 'every statement finds its rows through an index')
  })
}

t.test('sanity: a statement without an index to use is reported', async (t) => {
  for (const dialect of dialects) {
    if (dialect === 'postgres' && postgresUrl === undefined) continue
    const database = await createTestDatabase(t, dialect)
    await buildApp(t, dialect, {}, database)
    if (dialect === 'postgres') await seedAndAnalyze(database)
    const byUsername = { sql: dialect === 'sqlite' ? 'select id from securelogin_users where username = ?' : 'select id from securelogin_users where username = $1', params: ['Ada'] }
    t.ok((await fullScans(dialect, database, byUsername)).length > 0, `${dialect}: a search by the unindexed username is a full scan`)
    const byPhone = { sql: dialect === 'sqlite' ? 'select id from securelogin_users where phone = ?' : 'select id from securelogin_users where phone = $1', params: ['+14155550123'] }
    t.same(await fullScans(dialect, database, byPhone), [], `${dialect}: a search by phone uses its index`)
  }
})

// SQLite ran a statement whose LIMIT is a bound parameter (what Drizzle makes of `.limit(1)`) 3 to
// 4 times slower than the same statement with LIMIT 1 in its text (docs/performance.md), so the
// statements of the sign-in steps write theirs into the text, or have none where a unique key
// allows one row at most.
t.test('sqlite: no statement of the sign-in steps binds its LIMIT', async (t) => {
  const statements = new Set<string>()
  const logger = { logQuery: (sql: string) => { statements.add(sql) } }
  const database = await createTestDatabase(t, 'sqlite', undefined, { logger })
  // No housekeeping purge: its batches (not prepared once) would be seen whenever its first run fell within the test.
  const test = await buildApp(t, 'sqlite', { otp: { resendInterval: 0.001 }, purgeInterval: false }, database)
  const phone = testPhone()
  t.equal((await post(test.app, '/register', { phone })).statusCode, 201)
  t.equal((await post(test.app, '/login', { phone })).statusCode, 200)
  const code = test.outbox.lastCodeFor(phone)
  const wrongCode = code.replace(/^./, (digit) => String((Number(digit) + 1) % 10))
  t.equal((await post(test.app, '/verify_sms', { phone, token: wrongCode })).statusCode, 401, 'a wrong code takes a wrong-code slot')
  const first = await signIn(test, phone)
  t.equal((await post(test.app, '/refresh', undefined, first.refresh_token)).statusCode, 200)
  const limits = [...statements].filter((statement) => /\blimit\s+\?/i.test(statement))
  t.ok(statements.size >= 10, `${statements.size} distinct statements seen`)
  t.same(limits, [], 'no LIMIT is a bound parameter')
})
