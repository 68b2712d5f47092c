import { STATUS_CODES } from 'node:http'
import fc from 'fast-check'
import Fastify, { type InjectOptions, type LightMyRequestResponse } from 'fastify'
import t from 'tap'
import secureLogin, { type SecureLoginOptions } from '../lib/index.js'
import { createOutbox, createTestDatabase, dialects, TEST_SECRET, type Dialect, type Outbox, type TestDatabase } from './helper.js'

// Property-based proof of three promises for every route, over thousands of generated bodies,
// headers and tokens: (1) no 5xx; (2) every refusal is exactly the documented error shape, its
// statusCode the HTTP status and its code SECURELOGIN_* or FST_*; (3) a refused request changes no
// row of users, codes or sessions. Rate-limit counters may move (counting refused requests is their
// job), so that table is not compared. Two refusals change a row by design, and only in the way
// docs/errors.md describes: a wrong code spends one attempt of its challenge, and a refresh token
// reused after its grace period ends its session.
//
// The app runs twice per dialect: with limits out of the way and cookies on (each request refused,
// or not, for what it is), and with every default. Requests come half wild (any JSON or bytes, any
// content type, garbage headers) and half well-formed, holding real values of a signed-in fixture
// (tokens, numbers, the open code), each maybe altered by one character. The fixture is made anew
// whenever a request spent part of it. The tables are compared through a fingerprint after every
// request, and row by row when it moved.
//
// FC_SEED replays a run (the seed is printed with any failure); FC_NUM_RUNS sets the runs per route
// of the first configuration (default 500) and scales the other's.

const SEED = process.env.FC_SEED === undefined ? 0x5ec0de : Number(process.env.FC_SEED)
const RUN_SCALE = process.env.FC_NUM_RUNS === undefined ? 1 : Number(process.env.FC_NUM_RUNS) / 500
if (!Number.isInteger(SEED) || !Number.isFinite(RUN_SCALE) || RUN_SCALE <= 0) throw new TypeError('FC_SEED must be an integer and FC_NUM_RUNS a positive number')

// ---------------------------------------------------------------- the app under test

type Config = 'generous limits, cookies on' | 'default limits'

const CONFIGS: Record<Config, { runs: number, maxRuns?: number, options: Partial<SecureLoginOptions> }> = {
  // Limits far away, so that each request is refused (or not) for what it is; cookies on, so that
  // the Origin, X-SecureLogin-Transport and Cookie headers reach code that reads them.
  'generous limits, cookies on': {
    runs: 500,
    options: {
      rateLimit: {
        ...Object.fromEntries(['sendsPerPhone', 'sendsPerIp', 'sendsPerPrefix', 'sendsGlobal', 'verifiesPerIp', 'registersPerIp'].map((name) => [name, { max: 1_000_000, window: '1h' }])),
        // The most allowed (NIST SP 800-63B); every fixture's numbers are fresh, so it locks no fixture.
        failedVerifiesPerPhone: { max: 100, window: '1h' },
      },
      cookies: { accessToken: 'cookie', allowedOrigins: ['https://app.example'] },
      // The shortest grace: the fixture's previous refresh token soon counts as copied, and its use ends the session.
      sessions: { reuseGrace: '1s' },
    },
  },
  // What an app gets by default: most requests soon meet a limit, which must refuse them cleanly too.
  // Capped: past ~1500 runs per route the fixtures' codes alone would spend the default app-wide
  // SMS budget (sendsGlobal, 1000 an hour), whose 503 is then the documented answer.
  'default limits': { runs: 150, maxRuns: 1000, options: {} },
}

const TABLES = { securelogin_users: 'id', securelogin_otp_challenges: 'phone', securelogin_sessions: 'id' } as const
type Table = keyof typeof TABLES
type Row = Record<string, unknown>
type Snapshot = Record<Table, Map<string, Row>>

interface Fixture {
  /** A signed-in user: a fresh access token, a refreshed (not fresh) one, the current and the previous refresh token. */
  phoneA: string
  useridA: string
  accessA: string
  accessA2: string
  refreshA: string
  refreshA0: string
  /** Another signed-in user, whose tokens are someone else's to user A. */
  phoneB: string
  accessB: string
  refreshB: string
  /** The tokens of a session that has ended (logout). */
  accessEnded: string
  refreshEnded: string
  /** A number with an account and an open code. */
  pendingPhone: string
  pendingUserid: string
  pendingCode: string
}
type RefName = keyof Fixture

interface Env {
  dialect: Dialect
  app: ReturnType<typeof Fastify>
  outbox: Outbox
  database: TestDatabase
  fixture: Fixture
  /** The fixture lost something (a session ended, the code was used): make a new one before the next request. */
  stale: boolean
  before: Snapshot
  /** The fingerprint of `before`. */
  fingerprint: string
  /** Error-level log lines of the current request (the plugin logs a 500's cause there). */
  logs: string[]
  fixtures: number
}

async function buildEnv (tap: Parameters<typeof createTestDatabase>[0], dialect: Dialect, config: Config): Promise<Env> {
  const database = await createTestDatabase(tap, dialect)
  const outbox = createOutbox()
  const logs: string[] = []
  const app = Fastify({ pluginTimeout: 60_000, logger: { level: 'error', stream: { write: (line: string) => { logs.push(line) } } } })
  database.beforeClose.push(() => app.close())
  await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET }, ...CONFIGS[config].options })
  app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
  app.get('/fresh', { preHandler: app.authenticateFresh }, async (request) => request.user)
  await app.ready()
  const env = { dialect, app, outbox, database, logs, fixtures: 0, stale: false } as unknown as Env
  env.fixture = await makeFixture(env)
  env.before = await snapshot(env)
  env.fingerprint = await fingerprint(env)
  return env
}

/**
 * A cheap summary of the three tables: equal summaries, equal rows. PostgreSQL hashes them itself
 * (one round trip instead of every row parsed); SQLite is in-process, and its rows are the summary.
 */
async function fingerprint (env: Env): Promise<string> {
  if (env.dialect === 'sqlite') return JSON.stringify(await Promise.all(Object.keys(TABLES).map((table) => env.database.query(`SELECT * FROM ${table}`))))
  const hashes = Object.keys(TABLES).map((table) => `(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ${table} t)`)
  const [row] = await env.database.query(`SELECT ${hashes.join(" || ',' || ")} AS fingerprint`)
  return String(row?.fingerprint)
}

async function snapshot (env: Env): Promise<Snapshot> {
  const out = {} as Snapshot
  for (const [table, key] of Object.entries(TABLES) as Array<[Table, string]>) {
    const rows = await env.database.query(`SELECT * FROM ${table}`)
    out[table] = new Map(rows.map((row) => [String(row[key]), row]))
  }
  return out
}

interface Change { table: Table, key: string, before: Row | undefined, after: Row | undefined }

function changes (before: Snapshot, after: Snapshot): Change[] {
  const out: Change[] = []
  for (const table of Object.keys(TABLES) as Table[]) {
    for (const key of new Set([...before[table].keys(), ...after[table].keys()])) {
      const [was, is] = [before[table].get(key), after[table].get(key)]
      if (JSON.stringify(was) !== JSON.stringify(is)) out.push({ table, key, before: was, after: is })
    }
  }
  return out
}

/** The columns in which two versions of a row differ. */
function changedColumns (change: Change): string[] {
  const columns = new Set([...Object.keys(change.before ?? {}), ...Object.keys(change.after ?? {})])
  return [...columns].filter((column) => JSON.stringify(change.before?.[column]) !== JSON.stringify(change.after?.[column]))
}

/** The two refusals that change a row by design, each in exactly one documented way. */
function changeIsDocumented (url: string, code: unknown, diff: Change[]): boolean {
  if (diff.length !== 1) return false
  const [change] = diff as [Change]
  if (change.before === undefined || change.after === undefined) return false
  const columns = changedColumns(change)
  // verify_sms: every check spends one attempt of the number's code, before anything is compared.
  if (url.endsWith('/verify_sms') && code === 'SECURELOGIN_OTP_INVALID') {
    return change.table === 'securelogin_otp_challenges' && columns.join() === 'attempts' && Number(change.after.attempts) === Number(change.before.attempts) + 1
  }
  // refresh: a refresh token older than the grace period ends its session (copied-token detection).
  if (url.endsWith('/refresh') && code === 'SECURELOGIN_SESSION_REVOKED') {
    return change.table === 'securelogin_sessions' && columns.sort().join() === 'revoked_at,revoked_reason' &&
      change.before.revoked_at === null && change.after.revoked_reason === 'refresh_token_reuse'
  }
  return false
}

// ---------------------------------------------------------------- the fixture

const AREA_CODES = ['415', '212', '646', '303', '617', '312', '206', '305', '404', '512']
let phoneCounter = 0
/**
 * A fresh valid US number for the fixture, never one of the generators' (whose 555 lines start
 * with 0), and spread over prefixes so that the default per-prefix limit never refuses a fixture.
 */
function fixturePhone (): string {
  const k = phoneCounter++
  return `+1${AREA_CODES[k % 10]}555${1 + Math.floor(k / 10) % 9}${String(Math.floor(k / 90) % 1000).padStart(3, '0')}`
}

let ipCounter = 0
/** Each fixture signs in from its own address: the per-IP limits are the generated requests' to meet. */
function fixtureAddress (): string {
  ipCounter += 1
  return `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`
}

async function makeFixture (env: Env): Promise<Fixture> {
  env.fixtures += 1
  const remoteAddress = fixtureAddress()
  const send = async (url: string, payload?: object, token?: string): Promise<Record<string, string>> => {
    const res = await env.app.inject({
      method: 'POST', url: `/api/auth${url}`, payload, remoteAddress, headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })
    if (res.statusCode >= 300) throw new Error(`fixture: ${url} answered ${res.statusCode} ${res.body}`)
    return res.json()
  }
  /** A number with an account and a code just sent: a fresh one, as generated requests may have reached the next. */
  const withCode = async (): Promise<{ phone: string, userid: string }> => {
    for (let attempt = 0; ; attempt++) {
      const phone = fixturePhone()
      const { userid } = await send('/register', { phone })
      const login = await env.app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone }, remoteAddress })
      if (login.statusCode === 200) return { phone, userid: userid as string }
      if (attempt === 5) throw new Error(`fixture: /login answered ${login.statusCode} ${login.body}`)
    }
  }
  const signIn = async (): Promise<Record<string, string>> => {
    const { phone } = await withCode()
    return { ...await send('/verify_sms', { phone, token: env.outbox.lastCodeFor(phone) }), phone }
  }
  const a = await signIn()
  const rotated = await send('/refresh', undefined, a.refresh_token)
  if (env.fixtures % 2 === 0) {
    // Every other fixture's rotation is a minute old: its previous refresh token is then past the
    // grace period, and using it ends the session (SECURELOGIN_SESSION_REVOKED) instead of a 409.
    const aMinuteAgo = Date.now() - 60_000
    const sid = JSON.parse(Buffer.from(a.access_token!.split('.')[1]!, 'base64url').toString()).sid as string
    await env.database.query('UPDATE securelogin_sessions SET refreshed_at = $1 WHERE id = $2', [env.dialect === 'sqlite' ? aMinuteAgo : new Date(aMinuteAgo), sid])
  }
  const b = await signIn()
  const ended = await signIn()
  await send('/logout', {}, ended.access_token)
  const pending = await withCode()
  return {
    phoneA: a.phone as string,
    useridA: a.userid as string,
    accessA: a.access_token as string,
    accessA2: rotated.access_token as string,
    refreshA: rotated.refresh_token as string,
    refreshA0: a.refresh_token as string,
    phoneB: b.phone as string,
    accessB: b.access_token as string,
    refreshB: b.refresh_token as string,
    accessEnded: ended.access_token as string,
    refreshEnded: ended.refresh_token as string,
    pendingPhone: pending.phone,
    pendingUserid: pending.userid,
    pendingCode: env.outbox.lastCodeFor(pending.phone),
  }
}

// ---------------------------------------------------------------- generated values

/** A value of the fixture (a real token, number, code or id), optionally altered by one character. */
class Ref {
  constructor (readonly name: RefName, readonly edit?: { op: 'replace' | 'insert' | 'delete', at: number, char: string }) {}

  resolve (fixture: Fixture): string {
    const value = fixture[this.name]
    if (this.edit === undefined) return value
    const { op, at, char } = this.edit
    const i = value.length === 0 ? 0 : at % value.length
    return value.slice(0, i) + (op === 'delete' ? '' : char) + value.slice(op === 'insert' ? i : i + 1)
  }

  [fc.toStringMethod] (): string {
    return this.edit === undefined ? `<${this.name}>` : `<${this.name} ${this.edit.op} ${JSON.stringify(this.edit.char)} at ${this.edit.at}>`
  }
}

/** A header value made of text and fixture values. */
type Text = Array<string | Ref>

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const TOKEN_NAMES: RefName[] = ['accessA', 'accessA2', 'refreshA', 'refreshA0', 'accessB', 'refreshB', 'accessEnded', 'refreshEnded']

const editOf = fc.record({
  op: fc.constantFrom('replace' as const, 'insert' as const, 'delete' as const),
  at: fc.nat({ max: 2000 }),
  char: fc.oneof(fc.constantFrom(...B64URL), fc.constantFrom('.', '=', '+', '/', ' ', '%', '\t', 'é')),
})
const refTo = (names: RefName[]) => fc.tuple(fc.constantFrom(...names), fc.option(editOf, { nil: undefined, freq: 2 })).map(([name, edit]) => new Ref(name, edit))

/** Characters an HTTP header value can carry (visible ASCII, space, tab, obs-text). */
const headerText = fc.string({
  unit: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) }, { weight: 1, arbitrary: fc.constantFrom(0x09, 0xa0, 0xe9, 0xff) }).map((c) => String.fromCharCode(c)),
  maxLength: 80,
})
const b64Segment = fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 120 })
const jwtShaped = fc.tuple(b64Segment, b64Segment, b64Segment).map((parts) => parts.join('.'))
const tokenValue: fc.Arbitrary<string | Ref> = fc.oneof({ weight: 4, arbitrary: refTo(TOKEN_NAMES) }, jwtShaped, headerText)

const controlChar = fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c))
const trickyChar = fc.constantFrom('\u0000', '\u007f', '\u0085', '\u00a0', '\u200b', '\u200c', '\u200d', '\u202e', '\u2028', '\ufeff', '\ud800', '\udfff', '\ue000', '\uffff', '😀', '👩‍💻', 'é', 'é', 'ß', 'İ')
const longString = fc.tuple(fc.constantFrom('1', 'x', '+1', 'é', '😀', '\u0000', ' '), fc.integer({ min: 30, max: 20_000 })).map(([unit, n]) => unit.repeat(Math.ceil(n / unit.length)))
const numberAsString = fc.oneof(fc.integer(), fc.double(), fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n })).map(String)
const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.oneof(controlChar, trickyChar, fc.constantFrom('0', '1', '+', ' ')), maxLength: 20 }),
  longString,
  numberAsString,
)
const scalar = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null))

const TRICKY_PHONES = [
  '+14155550123', '+1 (415) 555-0123', '+1-415-555-0123', '1 415 555 0123', '4155550123', '0014155550123', '+1 415 555 0123 ext. 9',
  'tel:+1-415-555-0123', '+1415555012３', '+١٤١٥٥٥٥٠١٢٣', '＋14155550123', '+14155550123\u0000', ' +14155550123 ', '+1415555O123',
  '+33612345678', '+8613800138000', '+4915123456789', '+819012345678', '+5511912345678', '+61412345678',
  '+870123456789', '+88216', '+80012345678', '+9791234', '+18005550123', '+19005550123', '+441234567890', '+447700900123',
  '+999999999999', '+1', '+', '++14155550123', '+0', '+14155550123;ext=1', '+1415555012345678901234567890',
]
const phoneLike = fc.oneof(
  fc.constantFrom(...TRICKY_PHONES),
  fc.stringMatching(/^\+?[0-9][0-9 ().-]{2,18}$/),
  // Valid numbers that can open a code: a generated request that succeeds is allowed, it must just be clean.
  fc.tuple(fc.constantFrom(...AREA_CODES), fc.integer({ min: 0, max: 999 })).map(([area, n]) => `+1${area}5550${String(n).padStart(3, '0')}`),
)

/** What each real field holds: plausible values (some of them real ones) and anything else. */
function field (plausible: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: plausible },
    { weight: 3, arbitrary: weirdString },
    { weight: 1, arbitrary: scalar },
    { weight: 1, arbitrary: fc.array(fc.oneof(plausible, scalar), { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  )
}

const PLAUSIBLE = {
  phone: fc.oneof({ weight: 2, arbitrary: refTo(['phoneA', 'phoneB', 'pendingPhone']) }, { weight: 3, arbitrary: phoneLike }),
  token: fc.oneof(fc.stringMatching(/^[0-9]{4,10}$/), refTo(['pendingCode']), fc.constantFrom('１２３４５６', '١٢٣٤٥٦', '123456 ', '00000', '0x1E240')),
  userid: fc.oneof(fc.uuid(), fc.uuid().map((id) => id.toUpperCase()), refTo(['useridA', 'pendingUserid']), fc.constantFrom('00000000-0000-0000-0000-000000000000')),
  username: fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 70 }), fc.constantFrom('Ada', ' Ada ', 'e\u0301', 'a\u200db', '👩‍💻', '\u202eadA', 'ﷺ'.repeat(20))),
  refresh_token: fc.oneof({ weight: 3, arbitrary: refTo(TOKEN_NAMES) }, jwtShaped),
  auth_type: fc.constantFrom('PHONE', 'PHONE', 'phone', 'PASSWORD', '', ' PHONE'),
}
type FieldName = keyof typeof PLAUSIBLE

/** What the generators need to know of a route. */
interface Route {
  method: 'GET' | 'POST'
  urls: string[]
  /** The body's fields, and which of them the schema requires. */
  own: FieldName[]
  required: FieldName[]
  /** Out of 10: how often a wild request has a body. */
  bodyWeight: number
  /** Well-formed bodies whose fields belong together (a number and its code), to reach past the first refusal. */
  coherent?: fc.Arbitrary<Record<string, unknown>>
}
const FIELDS = Object.fromEntries(Object.entries(PLAUSIBLE).map(([name, plausible]) => [name, field(plausible)])) as Record<FieldName, fc.Arbitrary<unknown>>

/** An object with the route's own fields more often than not, and any of the others. */
function bodyObject (own: FieldName[], required: FieldName[]): fc.Arbitrary<Record<string, unknown>> {
  const pick = (names: FieldName[]) => Object.fromEntries(names.map((name) => [name, FIELDS[name]])) as Record<FieldName, fc.Arbitrary<unknown>>
  return fc.tuple(
    fc.oneof(
      { weight: 3, arbitrary: fc.record(pick(own), { requiredKeys: required as never[] }) },
      { weight: 1, arbitrary: fc.record(pick(Object.keys(FIELDS) as FieldName[]), { requiredKeys: [] }) },
    ),
    fc.option(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }), { nil: undefined, freq: 5 }),
  ).map(([fields, extra]) => ({ ...extra, ...fields }))
}

const JSON_TYPES = ['application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=iso-8859-1', 'application/json ; charset=utf-16', 'application/json, text/plain', 'application/json; boundary=x']
const OTHER_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----x', 'application/octet-stream', 'application/xml', 'application/vnd.api+json', 'application/jsonp', 'application/*', '*/*', '', 'json']
const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  { weight: 2, arbitrary: fc.constantFrom(...JSON_TYPES) },
  { weight: 2, arbitrary: fc.constantFrom(...OTHER_TYPES) },
  { weight: 1, arbitrary: headerText },
)

const RAW_JSONISH = [
  '{"phone": "+14155550123",}', '{phone: "+14155550123"}', '{"phone": NaN}', '\ufeff{"phone":"+14155550123"}', '{"phone":"+14155550123"}garbage',
  '{"__proto__": {"admin": true}}', '{"constructor": {"prototype": {"admin": true}}}', '{"phone":"+1","phone":"+14155550123"}',
  '[]', '""', 'null', '0', '1e400', '-', '{"phone": "\\ud800"}', '{"phone": "\\u0000"}', ' ', '\n\t', '{}', '{"token": 1e400}',
  '{"phone": 123456789012345678901234567890}', '/*c*/{}', "{'phone': '+14155550123'}",
]
type BodySpec =
  | { kind: 'none' }
  | { kind: 'json', value: unknown, contentType: string }
  | { kind: 'raw', payload: string | Uint8Array, contentType: string | undefined }

function bodySpec (route: Route): fc.Arbitrary<BodySpec> {
  const { own, required, bodyWeight } = route
  const object = bodyObject(own, required)
  return fc.oneof(
    { weight: 10 - bodyWeight, arbitrary: fc.constant({ kind: 'none' as const }) },
    {
      weight: bodyWeight * 6,
      arbitrary: fc.record({
        kind: fc.constant('json' as const),
        value: fc.oneof({ weight: 8, arbitrary: object }, fc.jsonValue({ maxDepth: 4 }), fc.array(object, { maxLength: 2 })),
        contentType,
      }),
    },
    {
      weight: bodyWeight,
      arbitrary: fc.record({
        kind: fc.constant('raw' as const),
        payload: fc.oneof(
          fc.constantFrom(...RAW_JSONISH),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.uint8Array({ maxLength: 200 }),
          // Valid JSON cut short, and nesting deep enough to trouble a recursive parser or scanner.
          fc.tuple(fc.jsonValue(), fc.nat()).map(([value, n]) => { const text = JSON.stringify(value) ?? ''; return text.slice(0, n % (text.length + 1)) }),
          fc.tuple(fc.constantFrom('[', '{"a":', '{"constructor":', '{"__proto__":'), fc.integer({ min: 1, max: 4000 })).map(([open, n]) =>
            `{"phone":${open.repeat(n)}1${(open === '[' ? ']' : '}').repeat(n)}}`),
        ),
        contentType: fc.option(contentType, { nil: undefined, freq: 4 }),
      }),
    },
  )
}

interface RequestSpec {
  body: BodySpec
  authorization: Text | undefined
  cookie: Text | undefined
  origin: string | undefined
  transport: string | undefined
  acceptLanguage: string | undefined
  query: string
}

const authorization = fc.option(fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom('Bearer ', 'Bearer ', 'Bearer ', 'bearer ', 'BEARER   ', 'Bearer', 'Bearer\t', 'Basic ', 'Token ', ''), tokenValue, fc.constantFrom('', '', '', ' ', '  ', ' x', ',', '.')).map((parts): Text => parts) },
  { weight: 1, arbitrary: jwtShaped.map((token): Text => [`Bearer ${token}`]) },
  { weight: 1, arbitrary: headerText.map((value): Text => [value]) },
), { nil: undefined, freq: 6 })

const cookieName = fc.constantFrom('securelogin_refresh', 'securelogin_access', 'securelogin_refresh', 'securelogin_access', 'Securelogin_refresh', ' securelogin_access', 'securelogin_refresh ')
const cookie = fc.option(fc.array(fc.oneof(
  { weight: 4, arbitrary: fc.tuple(cookieName, tokenValue).map(([name, value]): Text => [name, '=', value]) },
  { weight: 1, arbitrary: headerText.map((value): Text => [value]) },
), { minLength: 1, maxLength: 3 }).map((parts): Text => parts.flatMap((part, i) => i === 0 ? part : ['; ', ...part])), { nil: undefined, freq: 2 })

const ORIGINS = ['http://localhost:80', 'http://localhost', 'https://app.example', 'https://app.example.', 'https://APP.example', 'https://evil.example', 'null', '']
const TRANSPORTS = ['cookie', 'cookie', 'Cookie', 'COOKIE', ' cookie', 'cookie, cookie', 'bearer', '']
const QUERIES = ['', '', '', '', '?phone=%2B14155550123', '?a=%zz', '?__proto__[admin]=1', '?token=1&token=2', '?%', '?access_token=x']

const origin = fc.option(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...ORIGINS) }, fc.webUrl(), headerText), { nil: undefined, freq: 2 })
const transport = fc.option(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...TRANSPORTS) }, headerText), { nil: undefined, freq: 2 })
const acceptLanguage = fc.option(fc.oneof(fc.constantFrom('fr-CA', 'en', '*', 'x-klingon', 'de-DE;q=0.5, en;q=0.9', ''), headerText), { nil: undefined, freq: 3 })

/**
 * Half wild requests, half well-formed ones (a JSON object of the route's fields, a Bearer token)
 * holding real or nearly real values: those get past parsing and validation into the handlers.
 */
function requestSpec (route: Route): fc.Arbitrary<RequestSpec> {
  const wild = fc.record({ body: bodySpec(route), authorization, cookie, origin, transport, acceptLanguage, query: fc.constantFrom(...QUERIES) })
  const fields = Object.fromEntries(route.own.map((name) => [name, PLAUSIBLE[name]])) as Record<FieldName, fc.Arbitrary<unknown>>
  const wellFormed = fc.record({
    body: route.method === 'GET'
      ? fc.constant({ kind: 'none' as const })
      : fc.record({ kind: fc.constant('json' as const), value: route.coherent ?? fc.record(fields, { requiredKeys: route.required as never[] }), contentType: fc.constant('application/json') }),
    authorization: fc.option(fc.tuple(fc.constant('Bearer '), refTo(TOKEN_NAMES)).map((parts): Text => parts), { nil: undefined, freq: 8 }),
    cookie,
    origin,
    transport,
    acceptLanguage: fc.constant(undefined),
    query: fc.constant(''),
  })
  return fc.oneof(wild, wellFormed)
}

// ---------------------------------------------------------------- the routes

const ROUTES: Record<string, Route> = {
  register: { method: 'POST', urls: ['/api/auth/register'], own: ['phone', 'username', 'auth_type'], required: ['phone'], bodyWeight: 9 },
  login: { method: 'POST', urls: ['/api/auth/login'], own: ['phone', 'auth_type'], required: ['phone'], bodyWeight: 9 },
  login_sms: { method: 'POST', urls: ['/api/auth/login_sms'], own: ['phone', 'auth_type'], required: ['phone'], bodyWeight: 9 },
  verify_sms: {
    method: 'POST',
    urls: ['/api/auth/verify_sms'],
    own: ['phone', 'token', 'userid'],
    required: ['phone', 'token'],
    bodyWeight: 9,
    coherent: fc.oneof(
      fc.record({ phone: PLAUSIBLE.phone, token: PLAUSIBLE.token, userid: PLAUSIBLE.userid }, { requiredKeys: ['phone', 'token'] }),
      fc.record({ phone: refTo(['pendingPhone']), token: refTo(['pendingCode']), userid: refTo(['pendingUserid', 'useridA']) }, { requiredKeys: ['phone', 'token'] }),
    ),
  },
  refresh: { method: 'POST', urls: ['/api/auth/refresh'], own: ['refresh_token'], required: [], bodyWeight: 5 },
  logout: { method: 'POST', urls: ['/api/auth/logout'], own: ['refresh_token'], required: [], bodyWeight: 7 },
  logout_all_other_sessions: { method: 'POST', urls: ['/api/auth/logout_all_other_sessions'], own: ['refresh_token'], required: [], bodyWeight: 7 },
  jwks: { method: 'GET', urls: ['/api/auth/.well-known/jwks.json'], own: [], required: [], bodyWeight: 1 },
  'host route (authenticate, authenticateFresh)': { method: 'GET', urls: ['/me', '/fresh'], own: [], required: [], bodyWeight: 1 },
}

function resolveValue (value: unknown, fixture: Fixture): unknown {
  if (value instanceof Ref) return value.resolve(fixture)
  if (Array.isArray(value)) return value.map((item) => resolveValue(item, fixture))
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveValue(item, fixture)]))
  return value
}

function resolveText (text: Text, fixture: Fixture): string {
  return text.map((part) => typeof part === 'string' ? part : part.resolve(fixture)).join('')
}

function toInject (method: Route['method'], url: string, spec: RequestSpec, fixture: Fixture): InjectOptions {
  const headers: Record<string, string> = {}
  if (spec.authorization !== undefined) headers.authorization = resolveText(spec.authorization, fixture)
  if (spec.cookie !== undefined) headers.cookie = resolveText(spec.cookie, fixture)
  if (spec.origin !== undefined) headers.origin = spec.origin
  if (spec.transport !== undefined) headers['x-securelogin-transport'] = spec.transport
  if (spec.acceptLanguage !== undefined) headers['accept-language'] = spec.acceptLanguage
  let payload: string | Buffer | undefined
  if (spec.body.kind === 'json') {
    payload = JSON.stringify(resolveValue(spec.body.value, fixture))
    headers['content-type'] = spec.body.contentType
  } else if (spec.body.kind === 'raw') {
    payload = typeof spec.body.payload === 'string' ? spec.body.payload : Buffer.from(spec.body.payload)
    if (spec.body.contentType !== undefined) headers['content-type'] = spec.body.contentType
  }
  return { method, url: `${url}${spec.query}`, headers, ...(payload === undefined ? {} : { payload }) }
}

// ---------------------------------------------------------------- the property

function shapeProblems (res: LightMyRequestResponse): string[] {
  let body: unknown
  try {
    body = res.json()
  } catch {
    return ['the body is not JSON']
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return ['the body is not an object']
  const b = body as Record<string, unknown>
  const problems: string[] = []
  const keys = Object.keys(b).sort().join()
  if (keys !== 'code,error,message,statusCode' && keys !== 'attempts_left,code,error,message,statusCode') problems.push(`keys are ${keys}, not statusCode, code, error, message (and attempts_left)`)
  if (b.statusCode !== res.statusCode) problems.push(`statusCode ${String(b.statusCode)} is not the HTTP status ${res.statusCode}`)
  if (typeof b.code !== 'string' || !/^(SECURELOGIN|FST)_[A-Z0-9_]+$/.test(b.code)) problems.push(`code ${JSON.stringify(b.code)} is not SECURELOGIN_* or FST_*`)
  if (b.error !== STATUS_CODES[res.statusCode]) problems.push(`error ${JSON.stringify(b.error)} is not the status text ${JSON.stringify(STATUS_CODES[res.statusCode])}`)
  if (typeof b.message !== 'string') problems.push('message is not a string')
  if ('attempts_left' in b && (b.code !== 'SECURELOGIN_OTP_INVALID' || !Number.isInteger(b.attempts_left) || (b.attempts_left as number) < 0)) {
    problems.push(`attempts_left ${JSON.stringify(b.attempts_left)} with ${String(b.code)}`)
  }
  if (!String(res.headers['content-type']).startsWith('application/json')) problems.push(`content-type ${String(res.headers['content-type'])}`)
  return problems
}

function clip (value: unknown, max = 400): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : Buffer.isBuffer(value) ? `<${value.length} bytes ${JSON.stringify(value.toString('latin1').slice(0, max))}>` : JSON.stringify(value)
  return text === undefined ? String(text) : text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text
}

/** A log line of the app, shortened to its message and error with the first frame in lib/. */
function logged (line: string): string {
  try {
    const { msg, err } = JSON.parse(line) as { msg?: string, err?: { type?: string, message?: string, stack?: string } }
    const frame = err?.stack?.split('\n').find((l) => l.includes('/lib/'))?.trim()
    return `log: ${msg ?? ''}${err === undefined ? '' : ` (${err.type ?? 'Error'}: ${err.message ?? ''}${frame === undefined ? '' : ` ${frame}`})`}`
  } catch {
    return `log: ${clip(line)}`
  }
}

/** Which codes each route answered, for the run's summary. */
type Tally = Map<string, number>

/** Sends one generated request and checks the three promises; throws what it found. */
async function check (env: Env, method: Route['method'], url: string, spec: RequestSpec, tally: Tally): Promise<void> {
  if (env.stale) {
    env.fixture = await makeFixture(env)
    env.before = await snapshot(env)
    env.fingerprint = await fingerprint(env)
    env.stale = false
  }
  env.logs.length = 0
  const request = toInject(method, url, spec, env.fixture)
  const res = await env.app.inject(request)
  const print = await fingerprint(env)
  let diff: Change[] = []
  if (print !== env.fingerprint) {
    const after = await snapshot(env)
    diff = changes(env.before, after)
    env.before = after
    env.fingerprint = print
  }
  // Sessions ended or codes spent or replaced: the fixture's tokens and code may be dead.
  const fixturePhones = new Set([env.fixture.phoneA, env.fixture.phoneB, env.fixture.pendingPhone])
  if (diff.some((change) => change.table === 'securelogin_sessions' || (change.table === 'securelogin_otp_challenges' && fixturePhones.has(change.key)))) env.stale = true

  let code = String(res.statusCode)
  const problems: string[] = []
  if (res.statusCode >= 500) problems.push(`answered ${res.statusCode}`)
  if (res.statusCode >= 300) {
    const body = (() => { try { return res.json() as Record<string, unknown> } catch { return {} } })()
    code = `${res.statusCode} ${String(body.code)}`
    problems.push(...shapeProblems(res))
    if (diff.length > 0 && !changeIsDocumented(url, body.code, diff)) {
      problems.push(`a refused request changed rows: ${diff.map((change) => `${change.table} ${change.key} ${change.before === undefined ? 'inserted' : change.after === undefined ? 'deleted' : `changed (${changedColumns(change).join(', ')})`}`).join('; ')}`)
    }
  }
  tally.set(code, (tally.get(code) ?? 0) + 1)
  if (problems.length > 0) {
    throw new Error([
      ...problems.map((problem) => `- ${problem}`),
      `request: ${request.method} ${request.url} headers ${clip(request.headers)} payload ${clip(request.payload)}`,
      `response: ${res.statusCode} ${clip(res.body)}`,
      ...env.logs.slice(-3).map(logged),
    ].join('\n'))
  }
}

let seedOffset = 0

for (const dialect of dialects) {
  for (const config of Object.keys(CONFIGS) as Config[]) {
    t.test(`${dialect}, ${config}: no 5xx, one error shape, refusals change no row`, async (t) => {
      const started = Date.now()
      const env = await buildEnv(t, dialect, config)
      const { runs, maxRuns } = CONFIGS[config]
      const numRuns = Math.max(1, Math.min(maxRuns ?? Infinity, Math.round(runs * RUN_SCALE)))
      let total = 0
      for (const [name, route] of Object.entries(ROUTES)) {
        const seed = SEED + seedOffset++
        const tally: Tally = new Map()
        const property = fc.asyncProperty(fc.constantFrom(...route.urls), requestSpec(route), async (url, spec) => {
          await check(env, route.method, url, spec, tally)
        })
        try {
          await fc.assert(property, { seed, numRuns })
          t.pass(`${name}: ${numRuns} requests`)
        } catch (error) {
          // fast-check reports the counterexample; what check() found is the error's cause.
          const { message, cause } = error as Error & { cause?: unknown }
          t.fail(`${name}: ${cause instanceof Error ? (cause.message.split('\n')[0] as string).replace(/^- /, '') : 'the property failed'}`, {
            found: cause instanceof Error ? cause.message : String(cause),
            fastCheck: message,
            replay: `FC_SEED=${SEED}${process.env.FC_NUM_RUNS === undefined ? '' : ` FC_NUM_RUNS=${process.env.FC_NUM_RUNS}`} (this property's own seed: ${seed})`,
          })
        }
        total += [...tally.values()].reduce((sum, n) => sum + n, 0)
        t.comment(`${name}: ${[...tally].sort((a, b) => b[1] - a[1]).map(([answer, n]) => `${answer} ×${n}`).join(', ')}`)
      }
      t.comment(`${total} requests (shrinking included), ${env.fixtures} fixtures, ${((Date.now() - started) / 1000).toFixed(1)} s`)
    })
  }
}
