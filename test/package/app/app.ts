// A host app as a user writes it, built against the packed tarball: it type-checks under --strict
// without skipLibCheck (and without twilio installed), then signs in end to end with app.inject.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { eq } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import Fastify from 'fastify'
import secureLogin, { consoleSms, startSqliteCheckpoints, twilioVerify, type SmsProvider } from 'fastify-securelogin'
import type { tables as postgresTables } from 'fastify-securelogin/postgres'
import type { PasswordRegisterResponse, VerifySmsResponse } from 'fastify-securelogin/schemas'
import { sessions, users } from 'fastify-securelogin/sqlite'

// The PostgreSQL tables' types hold without pg installed.
export type PostgresUser = typeof postgresTables.users.$inferSelect

const PHONE = '+14155550123'

const db = drizzle(new Database(':memory:'))
let code: string | undefined
// What a developer starts with (it runs only with NODE_ENV=development or test); this app reads
// the code from its own provider instead.
export const developmentSms = (): SmsProvider => consoleSms()

const app = Fastify()
await app.register(secureLogin, {
  db,
  sms: { name: 'capture', send: async (m) => { code = m.code } },
  jwt: { secret: randomBytes(48).toString('base64') },
  // Password accounts hash with @node-rs/argon2, a native dependency: it must install with the package.
  password: { enabled: true },
})

app.get('/me', { preHandler: app.authenticate }, async (request) => {
  // The plugin's tables in the app's own Drizzle query: one drizzle-orm, shared with the plugin.
  const [row] = await db.select({ phone: users.phone }).from(users).where(eq(users.id, request.user.userid))
  const open = await db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, request.user.userid))
  return { userid: request.user.userid, phone: row?.phone, sessions: open.length }
})

async function post<T = unknown> (url: string, payload: object, status = 200): Promise<T> {
  const response = await app.inject({ method: 'POST', url, payload })
  if (response.statusCode !== status) throw new Error(`POST ${url}: ${response.statusCode} ${response.body}`)
  return response.json<T>()
}

try {
  await post('/api/auth/register', { phone: PHONE }, 201)
  await post('/api/auth/login', { phone: PHONE })
  if (code === undefined) throw new Error('the sms provider got no code')
  const signedIn = await post<VerifySmsResponse>('/api/auth/verify_sms', { phone: PHONE, token: code })
  const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${signedIn.access_token}` } })
  const body = me.json<{ userid: string, phone: string, sessions: number }>()
  if (me.statusCode !== 200 || body.userid !== signedIn.userid || body.phone !== PHONE || body.sessions !== 1) {
    throw new Error(`GET /me: ${me.statusCode} ${me.body}`)
  }
  const account = await post<PasswordRegisterResponse>('/api/auth/register', { auth_type: 'PASSWORD', email: 'ada@example.com', password: 'correct horse battery staple' }, 201)
  const byPassword = await post<VerifySmsResponse>('/api/auth/login', { auth_type: 'PASSWORD', email: ' ada@EXAMPLE.com', password: 'correct horse battery staple' })
  const passwordMe = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${byPassword.access_token}` } })
  if (byPassword.userid !== account.userid || passwordMe.json<{ phone: string | null }>().phone !== null) throw new Error(`password sign-in: ${passwordMe.body}`)
  const anonymous = await app.inject({ method: 'GET', url: '/me' })
  if (anonymous.statusCode !== 401) throw new Error(`GET /me without a token: ${anonymous.statusCode}, expected 401`)
  // twilio is an optional peer, not installed here: the import above worked, and a Twilio provider
  // says what is missing when it is made.
  const sid = (prefix: string) => prefix + '0'.repeat(32)
  let missing = ''
  try { twilioVerify({ accountSid: sid('AC'), authToken: 'token', serviceSid: sid('VA') }) } catch (error) { missing = String(error) }
  if (!missing.includes('needs the "twilio" package')) throw new Error(`twilioVerify() without twilio: ${missing || 'no error'}`)
  // Checkpoints in a worker thread: it must find the app's better-sqlite3 from the installed package.
  const dir = mkdtempSync(join(tmpdir(), 'securelogin-scratch-'))
  const file = new Database(join(dir, 'app.db'))
  file.pragma('journal_mode = WAL')
  const checkpointErrors: string[] = []
  const checkpoints = startSqliteCheckpoints(file, { intervalMs: 20, onError: (message) => checkpointErrors.push(message) })
  file.exec('CREATE TABLE filler (body TEXT)')
  const fill = file.prepare('INSERT INTO filler VALUES (?)')
  for (let i = 0; i < 200; i++) fill.run('x'.repeat(1024))
  const until = Date.now() + 10_000
  while (statSync(join(dir, 'app.db')).size < 200 * 1024 && checkpointErrors.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
  await checkpoints.stop()
  file.close()
  const checkpointed = statSync(join(dir, 'app.db')).size >= 200 * 1024
  rmSync(dir, { recursive: true, force: true })
  if (!checkpointed || checkpointErrors.length > 0) throw new Error(`startSqliteCheckpoints: ${checkpointErrors.join('; ') || 'the worker checkpointed nothing'}`)
  console.log(`signed in as ${body.userid}`)
} finally {
  await app.close()
}
