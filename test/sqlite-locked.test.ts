import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { buildApp, createTestDatabase, post, signIn, testPhone } from './helper.js'

// better-sqlite3 waits for a file another connection holds locked synchronously, up to its busy
// timeout, then fails with SQLITE_BUSY: the request is answered 503 SECURELOGIN_UNAVAILABLE with
// Retry-After (docs/errors.md), like a PostgreSQL outage, never 500, and nothing is half-written.
t.test('sqlite: while another connection holds the write lock, each sign-in step answers 503 with Retry-After, and changes nothing', async (t) => {
  const file = join(t.testdir(), 'locked.db')
  const database = await createTestDatabase(t, 'sqlite', file)
  const test = await buildApp(t, 'sqlite', {}, database)
  const session = await signIn(test, testPhone())
  const registered = testPhone()
  t.equal((await post(test.app, '/register', { phone: registered })).statusCode, 201)
  const tables = async () => JSON.stringify(await Promise.all(['securelogin_users', 'securelogin_otp_challenges', 'securelogin_sessions', 'securelogin_rate_limits'].map((table) => database.query(`SELECT * FROM ${table} ORDER BY 1`))))
  const before = await tables()

  await database.query('PRAGMA busy_timeout = 50')
  const holder = new Database(file)
  holder.exec('BEGIN IMMEDIATE')
  try {
    const answers = [
      await post(test.app, '/register', { phone: testPhone() }),
      await post(test.app, '/login', { phone: registered }),
      await post(test.app, '/verify_sms', { phone: registered, token: '123456' }),
      await post(test.app, '/refresh', undefined, session.refresh_token),
    ]
    for (const [index, answer] of answers.entries()) {
      const step = ['register', 'login', 'verify_sms', 'refresh'][index]
      t.equal(answer.statusCode, 503, `${step}: 503`)
      t.equal(answer.json().code, 'SECURELOGIN_UNAVAILABLE', `${step}: SECURELOGIN_UNAVAILABLE`)
      t.equal(answer.headers['retry-after'], '2', `${step}: Retry-After`)
    }
  } finally {
    holder.exec('ROLLBACK')
    holder.close()
  }
  t.equal(await tables(), before, 'nothing was written')
  t.equal((await post(test.app, '/login', { phone: registered })).statusCode, 200, 'served again once the lock is gone')
})
