// The sign-in of app.ts on PostgreSQL (node-postgres), in a scratch database of the server that
// SECURELOGIN_TEST_POSTGRES_URL names (the check runs it whenever that is set, and CI sets it). The
// plugin's PostgreSQL statements use what not every drizzle-orm has (an INSERT or UPDATE in a WITH
// came in 0.39), which only a sign-in on PostgreSQL with the app's own drizzle-orm shows.
import { randomBytes } from 'node:crypto'
import { drizzle } from 'drizzle-orm/node-postgres'
import Fastify from 'fastify'
import pg from 'pg'
import secureLogin from 'fastify-securelogin'
import type { RefreshResponse, VerifySmsResponse } from 'fastify-securelogin/schemas'

const url = process.env.SECURELOGIN_TEST_POSTGRES_URL
if (url === undefined || url === '') throw new Error('SECURELOGIN_TEST_POSTGRES_URL is not set')
const PHONE = '+14155550124'

const name = `securelogin_pack_${randomBytes(6).toString('hex')}`
const admin = new pg.Client({ connectionString: url })
await admin.connect()
await admin.query(`CREATE DATABASE ${name}`)
const scratch = new URL(url)
scratch.pathname = `/${name}`
const pool = new pg.Pool({ connectionString: scratch.toString() })

let code: string | undefined
const app = Fastify()
try {
  await app.register(secureLogin, {
    db: drizzle(pool),
    sms: { name: 'capture', send: async (message) => { code = message.code } },
    jwt: { secret: randomBytes(48).toString('base64') },
  })
  app.get('/me', { preHandler: app.authenticate }, async (request) => ({ userid: request.user.userid }))
  const post = async <T = unknown>(path: string, payload: object | undefined, status = 200, token?: string): Promise<T> => {
    const response = await app.inject({ method: 'POST', url: `/api/auth${path}`, payload, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    if (response.statusCode !== status) throw new Error(`POST ${path}: ${response.statusCode} ${response.body}`)
    return response.json<T>()
  }
  await post('/register', { phone: PHONE }, 201)
  await post('/login', { phone: PHONE })
  if (code === undefined) throw new Error('the sms provider got no code')
  const signedIn = await post<VerifySmsResponse>('/verify_sms', { phone: PHONE, token: code })
  const refreshed = await post<RefreshResponse>('/refresh', undefined, 200, signedIn.refresh_token)
  const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${refreshed.access_token}` } })
  if (me.statusCode !== 200 || me.json<{ userid: string }>().userid !== signedIn.userid) throw new Error(`GET /me: ${me.statusCode} ${me.body}`)
  console.log(`signed in on PostgreSQL as ${signedIn.userid}`)
} finally {
  await app.close()
  await pool.end()
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()
}
