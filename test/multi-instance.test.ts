// Several app processes sharing one database, over real HTTP: what docs/deploying.md promises about
// running more than one instance. Each instance is test/fixtures/instance-server.ts in a process of
// its own (fork), so nothing is shared but the database and the secret, as in a deployment.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t, { type Test } from 'tap'
import type { InstanceConfig } from './fixtures/instance-server.js'
import { dropDatabase, postgresUrl, TEST_SECRET, waitFor } from './helper.js'

// Copied from test/db-faults.test.ts: these tests need a real PostgreSQL server (several processes
// cannot share a PGlite), which CI always has. A new object per test: tap writes into the options
// it is given (a --grep filter sets `skip`), and a shared one would carry that to the next test.
const inCi = process.env.CI !== undefined && process.env.CI !== ''
const needsPostgres = () => ({ skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false })

const FIXTURE = fileURLToPath(new URL('./fixtures/instance-server.ts', import.meta.url))
const STARTUP_TIMEOUT_MS = 60_000
// tap puts its process-info hook into NODE_OPTIONS, for coverage of child processes. Coverage is
// off in this project, and the hook makes each instance take about half as long again to start.
const CHILD_ENV = { ...process.env, NODE_OPTIONS: (process.env.NODE_OPTIONS ?? '').replace(/--import=\S*@tapjs\/processinfo\S*/g, '').trim() }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Databases

interface ScratchDatabase {
  url: string
  query: (text: string) => Promise<Array<Record<string, unknown>>>
}

/**
 * A new, empty database on the server of SECURELOGIN_TEST_POSTGRES_URL, dropped when the test ends.
 * Call it before starting instances: teardowns run last-registered first, so the instances are
 * stopped before the drop.
 */
async function scratchDatabase (t: Test): Promise<ScratchDatabase> {
  const admin = new pg.Client({ connectionString: postgresUrl })
  await admin.connect()
  const name = `securelogin_multi_${randomBytes(6).toString('hex')}`
  await admin.query(`CREATE DATABASE ${name}`)
  t.teardown(async () => {
    await dropDatabase(admin, name)
    await admin.end()
  })
  const url = new URL(postgresUrl as string)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    query: async (text) => {
      const client = new pg.Client({ connectionString: url.toString() })
      await client.connect()
      try {
        return (await client.query(text)).rows
      } finally {
        await client.end()
      }
    },
  }
}

/** One instance's configuration: every instance of an app shares the secret and the options (docs/deploying.md). */
function configFor (database: string, options: Record<string, unknown> = {}, extra: Partial<InstanceConfig> = {}): InstanceConfig {
  return { database, secret: TEST_SECRET, options, ...extra }
}

// ---------------------------------------------------------------------------------------------
// Codes sent by the instances

interface Sms { to: string, code: string, from: string }

/** The codes every instance sent, as they arrive over IPC. */
function createOutbox () {
  const messages: Sms[] = []
  const read = new Map<string, number>()
  return {
    add (message: Sms): void { messages.push(message) },
    sentTo (phone: string): Sms[] { return messages.filter((message) => message.to === phone) },
    /** The next code to `phone` the test has not read yet. Codes go out after /login answers, so it waits for one. */
    async next (phone: string): Promise<Sms> {
      const deadline = Date.now() + 10_000
      for (;;) {
        const index = read.get(phone) ?? 0
        const message = messages.filter((m) => m.to === phone)[index]
        if (message !== undefined) {
          read.set(phone, index + 1)
          return message
        }
        if (Date.now() > deadline) throw new Error(`no SMS was sent to ${phone}`)
        await sleep(10)
      }
    },
  }
}

type Outbox = ReturnType<typeof createOutbox>

// ---------------------------------------------------------------------------------------------
// Instances

interface Answer { status: number, body: Record<string, any> }

interface Instance {
  name: string
  /** POST {prefix}{path}, with a Bearer token and a client address (X-Forwarded-For, for instances that trust 127.0.0.1) if given. */
  auth: (path: string, body?: object, options?: { token?: string, ip?: string }) => Promise<Answer>
  /** GET /me, the app's route behind `app.authenticate`. */
  me: (token: string) => Promise<Answer>
  /** What the process printed (Fastify's warnings and errors). */
  output: () => string
  /** Asks it to stop, by IPC or SIGTERM, and resolves with its exit code. */
  stop: (how?: 'message' | 'SIGTERM') => Promise<number | null>
}

interface Launched {
  name: string
  loaded: Promise<void>
  ready: Promise<number>
  go: () => void
  output: () => string
  stop: Instance['stop']
}

/** Forks one instance. Whatever happens to the test, the process is killed when the test ends. */
function launch (t: Test, name: string, config: InstanceConfig, outbox: Outbox): Launched {
  const child = fork(FIXTURE, [JSON.stringify(config)], { execArgv: ['--import', 'tsx'], env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  // A message to a process that has just exited fails here; its exit is what the test looks at.
  child.on('error', () => {})
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const running = () => child.exitCode === null && child.signalCode === null
  const send = (type: string) => { if (child.connected) child.send({ type }) }

  t.teardown(async () => {
    if (!running()) return
    child.kill('SIGTERM')
    await Promise.race([exited, sleep(10_000)])
    if (running()) child.kill('SIGKILL')
    await exited
  })

  const reported = (type: string) => new Promise<Record<string, any>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance ${name}: no '${type}' within ${STARTUP_TIMEOUT_MS} ms\n${output}`)), STARTUP_TIMEOUT_MS)
    timer.unref()
    child.on('message', (message: Record<string, any>) => {
      if (message.type === type) { clearTimeout(timer); resolve(message) }
      if (message.type === 'failed') { clearTimeout(timer); reject(new Error(`instance ${name} failed to start: ${message.error}\n${output}`)) }
    })
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`instance ${name} exited (${code}) before '${type}'\n${output}`)) })
  })
  const loaded = reported('loaded').then(() => {})
  const ready = reported('ready').then((message) => message.port as number)
  // Not every caller waits for both: a rejection nobody awaits must not count as unhandled.
  loaded.catch(() => {})
  ready.catch(() => {})

  child.on('message', (message: Record<string, any>) => {
    if (message.type === 'sms') outbox.add({ to: message.to, code: message.code, from: name })
  })

  return {
    name,
    loaded,
    ready,
    go: () => send('go'),
    output: () => output,
    stop: async (how = 'message') => {
      if (how === 'SIGTERM') child.kill('SIGTERM')
      else send('stop')
      return exited
    },
  }
}

async function call (base: string, method: string, path: string, body: object | undefined, options: { token?: string, ip?: string }): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.ip !== undefined) headers['x-forwarded-for'] = options.ip
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: response.status, body: await response.json() as Record<string, any> }
}

/**
 * Starts one process per config and resolves once every one listens. Instances configured with
 * `waitForGo` are released together once all have loaded, so that they register (and migrate) at
 * the same moment.
 */
async function startInstances (t: Test, outbox: Outbox, configs: InstanceConfig[], names = ['A', 'B', 'C', 'D']): Promise<Instance[]> {
  const launched = configs.map((config, i) => launch(t, names[i] ?? `#${i}`, config, outbox))
  if (configs.some((config) => config.waitForGo === true)) {
    await Promise.all(launched.map((instance) => instance.loaded))
    for (const instance of launched) instance.go()
  }
  const ports = await Promise.all(launched.map((instance) => instance.ready))
  return launched.map((instance, i): Instance => {
    const base = `http://127.0.0.1:${ports[i]}`
    return {
      name: instance.name,
      auth: (path, body, options = {}) => call(base, 'POST', `/api/auth${path}`, body, options),
      me: (token) => call(base, 'GET', '/me', undefined, { token }),
      output: instance.output,
      stop: instance.stop,
    }
  })
}

/** What an instance logged at error level or above (pino levels 50, 60), but for lines matching `expected`. */
function loggedErrors (instance: Instance, expected?: RegExp): string[] {
  return instance.output().split('\n').filter((line) => /"level":(50|60)/.test(line) && expected?.test(line) !== true)
}

/**
 * Stops the instances as a deploy would and checks that each closed its app and database and
 * exited 0 on its own, and that none logged an error (a 500, a failed background job) meanwhile.
 */
async function stopAll (t: Test, instances: Instance[], options: { how?: 'message' | 'SIGTERM', expectedErrors?: RegExp } = {}): Promise<void> {
  const { how = 'message', expectedErrors } = options
  const codes = await Promise.all(instances.map((instance) => instance.stop(how)))
  t.same(codes, instances.map(() => 0), `every instance closed cleanly on ${how === 'message' ? "a 'stop' message" : 'SIGTERM'} and exited 0`)
  for (const instance of instances) t.same(loggedErrors(instance, expectedErrors), [], `${instance.name} logged no error`)
}

// ---------------------------------------------------------------------------------------------
// Requests

/** An answer as one short string: '200', or the status and the error code ('401 SECURELOGIN_OTP_EXPIRED'). */
function outcome (answer: Answer): string {
  return answer.status < 300 ? String(answer.status) : `${answer.status} ${answer.body.code}`
}

/** Sends `count` requests one after the other, alternating between A and B; answers as 'A 200', 'B 429 SECURELOGIN_RATE_LIMITED'… */
async function inTurn (a: Instance, b: Instance, count: number, request: (instance: Instance, i: number) => Promise<Answer>): Promise<string[]> {
  const outcomes: string[] = []
  for (let i = 0; i < count; i++) {
    const instance = i % 2 === 0 ? a : b
    outcomes.push(`${instance.name} ${outcome(await request(instance, i))}`)
  }
  return outcomes
}

/** Registers the number, asks `login` for a code and hands it to `verify`: the tokens of a new session. */
async function signIn (login: Instance, verify: Instance, outbox: Outbox, phone: string): Promise<{ userid: string, access_token: string, refresh_token: string }> {
  await login.auth('/register', { phone })
  const sent = await login.auth('/login', { phone })
  if (sent.status !== 200) throw new Error(`login through ${login.name} failed: ${JSON.stringify(sent.body)}\n${login.output().slice(-4000)}`)
  const verified = await verify.auth('/verify_sms', { phone, token: (await outbox.next(phone)).code })
  if (verified.status !== 200) throw new Error(`verify_sms through ${verify.name} failed: ${JSON.stringify(verified.body)}\n${verify.output().slice(-4000)}`)
  return verified.body as { userid: string, access_token: string, refresh_token: string }
}

/** A code that is certainly not `code`. */
function wrongCode (code: string): string {
  return `${(Number(code[0]) + 1) % 10}${code.slice(1)}`
}

// Valid US numbers, grouped by prefix: sendsPerPrefix counts numbers that share all but their last
// 3 digits, so each check gets a prefix of its own and no check spends another's allowance.
const AREA_CODES = ['415', '212', '310', '646', '650', '718', '617', '202', '312', '206', '303', '512']
let prefixesUsed = 0

/** `count` numbers sharing one prefix that no other number of this file has. */
function phonesSharingAPrefix (count: number): string[] {
  const n = prefixesUsed++
  if (n >= AREA_CODES.length * 10) throw new Error('out of phone prefixes: add area codes')
  const prefix = `+1${AREA_CODES[Math.floor(n / 10)]}555${n % 10}`
  return Array.from({ length: count }, (_, i) => `${prefix}${100 + i}`)
}

/**
 * `rounds` times: a code sent through B, then checked with the right code twice on each instance
 * at once. It is used up by one conditional write, which only one of the four can win.
 */
async function raceOneCode (t: Test, a: Instance, b: Instance, outbox: Outbox, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const racer = freshPhone()
    await b.auth('/register', { phone: racer })
    t.equal(outcome(await b.auth('/login', { phone: racer })), '200')
    const { code } = await outbox.next(racer)
    const answers = await Promise.all([a, b, a, b].map((instance) => instance.auth('/verify_sms', { phone: racer, token: code })))
    t.same(answers.map(outcome).sort(), ['200', '401 SECURELOGIN_OTP_EXPIRED', '401 SECURELOGIN_OTP_EXPIRED', '401 SECURELOGIN_OTP_EXPIRED'], `round ${round + 1}: exactly one of four concurrent checks signs in`)
  }
}

function freshPhone (): string {
  return phonesSharingAPrefix(1)[0] as string
}

// Client addresses for instances that trust 127.0.0.1 as a proxy (TEST-NET-2): each check counts
// under addresses of its own.
let addressesUsed = 0
function freshIp (): string {
  addressesUsed += 1
  if (addressesUsed > 254) throw new Error('out of client addresses')
  return `198.51.100.${addressesUsed}`
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

t.test('PostgreSQL: a code sent through A verifies through B exactly once, also when both check it at the same moment', needsPostgres(), async (t) => {
  const database = await scratchDatabase(t)
  const outbox = createOutbox()
  // 10 attempts per code, so that the concurrent checks below all get to compare the code.
  const config = configFor(database.url, { otp: { maxAttempts: 10 } })
  const [a, b] = await startInstances(t, outbox, [config, config]) as [Instance, Instance]

  const phone = freshPhone()
  const registered = await a.auth('/register', { phone })
  t.equal(outcome(registered), '201')
  t.same((await a.auth('/login', { phone })).body, { phone, userid: registered.body.userid }, 'A sends a code')
  const sms = await outbox.next(phone)
  t.equal(sms.from, 'A', 'the code came from A')

  const verified = await b.auth('/verify_sms', { phone, token: sms.code })
  t.equal(outcome(verified), '200', 'B accepts the code A sent')
  t.equal(verified.body.userid, registered.body.userid)
  t.match((await a.me(verified.body.access_token)).body, { userid: registered.body.userid, phone, fresh: true }, "A accepts B's access token")
  t.equal(outcome(await a.auth('/verify_sms', { phone, token: sms.code })), '401 SECURELOGIN_OTP_EXPIRED', 'the used code is refused through A')
  t.equal(outcome(await b.auth('/verify_sms', { phone, token: sms.code })), '401 SECURELOGIN_OTP_EXPIRED', 'and through B')

  // The right code sent to both instances at once, two requests each: the code is used up by one
  // conditional write, which only one of them can win.
  await raceOneCode(t, a, b, outbox, 5)

  await stopAll(t, [a, b])
})

t.test('PostgreSQL: a refresh token rotated on A is refused on B, and reusing it on B after the grace period ends the session', needsPostgres(), async (t) => {
  const database = await scratchDatabase(t)
  const outbox = createOutbox()
  // 2 s: long enough for B's answer to come inside it on a busy machine, short enough to wait out.
  const REUSE_GRACE_MS = 2_000
  const config = configFor(database.url, { sessions: { reuseGrace: `${REUSE_GRACE_MS}ms` } })
  const [a, b] = await startInstances(t, outbox, [config, config]) as [Instance, Instance]

  const first = await signIn(a, a, outbox, freshPhone())
  const rotated = await a.auth('/refresh', undefined, { token: first.refresh_token })
  t.equal(outcome(rotated), '200', 'A rotates the refresh token')
  t.equal(outcome(await b.auth('/refresh', undefined, { token: first.refresh_token })), '409 SECURELOGIN_REFRESH_SUPERSEDED',
    'B refuses the replaced token; within sessions.reuseGrace it takes it for a client racing itself')
  t.equal(outcome(await b.me(rotated.body.access_token)), '200', 'and the session lives on')

  await sleep(REUSE_GRACE_MS + 300) // past sessions.reuseGrace since A's rotation
  t.equal(outcome(await b.auth('/refresh', undefined, { token: first.refresh_token })), '401 SECURELOGIN_SESSION_REVOKED',
    'after the grace period B takes the old token for a stolen copy and ends the session')
  t.equal(outcome(await a.auth('/refresh', undefined, { token: rotated.body.refresh_token })), '401 SECURELOGIN_SESSION_REVOKED', 'so the newer token fails on A')
  t.equal(outcome(await b.auth('/refresh', undefined, { token: rotated.body.refresh_token })), '401 SECURELOGIN_SESSION_REVOKED', 'and on B')

  // One refresh token presented to both at once: the rotation is one conditional write, which only one wins.
  for (let round = 0; round < 3; round++) {
    const session = await signIn(b, b, outbox, freshPhone())
    const answers = await Promise.all([a, b].map((instance) => instance.auth('/refresh', undefined, { token: session.refresh_token })))
    t.same(answers.map(outcome).sort(), ['200', '409 SECURELOGIN_REFRESH_SUPERSEDED'], `round ${round + 1}: exactly one of two concurrent refreshes rotates`)
    const winner = answers.find((answer) => answer.status === 200)
    const loser = answers[0]?.status === 200 ? b : a
    t.equal(outcome(await loser.auth('/refresh', undefined, { token: winner?.body.refresh_token })), '200', `${loser.name} accepts the winner's new refresh token`)
  }

  await stopAll(t, [a, b])
})

t.test('PostgreSQL: every rate limit counts requests across both instances', needsPostgres(), async (t) => {
  const database = await scratchDatabase(t)
  const outbox = createOutbox()
  const SENDS_GLOBAL = 16
  const config = configFor(database.url, {
    // Small limits, one rule each. resendInterval 1 ms lets one number ask again at once;
    // maxAttempts 10 keeps the per-code limit out of the wrong-code budget's way.
    otp: { resendInterval: '1ms', maxAttempts: 10 },
    rateLimit: {
      registersPerIp: { max: 3, window: '1h' },
      sendsPerIp: { max: 4, window: '1h' },
      sendsPerPhone: { max: 3, window: '1h' },
      sendsPerPrefix: { max: 3, window: '1h' },
      sendsGlobal: { max: SENDS_GLOBAL, window: '1h' },
      failedVerifiesPerPhone: { max: 3, window: '1d' },
      verifiesPerIp: { max: 4, window: '1h' },
    },
  }, { trustProxy: '127.0.0.1' }) // this test is the proxy: X-Forwarded-For picks each request's client address
  const [a, b] = await startInstances(t, outbox, [config, config]) as [Instance, Instance]

  // Every code opened in this database, for the global budget at the end.
  let codesOpened = 0
  const login = async (instance: Instance, phone: string, ip = freshIp()) => {
    const answer = await instance.auth('/login', { phone }, { ip })
    if (answer.status === 200) codesOpened += 1
    return answer
  }
  // Requests alternate A, B, A, B…: counted per instance, every limit below would allow twice as many.
  const RATE_LIMITED = '429 SECURELOGIN_RATE_LIMITED'

  await t.test('registersPerIp', async (t) => {
    const ip = freshIp()
    t.same(await inTurn(a, b, 5, (instance) => instance.auth('/register', { phone: freshPhone() }, { ip })),
      ['A 201', 'B 201', 'A 201', `B ${RATE_LIMITED}`, `A ${RATE_LIMITED}`])
  })

  await t.test('sendsPerIp', async (t) => {
    const ip = freshIp()
    t.same(await inTurn(a, b, 6, (instance) => login(instance, freshPhone(), ip)),
      ['A 200', 'B 200', 'A 200', 'B 200', `A ${RATE_LIMITED}`, `B ${RATE_LIMITED}`])
  })

  await t.test('sendsPerPhone', async (t) => {
    const phone = freshPhone()
    await a.auth('/register', { phone }, { ip: freshIp() })
    t.same(await inTurn(a, b, 5, (instance) => login(instance, phone)),
      ['A 200', 'B 200', 'A 200', `B ${RATE_LIMITED}`, `A ${RATE_LIMITED}`])
    // Codes go out after /login answers, and arrive here over IPC: wait for the third (at most
    // 10 s), then a little longer, so that a fourth would show.
    await waitFor(() => outbox.sentTo(phone).length >= 3, 10_000)
    await sleep(200)
    t.same(outbox.sentTo(phone).map((sms) => sms.from).sort(), ['A', 'A', 'B'], 'three codes were sent, one per allowed request')
  })

  await t.test('sendsPerPrefix', async (t) => {
    const phones = phonesSharingAPrefix(5)
    t.same(await inTurn(a, b, 5, (instance, i) => login(instance, phones[i] as string)),
      ['A 200', 'B 200', 'A 200', `B ${RATE_LIMITED}`, `A ${RATE_LIMITED}`])
  })

  await t.test('failedVerifiesPerPhone', async (t) => {
    const phone = freshPhone()
    await b.auth('/register', { phone }, { ip: freshIp() })
    t.equal(outcome(await login(b, phone)), '200')
    const { code } = await outbox.next(phone)
    t.same(await inTurn(a, b, 5, (instance) => instance.auth('/verify_sms', { phone, token: wrongCode(code) }, { ip: freshIp() })),
      ['A 401 SECURELOGIN_OTP_INVALID', 'B 401 SECURELOGIN_OTP_INVALID', 'A 401 SECURELOGIN_OTP_INVALID', 'B 429 SECURELOGIN_PHONE_LOCKED', 'A 429 SECURELOGIN_PHONE_LOCKED'],
      'three wrong codes, from anywhere, lock the number')
    t.same(await inTurn(a, b, 2, (instance) => instance.auth('/verify_sms', { phone, token: code }, { ip: freshIp() })),
      ['A 429 SECURELOGIN_PHONE_LOCKED', 'B 429 SECURELOGIN_PHONE_LOCKED'], 'even against the right code, on both')
    t.same(await inTurn(a, b, 2, (instance) => login(instance, phone)),
      ['A 429 SECURELOGIN_PHONE_LOCKED', 'B 429 SECURELOGIN_PHONE_LOCKED'], 'and the locked number gets no new code')
  })

  await t.test('verifiesPerIp', async (t) => {
    const ip = freshIp()
    // Numbers with no code pending: each check is refused as expired, and counts.
    t.same(await inTurn(a, b, 6, (instance) => instance.auth('/verify_sms', { phone: freshPhone(), token: '123456' }, { ip })),
      ['A 401 SECURELOGIN_OTP_EXPIRED', 'B 401 SECURELOGIN_OTP_EXPIRED', 'A 401 SECURELOGIN_OTP_EXPIRED', 'B 401 SECURELOGIN_OTP_EXPIRED', `A ${RATE_LIMITED}`, `B ${RATE_LIMITED}`])
  })

  // Last: once spent, the global budget refuses every send in this database.
  await t.test('sendsGlobal', async (t) => {
    t.ok(codesOpened < SENDS_GLOBAL - 2, `the checks above opened ${codesOpened} codes, leaving some of the budget`)
    const left = SENDS_GLOBAL - codesOpened
    // Fresh numbers, prefixes and addresses: only the global budget can refuse them.
    t.same(await inTurn(a, b, left + 2, (instance) => login(instance, freshPhone())),
      Array.from({ length: left + 2 }, (_, i) => `${i % 2 === 0 ? 'A' : 'B'} ${i < left ? '200' : '503 SECURELOGIN_SMS_BUDGET_EXHAUSTED'}`),
      'the rest of the budget, then both refuse')
    t.equal(codesOpened, SENDS_GLOBAL, `exactly ${SENDS_GLOBAL} codes were opened in all, through both instances`)
  })

  // A spent SMS budget is logged at error level on purpose: it stops every sign-in.
  await stopAll(t, [a, b], { expectedErrors: /the SMS budget \(rateLimit\.sendsGlobal\) is spent/ })
})

t.test('PostgreSQL: after a logout on A, B refuses the access token within revocationMaxDelay', needsPostgres(), async (t) => {
  const database = await scratchDatabase(t)
  const outbox = createOutbox()
  const BOUND_MS = 1_000
  // Room for a busy 2-core machine: B reloads the revoked sessions every BOUND_MS / 2, so the bound
  // itself already leaves about half of it; a bound broken by half again still fails.
  const MARGIN_MS = 250
  const config = configFor(database.url, { revocationMaxDelay: `${BOUND_MS}ms` })
  const [a, b] = await startInstances(t, outbox, [config, config]) as [Instance, Instance]

  // A few rounds, so that logouts fall at different points of B's reload cycle.
  for (let round = 1; round <= 3; round++) {
    const session = await signIn(a, a, outbox, freshPhone())
    t.equal(outcome(await b.me(session.access_token)), '200', `round ${round}: B accepts the access token`)

    t.equal(outcome(await a.auth('/logout', {}, { token: session.access_token })), '200', 'A logs the session out')
    // From the logout's answer, when its revocation is committed: what the bound promises.
    const started = performance.now()
    t.equal(outcome(await a.me(session.access_token)), '401 SECURELOGIN_SESSION_REVOKED', 'A refuses the access token at once')
    let answer: Answer
    do {
      answer = await b.me(session.access_token)
      if (answer.status !== 200) break
      await sleep(20)
    } while (performance.now() - started < BOUND_MS * 5)
    const delay = Math.round(performance.now() - started)
    t.equal(outcome(answer), '401 SECURELOGIN_SESSION_REVOKED', 'B refuses it')
    t.ok(delay <= BOUND_MS + MARGIN_MS, `within revocationMaxDelay (${BOUND_MS} ms) and a ${MARGIN_MS} ms margin: ${delay} ms after the logout answered`)
    t.equal(outcome(await b.auth('/refresh', undefined, { token: session.refresh_token })), '401 SECURELOGIN_SESSION_REVOKED', "B refuses the session's refresh token")
  }

  await stopAll(t, [a, b])
})

t.test('PostgreSQL: four instances started at the same moment on an empty database all come up and serve sign-in', needsPostgres(), async (t) => {
  const database = await scratchDatabase(t)
  const outbox = createOutbox()
  // waitForGo: each process loads, then all four register (and migrate) on the same signal.
  const config = configFor(database.url, {}, { waitForGo: true })
  const instances = await startInstances(t, outbox, [config, config, config, config])
  t.equal(instances.length, 4, 'all four listen')

  const journal = JSON.parse(readFileSync(fileURLToPath(new URL('../migrations/postgres/meta/_journal.json', import.meta.url)), 'utf8')) as { entries: unknown[] }
  const applied = await database.query('SELECT hash FROM drizzle.__securelogin_migrations')
  t.equal(applied.length, journal.entries.length, 'each migration was applied once')

  for (const [i, instance] of instances.entries()) {
    const verifier = instances[(i + 1) % 4] as Instance
    const other = instances[(i + 2) % 4] as Instance
    const session = await signIn(instance, verifier, outbox, freshPhone())
    t.equal(outcome(await other.me(session.access_token)), '200', `a code sent by ${instance.name} signs in through ${verifier.name}; ${other.name} accepts the token`)
  }

  // Half by IPC, half by SIGTERM: both end in a clean close.
  await stopAll(t, instances.slice(0, 2))
  await stopAll(t, instances.slice(2), { how: 'SIGTERM' })
})

// ---------------------------------------------------------------------------------------------
// SQLite

t.test('SQLite: two processes on one database file (WAL) share codes, refresh rotation and rate limits', async (t) => {
  const file = join(t.testdir(), 'shared.db')
  const outbox = createOutbox()
  const config = configFor(file, {
    otp: { resendInterval: '1ms', maxAttempts: 10 },
    rateLimit: { sendsPerPhone: { max: 3, window: '1h' }, failedVerifiesPerPhone: { max: 3, window: '1d' } },
  }, { waitForGo: true })
  // Both migrate the empty file at the same moment: the migration's BEGIN IMMEDIATE makes them take turns.
  const [a, b] = await startInstances(t, outbox, [config, config], ['A', 'B']) as [Instance, Instance]

  await t.test('a code works once, across both', async (t) => {
    const phone = freshPhone()
    await a.auth('/register', { phone })
    t.equal(outcome(await a.auth('/login', { phone })), '200')
    const sms = await outbox.next(phone)
    t.equal(sms.from, 'A')
    t.equal(outcome(await b.auth('/verify_sms', { phone, token: sms.code })), '200', 'B accepts the code A sent')
    t.equal(outcome(await a.auth('/verify_sms', { phone, token: sms.code })), '401 SECURELOGIN_OTP_EXPIRED', 'A refuses it once used')

    await raceOneCode(t, a, b, outbox, 3)
  })

  await t.test('a refresh token rotated on one is refused on the other', async (t) => {
    const session = await signIn(a, a, outbox, freshPhone())
    const rotated = await a.auth('/refresh', undefined, { token: session.refresh_token })
    t.equal(outcome(rotated), '200')
    t.equal(outcome(await b.auth('/refresh', undefined, { token: session.refresh_token })), '409 SECURELOGIN_REFRESH_SUPERSEDED', 'B refuses the replaced token')
    t.equal(outcome(await b.auth('/refresh', undefined, { token: rotated.body.refresh_token })), '200', 'and takes the new one')

    const racing = await signIn(b, b, outbox, freshPhone())
    const answers = await Promise.all([a, b].map((instance) => instance.auth('/refresh', undefined, { token: racing.refresh_token })))
    t.same(answers.map(outcome).sort(), ['200', '409 SECURELOGIN_REFRESH_SUPERSEDED'], 'of two concurrent refreshes with one token, one rotates')
  })

  await t.test('rate limits count across both', async (t) => {
    const phone = freshPhone()
    await b.auth('/register', { phone })
    t.same(await inTurn(a, b, 5, (instance) => instance.auth('/login', { phone })),
      ['A 200', 'B 200', 'A 200', 'B 429 SECURELOGIN_RATE_LIMITED', 'A 429 SECURELOGIN_RATE_LIMITED'], 'sendsPerPhone')

    const locked = freshPhone()
    await a.auth('/register', { phone: locked })
    t.equal(outcome(await a.auth('/login', { phone: locked })), '200')
    const { code } = await outbox.next(locked)
    t.same(await inTurn(a, b, 4, (instance) => instance.auth('/verify_sms', { phone: locked, token: wrongCode(code) })),
      ['A 401 SECURELOGIN_OTP_INVALID', 'B 401 SECURELOGIN_OTP_INVALID', 'A 401 SECURELOGIN_OTP_INVALID', 'B 429 SECURELOGIN_PHONE_LOCKED'], 'failedVerifiesPerPhone')
    t.equal(outcome(await a.auth('/verify_sms', { phone: locked, token: code })), '429 SECURELOGIN_PHONE_LOCKED', 'the locked number is refused the right code')
  })

  await stopAll(t, [a, b])
})
