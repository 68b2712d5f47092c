// One bench scenario's server, run in a child process by test/bench/common.ts (`fork`, IPC):
//   bare             GET / → small JSON; POST /work?us=n → the same after n µs of CPU in the handler
//   jwt-cache        the same with a bare fast-jwt HS256 check in a preHandler, verifier cache as lib/tokens.ts
//   jwt-nocache      the same without the verifier cache
//   authenticate     the same with `preHandler: app.authenticate` (plugin on a SQLite file, WAL)
//   signin-sqlite    the plugin's routes on a SQLite file (WAL); codes captured in memory
//   signin-postgres  the same on a fresh database on BENCH_PG_URL
//   soak-sqlite      the plugin with the soak's rate limits (test/bench/soak.ts) and GET /api/me behind
//                    app.authenticate, on a SQLite file (WAL); codes captured in memory
//   soak-postgres    the same on a fresh database on BENCH_PG_URL
// With BENCH_SCALE=n the signin scenarios first fill the tables as a large app's would (see
// seedScale), and 'housekeeping' times the revocation list's read and a purge at that size.
// It answers 'ready' with its port, 'codes' with the codes sent since the last ask, 'cpu' with its
// CPU time so far (µs) and its peak RSS, 'profile-start' / 'profile-stop' (a CPU profile of what
// happens between them, written to the file the stop names), 'memory' with process.memoryUsage(), 'stats' with its memory (after a GC when run with
// --expose-gc), CPU time and the rows of each of the plugin's tables, and exits on 'stop'.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { getHeapSpaceStatistics } from 'node:v8'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { createSigner, createVerifier } from 'fast-jwt'
import secureLogin, { purgeExpired, startSqliteCheckpoints, type SecureLoginDatabase, type SmsMessage } from '../../lib/index.js'
import { createStore } from '../../lib/store/index.js'
import type { MemoryAtPeak, RssParts, SqliteTime } from './common.js'

const scenario = process.argv[2] ?? 'bare'
const SECRET = randomBytes(48).toString('base64')
const PAYLOAD = { hello: 'world' }
const send = (message: Record<string, unknown>) => process.send?.(message)

const TABLES = ['securelogin_users', 'securelogin_otp_challenges', 'securelogin_sessions', 'securelogin_rate_limits', 'securelogin_revocations']

const cleanups: Array<() => Promise<void> | void> = []
let app: FastifyInstance | undefined
/** Rows in each of TABLES, once a database is open: the soak reports what its load left behind. */
let countRows: (() => Promise<Record<string, number>>) | undefined
/** Runs raw SQL on the open database (for seeding): the dialect's own placeholders are not used. */
let execRaw: ((text: string) => Promise<void>) | undefined
let dialect: 'sqlite' | 'postgres' | undefined
let database: SecureLoginDatabase | undefined
let stopping = false
/** What 'ready' answers besides the port: the seeding's time, SQLite's `synchronous`. */
const info: Record<string, unknown> = {}

async function stop (): Promise<void> {
  if (stopping) return
  stopping = true
  try {
    await app?.close()
    for (const cleanup of cleanups.reverse()) await cleanup()
  } finally {
    process.exit(0)
  }
}

/** The same claims, and so about the same token size, as an access token of the plugin. */
function accessLikeToken (): string {
  const sign = createSigner({ key: SECRET, algorithm: 'HS256' })
  const iat = Math.floor(Date.now() / 1000)
  return sign({ type: 'access', sub: randomUUID(), sid: randomUUID(), phone: '+14155550123', fresh: true, iat, exp: iat + 600, jti: randomUUID() })
}

async function sqliteDatabase (): Promise<SecureLoginDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'securelogin-bench-'))
  // Each database's driver is loaded only by the servers that use it, as an app loads one: the
  // peak RSS reported is then what such an app's process would hold.
  const { default: Database } = await import('better-sqlite3')
  const { drizzle: drizzleSqlite } = await import('drizzle-orm/better-sqlite3')
  const sqlite = new Database(join(dir, 'bench.db'))
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('busy_timeout = 5000')
  // BENCH_SQLITE_SYNC: FULL or NORMAL (test/bench/run.ts runs both). Unset, the connection keeps
  // what it has: NORMAL on a WAL file, by better-sqlite3's build (see docs/databases.md).
  if (process.env.BENCH_SQLITE_SYNC) sqlite.pragma(`synchronous = ${process.env.BENCH_SQLITE_SYNC.replace(/[^A-Za-z]/g, '')}`)
  // Read after a first statement on the file: until then an unset connection still reads FULL.
  sqlite.prepare('SELECT count(*) FROM sqlite_master').get()
  info.synchronous = ['OFF', 'NORMAL', 'FULL', 'EXTRA'][sqlite.pragma('synchronous', { simple: true }) as number]
  // BENCH_SQLITE_CHECKPOINTS=worker: checkpoints in a worker thread (startSqliteCheckpoints), not in commits.
  const checkpoints = process.env.BENCH_SQLITE_CHECKPOINTS === 'worker' ? startSqliteCheckpoints(sqlite) : undefined
  info.checkpoints = checkpoints === undefined ? 'in commits' : 'worker'
  if (process.env.BENCH_BREAKDOWN === '1') timeSqliteCalls(sqlite)
  cleanups.push(async () => { await checkpoints?.stop(); sqlite.close(); rmSync(dir, { recursive: true, force: true }) })
  countRows = async () => Object.fromEntries(TABLES.map((table) => [table, (sqlite.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n]))
  execRaw = async (text) => { sqlite.exec(text) }
  dialect = 'sqlite'
  database = drizzleSqlite(sqlite)
  return database
}

/**
 * The main thread's CPU time so far (µs), from Linux's /proc (ns, read on the main thread):
 * process.cpuUsage() also counts V8's GC helpers, libuv's pool and the checkpoint worker, which do
 * not hold up the event loop. Undefined elsewhere.
 */
function mainThreadMicros (): number | undefined {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000
  } catch {
    return undefined
  }
}

/** The resident set's parts now (bytes), from Linux's /proc; undefined elsewhere. */
function rssParts (): RssParts | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
    return { anon: kib('RssAnon'), file: kib('RssFile'), shmem: kib('RssShmem') }
  } catch {
    return undefined
  }
}

/**
 * What the resident set held at its highest sample (every 100 ms): maxRSS gives the peak alone, and
 * the parts at the stop may no longer show what made it (V8's heap shrinks after the load ends).
 */
let atPeak: MemoryAtPeak | undefined
const peakSampler = setInterval(() => {
  const parts = rssParts()
  if (parts === undefined) return clearInterval(peakSampler)
  const total = parts.anon + parts.file + parts.shmem
  if (atPeak !== undefined && total <= atPeak.rss) return
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]))
  const { external, arrayBuffers } = process.memoryUsage()
  atPeak = { rss: total, parts, heapSpaces: spaces, external, arrayBuffers }
}, 100)
peakSampler.unref()

/** Wall time spent inside better-sqlite3 so far (µs): its commits apart from everything else it ran. */
const inSqlite: SqliteTime = { statements: 0, commits: 0, calls: 0 }

/**
 * BENCH_BREAKDOWN=1: times every call into better-sqlite3 (a statement's run/get/all/iterate, the
 * connection's exec and prepare), so that each step reports how much of its time SQLite's own work
 * takes: the event loop waits for all of it. Wall time: under synchronous = FULL a commit's sync
 * is in it and is not CPU. A commit is a COMMIT, or a write run outside any transaction (its own
 * commit is in its call). The timing itself adds a little to the CPU figures of such a run.
 */
function timeSqliteCalls (sqlite: import('better-sqlite3').Database): void {
  const timed = <A extends unknown[], R>(isCommit: (self: unknown, args: A) => boolean, call: (this: unknown, ...args: A) => R) => function (this: unknown, ...args: A): R {
    const commits = isCommit(this, args)
    const start = performance.now()
    try {
      return call.apply(this, args)
    } finally {
      const micros = (performance.now() - start) * 1000
      if (commits) inSqlite.commits += micros
      else inSqlite.statements += micros
      inSqlite.calls++
    }
  }
  const COMMIT = /^\s*COMMIT/i
  const statement = Object.getPrototypeOf(sqlite.prepare('SELECT 1')) as Record<'run' | 'get' | 'all' | 'iterate', (...args: unknown[]) => unknown>
  const statementCommits = (self: unknown) => {
    const { source, readonly } = self as { source: string, readonly: boolean }
    return COMMIT.test(source) || (!readonly && !sqlite.inTransaction)
  }
  for (const method of ['run', 'get', 'all', 'iterate'] as const) statement[method] = timed(statementCommits, statement[method])
  sqlite.exec = timed((_self, [text]: [string]) => COMMIT.test(text), sqlite.exec) as typeof sqlite.exec
  sqlite.prepare = timed(() => false, sqlite.prepare) as typeof sqlite.prepare
}

async function postgresDatabase (): Promise<SecureLoginDatabase> {
  const url = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'
  const { default: pg } = await import('pg')
  const { drizzle: drizzlePg } = await import('drizzle-orm/node-postgres')
  const name = `securelogin_bench_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const dbUrl = new URL(url)
  dbUrl.pathname = `/${name}`
  const pool = new pg.Pool({ connectionString: dbUrl.toString(), max: Number(process.env.BENCH_PG_POOL ?? 10) })
  cleanups.push(async () => {
    await pool.end()
    for (let attempt = 0; attempt < 50; attempt++) {
      try { await admin.query(`DROP DATABASE IF EXISTS ${name}`); break } catch { await new Promise((resolve) => setTimeout(resolve, 100)) }
    }
    await admin.end()
  })
  countRows = async () => {
    const counts: Record<string, number> = {}
    for (const table of TABLES) counts[table] = (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n
    return counts
  }
  execRaw = async (text) => { await pool.query(text) }
  dialect = 'postgres'
  info.namedStatements = process.env.BENCH_PG_NAMED === '1'
  database = drizzlePg(pool)
  return database
}

/**
 * What a large app's tables hold, written straight into them (the bench's own numbers, +1212…, are
 * not among them): `n` proven accounts (+1999…) with one session each, of which 1% were revoked a
 * minute ago (within the access tokens' lifetime, so the revocation list holds them) and 1% expired
 * a day ago (for the purge); n / 10 open challenges (+1998…) of which a tenth expired; n / 10
 * rate-limit counters of which a tenth are stale; n / 100 entries of number history.
 */
async function seedScale (n: number): Promise<number> {
  const started = Date.now()
  const now = Date.now()
  const minute = 60_000
  const day = 24 * 60 * minute
  const challenges = Math.floor(n / 10)
  const history = Math.floor(n / 100)
  if (dialect === 'sqlite') {
    const upTo = (count: number) => `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${count})`
    await execRaw!(`BEGIN;
      ${upTo(n)} INSERT INTO securelogin_users (id, phone, auth_type, status, phone_verified_at, created_at)
        SELECT 'seed-user-' || i, '+1999' || printf('%07d', i), 'PHONE', 'active', ${now - day}, ${now - day} FROM g;
      ${upTo(n)} INSERT INTO securelogin_sessions (id, user_id, generation, created_at, refreshed_at, expires_at, revoked_at, revoked_reason)
        SELECT 'seed-session-' || i, 'seed-user-' || i, 0, ${now - 2 * day}, ${now - 2 * day},
          CASE WHEN i % 100 = 1 THEN ${now - day} ELSE ${now + 30 * day} END,
          CASE WHEN i % 100 = 0 THEN ${now - minute} END, CASE WHEN i % 100 = 0 THEN 'logout' END FROM g;
      ${upTo(challenges)} INSERT INTO securelogin_otp_challenges (phone, challenge_id, code_hash, attempts, sent_at, expires_at)
        SELECT '+1998' || printf('%07d', i), 'seed-challenge-' || i, 'seed', 0, ${now - minute},
          CASE WHEN i % 10 = 0 THEN ${now - minute} ELSE ${now + 10 * minute} END FROM g;
      ${upTo(challenges)} INSERT INTO securelogin_rate_limits (key, window_start, count)
        SELECT 'seed:' || i, CASE WHEN i % 10 = 0 THEN ${now - 2 * day} ELSE ${now - minute} END, 1 FROM g;
      ${upTo(history)} INSERT INTO securelogin_phone_history (phone_key, ended_accounts) SELECT 'seed:' || i, 1 FROM g;
      COMMIT;`)
  } else {
    const at = (ms: number) => `to_timestamp(${ms / 1000})`
    await execRaw!(`
      INSERT INTO securelogin_users (id, phone, auth_type, status, phone_verified_at, created_at)
        SELECT gen_random_uuid(), '+1999' || lpad(i::text, 7, '0'), 'PHONE', 'active', ${at(now - day)}, ${at(now - day)} FROM generate_series(1, ${n}) AS i;
      INSERT INTO securelogin_sessions (id, user_id, generation, created_at, refreshed_at, expires_at, revoked_at, revoked_reason)
        SELECT gen_random_uuid(), id, 0, ${at(now - 2 * day)}, ${at(now - 2 * day)},
          CASE WHEN i % 100 = 1 THEN ${at(now - day)} ELSE ${at(now + 30 * day)} END,
          CASE WHEN i % 100 = 0 THEN ${at(now - minute)} END, CASE WHEN i % 100 = 0 THEN 'logout' END
        FROM (SELECT id, row_number() OVER () AS i FROM securelogin_users) AS u;
      INSERT INTO securelogin_otp_challenges (phone, challenge_id, code_hash, attempts, sent_at, expires_at)
        SELECT '+1998' || lpad(i::text, 7, '0'), gen_random_uuid(), 'seed', 0, ${at(now - minute)},
          CASE WHEN i % 10 = 0 THEN ${at(now - minute)} ELSE ${at(now + 10 * minute)} END FROM generate_series(1, ${challenges}) AS i;
      INSERT INTO securelogin_rate_limits (key, window_start, count)
        SELECT 'seed:' || i, CASE WHEN i % 10 = 0 THEN ${at(now - 2 * day)} ELSE ${at(now - minute)} END, 1 FROM generate_series(1, ${challenges}) AS i;
      INSERT INTO securelogin_phone_history (phone_key, ended_accounts) SELECT 'seed:' || i, 1 FROM generate_series(1, ${history}) AS i;`)
    // Vacuumed and analysed as a large app's tables would long have been: otherwise autovacuum
    // takes up the million new rows during the measured steps, on the same two cores. (Its own
    // statement: VACUUM cannot run in the multi-statement string above, an implicit transaction.)
    await execRaw!('VACUUM ANALYZE')
  }
  return Date.now() - started
}

/**
 * The two pieces of housekeeping at this size: the revocation list's reads (the first, of every
 * session revoked within the access tokens' lifetime, as at an instance's start; then one of the
 * background refresh, after one more revocation) and one purge of what has expired.
 */
async function housekeeping (): Promise<Record<string, unknown>> {
  const store = createStore(database!, dialect!)
  const since = new Date(Date.now() - 10 * 60_000)
  let started = Date.now()
  const first = await store.revocationsAfter(undefined, since)
  const revocationMs = Date.now() - started
  const revokedNow = dialect === 'sqlite' ? String(Date.now()) : 'now()'
  await execRaw!(`UPDATE securelogin_sessions SET revoked_at = ${revokedNow}, revoked_reason = 'logout' WHERE id = (SELECT id FROM securelogin_sessions WHERE revoked_at IS NULL LIMIT 1)`)
  started = performance.now()
  const next = await store.revocationsAfter(first.cursor, since)
  const nextRevocationMs = performance.now() - started
  started = Date.now()
  const purged = await purgeExpired(database!)
  return { revokedRows: first.revocations.length, revocationMs, nextRevokedRows: next.revocations.length, nextRevocationMs: Math.round(nextRevocationMs * 100) / 100, purged, purgeMs: Date.now() - started }
}

type Outbox = Array<{ phone: string, code: string }>

/** POST /work of the bare server: a body, query and answer the size of login's. */
const WORK_SCHEMA = {
  querystring: { type: 'object', properties: { us: { type: 'integer', minimum: 0, maximum: 100_000 } }, required: ['us'] },
  body: { type: 'object', properties: { phone: { type: 'string', maxLength: 32 } }, required: ['phone'] },
  response: { 200: { type: 'object', properties: { phone: { type: 'string' }, userid: { type: 'string' } } } },
}
const WORK_USERID = randomUUID()

/** An SMS provider that keeps `{ phone, code }` in memory, for the parent to read over IPC. */
function memorySms (sent: Outbox) {
  return { name: 'bench', async send (message: SmsMessage) { sent.push({ phone: message.to, code: message.code }) } }
}

/** The plugin with an SMS provider that keeps codes in memory and limits too high to trigger. */
async function pluginApp (db: SecureLoginDatabase, sent: Outbox): Promise<FastifyInstance> {
  const instance = Fastify({ logger: false })
  const high = { max: 1_000_000, window: '1h' }
  await instance.register(secureLogin, {
    db,
    sms: memorySms(sent),
    jwt: { secret: SECRET },
    otp: { resendInterval: '1ms' },
    // No purge at a random moment of a measured step; `--scale` times one on its own (housekeeping).
    purgeInterval: false,
    // Every limit that a run of sequential numbers from one address would reach (the default per
    // prefix, global and per-IP register budgets are 20, 1,000 and 20 an hour).
    rateLimit: { sendsPerPhone: high, sendsPerIp: high, verifiesPerIp: high, registersPerIp: high, sendsPerPrefix: high, sendsGlobal: high },
    // BENCH_PG_NAMED=1: named statements on PostgreSQL (test/bench/run.ts runs it both ways).
    postgres: { namedStatements: process.env.BENCH_PG_NAMED === '1' },
  })
  return instance
}

/** A log destination that passes the first `max` lines to stderr: a broken route would otherwise log every request. */
function firstLines (max: number) {
  let written = 0
  return {
    write (line: string): void {
      written += 1
      if (written <= max) process.stderr.write(line)
      if (written === max + 1) process.stderr.write(`bench server: log lines after the first ${max} are left out\n`)
    },
  }
}

/**
 * The plugin as the soak runs it: every request comes from 127.0.0.1, so the per-IP budgets are
 * raised out of reach, and so is the app's SMS budget; the per-number, per-prefix and wrong-code
 * limits keep their defaults, and the soak spreads its numbers so that they hold. Short resend and
 * reuse-grace periods let one run reach the second sign-in and the reuse of a refresh token.
 * Errors are logged (level warn), so a 5xx shows its cause on stderr.
 */
async function soakApp (db: SecureLoginDatabase, sent: Outbox): Promise<FastifyInstance> {
  const instance = Fastify({ logger: { level: 'warn', stream: firstLines(20) } })
  const perClient = { max: 1_000_000, window: '1h' }
  await instance.register(secureLogin, {
    db,
    sms: memorySms(sent),
    jwt: { secret: SECRET },
    otp: { resendInterval: '1s' },
    sessions: { reuseGrace: '1s' },
    rateLimit: { sendsPerIp: perClient, verifiesPerIp: perClient, registersPerIp: perClient, sendsGlobal: { max: 1_000_000, window: '1m' } },
  })
  instance.get('/api/me', { preHandler: instance.authenticate }, async (request) => request.user)
  return instance
}

/** The server's memory (after a full GC when --expose-gc is on, so two samples compare), CPU time so far (µs) and table rows. */
async function stats (): Promise<Record<string, unknown>> {
  globalThis.gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  const cpu = process.cpuUsage()
  return { rss, heapUsed, cpuMicros: cpu.user + cpu.system, rows: await countRows?.() }
}

/**
 * A CPU profile of one measured run (BENCH_PROFILE, see test/bench/common.ts), through the
 * inspector; with BENCH_HEAP_PROFILE=1 a sampled profile of what it allocated instead, the objects
 * the garbage collector has already freed included (most of a request's objects die young).
 */
const heapProfile = process.env.BENCH_HEAP_PROFILE === '1'
const profiler = {
  session: undefined as Session | undefined,
  async start (): Promise<void> {
    this.session = new Session()
    this.session.connect()
    if (heapProfile) {
      await this.session.post('HeapProfiler.enable')
      // node:inspector's types lag the protocol: these two flags exist in Node 20's V8.
      await this.session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as { samplingInterval: number })
      return
    }
    await this.session.post('Profiler.enable')
    // 100 µs: a sign-in step takes a few hundred, so each request shows in a few samples.
    await this.session.post('Profiler.setSamplingInterval', { interval: 100 })
    await this.session.post('Profiler.start')
  },
  async stop (file: string): Promise<void> {
    if (this.session === undefined) return
    const { profile } = heapProfile ? await this.session.post('HeapProfiler.stopSampling') : await this.session.post('Profiler.stop')
    this.session.disconnect()
    this.session = undefined
    writeFileSync(file, JSON.stringify(profile))
  },
}

async function main (): Promise<Record<string, unknown>> {
  const sent: Outbox = []
  process.on('message', (message: { type: string }) => {
    if (message.type === 'stop') void stop()
    if (message.type === 'codes') send({ type: 'codes', codes: sent.splice(0) })
    if (message.type === 'housekeeping') {
      housekeeping().then((answer) => send({ type: 'housekeeping', ...answer }), (error: unknown) => send({ type: 'housekeeping', error: String(error) }))
    }
    if (message.type === 'profile-start') void profiler.start().then(() => send({ type: 'profile-start' }))
    if (message.type === 'profile-stop') void profiler.stop((message as { file?: string }).file ?? 'bench.cpuprofile').then(() => send({ type: 'profile-stop' }))
    if (message.type === 'memory') send({ type: 'memory', ...process.memoryUsage() })
    if (message.type === 'stats') {
      stats().then((answer) => send({ type: 'stats', ...answer }), (error: unknown) => send({ type: 'stats', error: String(error) }))
    }
    // maxRSS: the peak resident set of the whole life of the process, in KiB.
    if (message.type === 'cpu') {
      const usage = process.cpuUsage()
      const breakdown = process.env.BENCH_BREAKDOWN === '1' ? { inSqlite, mainThreadMicros: mainThreadMicros() } : {}
      send({ type: 'cpu', micros: usage.user + usage.system, maxRss: process.resourceUsage().maxRSS * 1024, rssParts: rssParts(), atPeak, ...breakdown })
    }
  })
  process.on('disconnect', () => { void stop() })

  switch (scenario) {
    case 'bare': {
      app = Fastify({ logger: false })
      app.post('/work', { schema: WORK_SCHEMA }, async (request) => {
        const { us } = request.query as { us: number }
        // `us` µs of CPU, as a sign-in step spends on its own work (test/bench/paced.ts). Counted in
        // CPU, not wall time: a spin the VM preempts would otherwise spend less than `us`.
        const start = process.cpuUsage()
        while (us > 0) {
          const spent = process.cpuUsage(start)
          if (spent.user + spent.system >= us) break
        }
        return { phone: (request.body as { phone: string }).phone, userid: WORK_USERID }
      })
      break
    }
    case 'jwt-cache':
    case 'jwt-nocache': {
      app = Fastify({ logger: false })
      const verify = createVerifier({ key: SECRET, algorithms: ['HS256'], cache: scenario === 'jwt-cache' ? 10_000 : false })
      app.decorateRequest('user', null as never)
      const hook = async (request: FastifyRequest) => {
        const header = request.headers.authorization
        if (header === undefined || !header.startsWith('Bearer ')) throw Object.assign(new Error('no token'), { statusCode: 401 })
        ;(request as unknown as { user: unknown }).user = verify(header.slice(7))
      }
      app.get('/', { preHandler: hook }, async () => PAYLOAD)
      info.token = accessLikeToken()
      break
    }
    case 'authenticate': {
      app = await pluginApp(await sqliteDatabase(), sent)
      app.get('/', { preHandler: app.authenticate }, async () => PAYLOAD)
      await app.ready()
      // A real sign-in, so the token is one the plugin issued.
      const phone = '+14155550123'
      const post = (url: string, payload: object) => app!.inject({ method: 'POST', url: `/api/auth${url}`, payload })
      await post('/register', { phone })
      await post('/login', { phone })
      const verified = await post('/verify_sms', { phone, token: sent.splice(0).at(-1)?.code ?? '' })
      if (verified.statusCode !== 200) throw new Error(`sign-in for the token failed: ${verified.body}`)
      info.token = verified.json().access_token
      break
    }
    case 'signin-sqlite':
      app = await pluginApp(await sqliteDatabase(), sent)
      break
    case 'signin-postgres':
      app = await pluginApp(await postgresDatabase(), sent)
      break
    case 'soak-sqlite':
      app = await soakApp(await sqliteDatabase(), sent)
      break
    case 'soak-postgres':
      app = await soakApp(await postgresDatabase(), sent)
      break
    default:
      throw new Error(`unknown scenario ${scenario}`)
  }
  if (scenario === 'bare' || scenario.startsWith('signin')) app.get('/', async () => PAYLOAD)
  const scale = Number(process.env.BENCH_SCALE ?? 0)
  if (scale > 0 && scenario.startsWith('signin')) {
    await app.ready()
    info.seedMs = await seedScale(scale)
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  info.port = typeof address === 'object' && address !== null ? address.port : 0
  return info
}

main().then((info) => send({ type: 'ready', ...info }), async (error: unknown) => {
  send({ type: 'ready', error: error instanceof Error ? error.message : String(error) })
  await stop()
})
