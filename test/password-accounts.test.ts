import { hash } from '@node-rs/argon2'
import { pbkdf2Sync, randomUUID, scryptSync } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import t from 'tap'
import secureLogin, { migrate } from '../lib/index.js'
import { ARGON2_PARAMETERS, hashPassword } from '../lib/passwords/hash.js'
import { createStore } from '../lib/store/index.js'
import { buildApp, createOutbox, createTestDatabase, dialects, lockWaited, post, signIn, TEST_SECRET, testPhone, type TestApp, type TestDatabase } from './helper.js'

// Email-and-password accounts (`password.enabled`): /register, /login and /password with
// `auth_type: "PASSWORD"`, on both databases. Each rule is tried the way someone would break it.

const PASSWORD = 'correct horse battery staple'
let emailCounter = 0
/** A distinct address per call, with upper case on both sides of the @. */
function testEmail (): string {
  emailCounter += 1
  return `Ada.${process.pid}.${emailCounter}@Example.COM`
}

const enabled = { password: { enabled: true } }

function register (app: FastifyInstance, body: object, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: '/api/auth/register', payload: { auth_type: 'PASSWORD', ...body }, headers })
}

function login (app: FastifyInstance, email: string, password: string, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: '/api/auth/login', payload: { auth_type: 'PASSWORD', email, password }, headers })
}

function changePassword (app: FastifyInstance, token: string, body: object) {
  return app.inject({ method: 'POST', url: '/api/auth/password', payload: body, headers: { authorization: `Bearer ${token}` } })
}

function me (app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })
}

async function count (test: TestApp, table: string): Promise<number> {
  return Number((await test.database.query(`SELECT count(*) AS n FROM ${table}`))[0]!.n)
}

async function storedHash (test: TestApp, userid: string): Promise<string | null> {
  return (await test.database.query('SELECT password_hash FROM securelogin_users WHERE id = $1', [userid]))[0]!.password_hash as string | null
}

/** Gives the account a new Argon2id hash of `password`, as another request would. */
async function setPasswordHash (test: TestApp, userid: string, password: string): Promise<void> {
  await test.database.query('UPDATE securelogin_users SET password_hash = $1 WHERE id = $2', [await hashPassword(password), userid])
}

async function liveSessions (test: TestApp, userid: string): Promise<number> {
  return Number((await test.database.query('SELECT count(*) AS n FROM securelogin_sessions WHERE user_id = $1 AND revoked_at IS NULL', [userid]))[0]!.n)
}

/** A Werkzeug hash as flask-securelogin stored it (a low PBKDF2 count keeps the test quick). */
function werkzeugPbkdf2 (password: string, salt = 'fLaSkSaLt1234567', iterations = 1000): string {
  return `pbkdf2:sha256:${iterations}$${salt}$${pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('hex')}`
}

function werkzeugScrypt (password: string, salt = 'sCrYpTsAlT123456'): string {
  return `scrypt:16384:8:1$${salt}$${scryptSync(password, salt, 64, { N: 16384, r: 8, p: 1, maxmem: 132 * 16384 * 8 }).toString('hex')}`
}

/** A user row as the Flask import in docs/migrating-from-flask.md writes it. */
async function importFlaskUser (test: TestApp, dialect: string, args: { id: string, email: string, passwordHash: string, phone?: string }) {
  await test.database.query(
    "INSERT INTO securelogin_users (id, phone, email, password_hash, username, auth_type, status, phone_verified_at, created_at) VALUES ($1, $2, $3, $4, NULL, 'PASSWORD', 'active', NULL, $5)",
    [args.id, args.phone ?? null, args.email, args.passwordHash, dialect === 'sqlite' ? Date.now() : new Date()],
  )
}

for (const dialect of dialects) {
  t.test(`${dialect}: while password accounts are off, auth_type PASSWORD answers its own 400 and changes nothing`, async (t) => {
    const test = await buildApp(t, dialect)
    const users = await count(test, 'securelogin_users')
    for (const url of ['/register', '/login', '/login_sms']) {
      // Even a body that would not pass the schema: the server's choice is what the client must learn.
      for (const body of [{ auth_type: 'PASSWORD', email: testEmail(), password: PASSWORD }, { auth_type: 'PASSWORD' }]) {
        const refused = await post(test.app, url, body)
        t.equal(refused.statusCode, 400, `${url} ${JSON.stringify(body)}`)
        t.equal(refused.json().code, 'SECURELOGIN_PASSWORD_DISABLED')
      }
    }
    const unknownType = await post(test.app, '/register', { auth_type: 'EMAIL', email: testEmail(), password: PASSWORD })
    t.equal(unknownType.statusCode, 400)
    t.equal(unknownType.json().code, 'SECURELOGIN_BAD_REQUEST')
    t.match(unknownType.json().message, /auth_type/, 'the message names the field')
    t.equal(await count(test, 'securelogin_users'), users, 'no account was created')

    const phone = testPhone()
    const explicit = await post(test.app, '/register', { auth_type: 'PHONE', phone })
    t.equal(explicit.statusCode, 201, 'auth_type "PHONE" is a phone registration')
    const { access_token: token } = await signIn(test, phone)
    const change = await changePassword(test.app, token, { newpassword: PASSWORD, email: testEmail() })
    t.equal(change.statusCode, 400)
    t.equal(change.json().code, 'SECURELOGIN_PASSWORD_DISABLED')
    t.equal((await me(test.app, token)).json().auth_types.join(), 'PHONE', 'no password was added')
  })

  t.test(`${dialect}: register creates an email-and-password account and signs it in`, async (t) => {
    const test = await buildApp(t, dialect, enabled)
    const email = testEmail()
    const created = await register(test.app, { email: `  ${email} `, password: PASSWORD, username: 'Ada' })
    t.equal(created.statusCode, 201)
    const body = created.json()
    t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'message', 'refresh_token', 'token_type', 'userid'])
    t.equal(body.message, 'registered successfully')

    const fresh = await test.app.inject({ method: 'GET', url: '/fresh', headers: { authorization: `Bearer ${body.access_token}` } })
    t.equal(fresh.statusCode, 200, 'the access token is fresh')
    t.same(fresh.json(), { userid: body.userid, phone: null, sid: fresh.json().sid, fresh: true }, 'request.user has no number')
    const account = (await me(test.app, body.access_token)).json()
    t.match(account, { userid: body.userid, phone: null, username: 'Ada', email: email.replace('Example.COM', 'example.com'), auth_types: ['PASSWORD'], phone_verified_at: null })

    const hash = await storedHash(test, body.userid)
    t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'stored as Argon2id with the documented parameters')
    t.notOk(hash!.includes(PASSWORD))
    const [row] = await test.database.query('SELECT auth_type FROM securelogin_users WHERE id = $1', [body.userid])
    t.equal(row!.auth_type, 'PASSWORD', 'the Flask schema\'s column says how the account registered')

    const refreshed = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${body.refresh_token}` } })
    t.equal(refreshed.statusCode, 200, 'the refresh token works')

    const again = await register(test.app, { email: email.replace('Ada', 'ada'), password: 'another password here' })
    t.equal(again.statusCode, 201, 'the part before the @ keeps its case: another address')
    const taken = await register(test.app, { email: email.replace('Example.COM', 'EXAMPLE.com'), password: 'another password here' })
    t.equal(taken.statusCode, 409, 'the same address with another case of domain is taken')
    t.equal(taken.json().code, 'SECURELOGIN_EMAIL_TAKEN')
    t.equal(await storedHash(test, body.userid), hash, 'the refused registration changed nothing')
  })

  t.test(`${dialect}: a new password must be 8 to 128 characters after NFKC, and not breached`, async (t) => {
    const breached = new Set(['password1234'])
    const seen: string[] = []
    const test = await buildApp(t, dialect, { password: { enabled: true, isBreached: async (password) => { seen.push(password); return breached.has(password) } } })
    const users = await count(test, 'securelogin_users')
    for (const [password, why] of [['seven77', 'too short'], ['x'.repeat(129), 'too long'], ['\uD800abcdefgh', 'a lone surrogate']] as const) {
      const refused = await register(test.app, { email: testEmail(), password })
      t.equal(refused.statusCode, 400, why)
      t.equal(refused.json().code, 'SECURELOGIN_PASSWORD_POLICY', why)
    }
    const refused = await register(test.app, { email: testEmail(), password: 'password1234' })
    t.equal(refused.statusCode, 400)
    t.equal(refused.json().code, 'SECURELOGIN_PASSWORD_BREACHED')
    t.equal(await count(test, 'securelogin_users'), users, 'no refused password made an account')
    const badEmail = await register(test.app, { email: 'not an email', password: PASSWORD })
    t.equal(badEmail.json().code, 'SECURELOGIN_EMAIL_INVALID')

    // Eight characters once normalised: four full-width letters and four emoji count as eight.
    const email = testEmail()
    const wide = 'ｐａｓｓ😀😀😀😀'
    t.equal((await register(test.app, { email, password: wide })).statusCode, 201, 'code points are counted, not UTF-16 units')
    t.ok(seen.includes('pass😀😀😀😀'), 'the breach check sees the password as it is hashed (NFKC)')
    t.equal((await login(test.app, email, 'pass😀😀😀😀')).statusCode, 200, 'the same password typed on another keyboard signs in')
    t.equal((await login(test.app, email, wide)).statusCode, 200)
  })

  t.test(`${dialect}: login answers a wrong password, an unknown email and an account without a password alike`, async (t) => {
    const test = await buildApp(t, dialect, enabled)
    const email = testEmail()
    const { userid } = (await register(test.app, { email, password: PASSWORD })).json()

    const signedIn = await login(test.app, email.replace('Example.COM', 'EXAMPLE.com'), PASSWORD)
    t.equal(signedIn.statusCode, 200, 'the domain is compared without case')
    t.same(Object.keys(signedIn.json()).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type', 'userid'])
    t.equal(signedIn.json().userid, userid)
    const fresh = await test.app.inject({ method: 'GET', url: '/fresh', headers: { authorization: `Bearer ${signedIn.json().access_token}` } })
    t.equal(fresh.statusCode, 200, 'a password sign-in is fresh')
    t.equal((await login(test.app, email, PASSWORD, {})).statusCode, 200, 'again: a right password spends no budget')

    // A phone account that has an email but no password (an import, or a row written by hand).
    const phone = testPhone()
    const phoneAccount = await signIn(test, phone)
    const phoneEmail = testEmail()
    await test.database.query('UPDATE securelogin_users SET email = $1 WHERE id = $2', [phoneEmail.replace('Example.COM', 'example.com'), phoneAccount.userid])

    const answers = [
      await login(test.app, email, `${PASSWORD}!`),
      await login(test.app, testEmail(), PASSWORD),
      await login(test.app, phoneEmail, PASSWORD),
      await login(test.app, phoneEmail, ''.padEnd(8, 'x')),
    ]
    for (const answer of answers) {
      t.equal(answer.statusCode, 401)
      t.same(answer.json(), answers[0]!.json(), 'the same code and message')
    }
    t.equal(answers[0]!.json().code, 'SECURELOGIN_CREDENTIALS_INVALID')
    t.same(Object.keys(answers[0]!.headers).filter((name) => name === 'retry-after'), [], 'no hint either')

    const shortImported = await login(test.app, email, 'short')
    t.equal(shortImported.statusCode, 401, 'no length rule at login: a short password is just wrong')
  })

  t.test(`${dialect}: wrong passwords lock the email, counted before comparing, and concurrent guesses cannot exceed the budget`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { failedLoginsPerAccount: { max: 3, window: '1h' }, loginsPerIp: { max: 1000, window: '1h' } } })
    const email = testEmail()
    await register(test.app, { email, password: PASSWORD })
    for (let i = 0; i < 5; i++) t.equal((await login(test.app, email, PASSWORD)).statusCode, 200, 'right passwords do not count')

    const guesses = await Promise.all(Array.from({ length: 10 }, (_, i) => login(test.app, email, `wrong guess ${i}`)))
    const statuses = guesses.map((answer) => answer.statusCode).sort()
    t.same(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429], 'exactly the budget was compared')
    const locked = await login(test.app, email, PASSWORD)
    t.equal(locked.statusCode, 429, 'locked even for the right password')
    t.equal(locked.json().code, 'SECURELOGIN_LOGIN_LOCKED')
    t.ok(Number(locked.headers['retry-after']) > 3500, 'until the oldest failure is a window old')

    const other = testEmail()
    await register(test.app, { email: other, password: PASSWORD })
    t.equal((await login(test.app, other, PASSWORD)).statusCode, 200, 'another email is not locked')

    const unknown = testEmail()
    for (let i = 0; i < 3; i++) t.equal((await login(test.app, unknown, PASSWORD)).statusCode, 401)
    t.equal((await login(test.app, unknown, PASSWORD)).json().code, 'SECURELOGIN_LOGIN_LOCKED', 'an email without an account locks the same way')
    const keys = (await test.database.query("SELECT key FROM securelogin_rate_limits WHERE key LIKE 'login:fail:%'")).map((row) => row.key as string)
    t.ok(keys.length >= 6 && keys.every((key) => !key.toLowerCase().includes('example')), 'the counters hold no email address')
  })

  t.test(`${dialect}: loginsPerIp limits password sign-ins from one client`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { loginsPerIp: { max: 2, window: '1h' } } })
    const email = testEmail()
    await register(test.app, { email, password: PASSWORD })
    t.equal((await login(test.app, email, PASSWORD)).statusCode, 200)
    t.equal((await login(test.app, testEmail(), PASSWORD)).statusCode, 401)
    const limited = await login(test.app, email, PASSWORD)
    t.equal(limited.statusCode, 429)
    t.equal(limited.json().code, 'SECURELOGIN_RATE_LIMITED')
    t.equal((await login(test.app, email, PASSWORD, { 'x-forwarded-for': '198.51.100.7' })).statusCode, 429, 'Fastify does not trust the header here: the same client')
  })

  t.test(`${dialect}: a disabled account is refused only after its password proved right; a deleted one frees its email`, async (t) => {
    const test = await buildApp(t, dialect, enabled)
    const email = testEmail()
    const { userid, access_token: token } = (await register(test.app, { email, password: PASSWORD })).json()
    await test.app.secureLogin.setStatus(userid, 'disabled')
    t.equal((await login(test.app, email, 'wrong password')).json().code, 'SECURELOGIN_CREDENTIALS_INVALID')
    const disabled = await login(test.app, email, PASSWORD)
    t.equal(disabled.statusCode, 403)
    t.equal(disabled.json().code, 'SECURELOGIN_ACCOUNT_INACTIVE')
    await test.app.secureLogin.setStatus(userid, 'active')
    const { access_token: fresh } = (await login(test.app, email, PASSWORD)).json()
    t.equal((await test.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: { authorization: `Bearer ${fresh}` } })).statusCode, 200)
    t.equal((await me(test.app, token)).statusCode, 401, 'its tokens stop working')
    t.equal((await login(test.app, email, PASSWORD)).json().code, 'SECURELOGIN_CREDENTIALS_INVALID', 'a deleted account cannot sign in')
    const again = await register(test.app, { email, password: PASSWORD })
    t.equal(again.statusCode, 201, 'the email can register again')
    t.not(again.json().userid, userid, 'as a new account')
  })

  t.test(`${dialect}: accounts imported from flask-securelogin sign in with their Werkzeug hashes, re-hashed to Argon2id`, async (t) => {
    const test = await buildApp(t, dialect, enabled)
    for (const [kind, make] of [['pbkdf2', werkzeugPbkdf2], ['scrypt', werkzeugScrypt]] as const) {
      const id = crypto.randomUUID()
      const email = testEmail().replace('Example.COM', 'example.com')
      // Flask had no length rule and hashed the password as typed.
      const typed = kind === 'pbkdf2' ? 'short' : 'ｆｕｌｌ wïdth'
      const werkzeug = make(typed)
      await importFlaskUser(test, dialect, { id, email, passwordHash: werkzeug })
      t.equal((await login(test.app, email, 'wrong')).statusCode, 401, `${kind}: a wrong password is refused`)
      t.equal(await storedHash(test, id), werkzeug, `${kind}: and changes nothing`)
      if (kind === 'scrypt') t.equal((await login(test.app, email, 'full wïdth')).statusCode, 401, 'compared as typed, as Flask did (no NFKC)')
      const signedIn = await login(test.app, email, typed)
      t.equal(signedIn.statusCode, 200, `${kind}: the right password signs in`)
      t.equal(signedIn.json().userid, id, 'with the imported id')
      const rehashed = await storedHash(test, id)
      t.match(rehashed, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, `${kind}: re-hashed with Argon2id`)
      t.equal((await login(test.app, email, typed)).statusCode, 200, `${kind}: and still signs in`)
      t.equal(await storedHash(test, id), rehashed, 'an up-to-date hash is not re-hashed again')
    }
  })

  t.test(`${dialect}: /password changes the password with the current one and ends every other session`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { failedLoginsPerAccount: { max: 3, window: '1h' } } })
    const email = testEmail()
    const first = (await register(test.app, { email, password: PASSWORD })).json()
    const second = (await login(test.app, email, PASSWORD)).json()

    const refreshed = (await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${first.refresh_token}` } })).json()
    const stale = await changePassword(test.app, refreshed.access_token, { oldpassword: PASSWORD, newpassword: 'a brand new passphrase' })
    t.equal(stale.statusCode, 401)
    t.equal(stale.json().code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED')

    const missing = await changePassword(test.app, second.access_token, { newpassword: 'a brand new passphrase' })
    t.equal(missing.statusCode, 400, 'the current password is required')
    t.match(missing.json().message, /oldpassword is required/, 'and the message names it')
    const wrong = await changePassword(test.app, second.access_token, { oldpassword: 'not it at all', newpassword: 'a brand new passphrase' })
    t.equal(wrong.statusCode, 403)
    t.equal(wrong.json().code, 'SECURELOGIN_PASSWORD_INCORRECT')
    const tooShort = await changePassword(test.app, second.access_token, { oldpassword: PASSWORD, newpassword: 'short' })
    t.equal(tooShort.json().code, 'SECURELOGIN_PASSWORD_POLICY')

    const changed = await changePassword(test.app, second.access_token, { oldpassword: PASSWORD, newpassword: 'a brand new passphrase' })
    t.equal(changed.statusCode, 200)
    t.same(changed.json(), { message: 'changed password successfully' })
    t.equal((await me(test.app, second.access_token)).statusCode, 200, 'the caller\'s session goes on')
    t.equal((await me(test.app, refreshed.access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'another session\'s access token stops working')
    t.equal((await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${refreshed.refresh_token}` } })).json().code, 'SECURELOGIN_SESSION_REVOKED', 'and its refresh token')
    t.equal((await login(test.app, email, PASSWORD)).json().code, 'SECURELOGIN_CREDENTIALS_INVALID', 'the old password no longer signs in')
    t.equal((await login(test.app, email, 'a brand new passphrase')).statusCode, 200, 'the new one does')
    const ended = await test.database.query('SELECT revoked_reason FROM securelogin_sessions WHERE user_id = $1 AND revoked_at IS NOT NULL', [first.userid])
    t.same(ended.map((session) => session.revoked_reason), ['password_changed'], 'the ended session says why it ended')

    // The wrong current password, the old password at login and this one spend the budget of 3.
    t.equal((await changePassword(test.app, second.access_token, { oldpassword: PASSWORD, newpassword: 'yet another passphrase' })).statusCode, 403)
    const locked = await changePassword(test.app, second.access_token, { oldpassword: 'a brand new passphrase', newpassword: 'yet another passphrase' })
    t.equal(locked.statusCode, 429, 'a stolen fresh token cannot guess the password either')
    t.equal(locked.json().code, 'SECURELOGIN_LOGIN_LOCKED')
  })

  t.test(`${dialect}: a phone account adds a password and an email; a password account adds a number`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, otp: { resendInterval: 0.001 } })
    const phone = testPhone()
    const viaPhone = await signIn(test, phone)
    const other = testEmail()
    await register(test.app, { email: other, password: PASSWORD })

    const noEmail = await changePassword(test.app, viaPhone.access_token, { newpassword: PASSWORD })
    t.equal(noEmail.statusCode, 400, 'an email is needed to sign in with it')
    t.match(noEmail.json().message, /email is required/)
    const noCurrent = await changePassword(test.app, viaPhone.access_token, { oldpassword: 'anything', newpassword: PASSWORD, email: testEmail() })
    t.equal(noCurrent.statusCode, 400, 'there is no current password to give')
    t.match(noCurrent.json().message, /oldpassword must be absent/)
    const taken = await changePassword(test.app, viaPhone.access_token, { newpassword: PASSWORD, email: other })
    t.equal(taken.statusCode, 409)
    t.equal(taken.json().code, 'SECURELOGIN_EMAIL_TAKEN')
    t.equal(await storedHash(test, viaPhone.userid), null, 'the refused change stored nothing')

    const email = testEmail()
    t.equal((await changePassword(test.app, viaPhone.access_token, { newpassword: PASSWORD, email })).statusCode, 200)
    t.match((await me(test.app, viaPhone.access_token)).json(), { phone, auth_types: ['PHONE', 'PASSWORD'] })
    const byPassword = await login(test.app, email, PASSWORD)
    t.equal(byPassword.statusCode, 200)
    t.equal(byPassword.json().userid, viaPhone.userid, 'the same account')
    const user = (await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${byPassword.json().access_token}` } })).json()
    t.equal(user.phone, phone, 'its tokens carry its number')

    // Review finding: a stolen fresh token added that password and email. The owner signs in by
    // SMS and replaces both without knowing them; the thief's password and session are gone.
    const owner = await signIn(test, phone)
    const ownEmail = testEmail()
    const retaken = await changePassword(test.app, owner.access_token, { newpassword: 'the owner\'s own passphrase', email: ownEmail })
    t.equal(retaken.statusCode, 200, 'an account with a number needs no current password')
    t.equal((await login(test.app, email, PASSWORD)).json().code, 'SECURELOGIN_CREDENTIALS_INVALID', 'the thief\'s email and password no longer sign in')
    t.equal((await login(test.app, ownEmail, 'the owner\'s own passphrase')).statusCode, 200)
    t.equal((await me(test.app, byPassword.json().access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'the thief\'s session ended')
    const wrongGiven = await changePassword(test.app, owner.access_token, { oldpassword: 'not the current one', newpassword: 'something else entirely' })
    t.equal(wrongGiven.statusCode, 403, 'a current password that is given is still checked')

    const passwordOnly = (await register(test.app, { email: testEmail(), password: PASSWORD })).json()
    const newPhone = testPhone()
    t.equal((await post(test.app, '/phone', { phone: newPhone }, passwordOnly.access_token)).statusCode, 200)
    const verified = await post(test.app, '/phone/verify', { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) }, passwordOnly.access_token)
    t.equal(verified.statusCode, 200)
    t.match((await me(test.app, verified.json().access_token)).json(), { phone: newPhone, auth_types: ['PHONE', 'PASSWORD'] })
    // The number now signs in by SMS too, into the same account.
    t.equal((await signIn(test, newPhone)).userid, passwordOnly.userid)
  })

  t.test(`${dialect}: a password change racing a sign-in with the old password leaves no session of the old password`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { failedLoginsPerAccount: { max: 100, window: '1h' } } })
    // The change checks the old password and hashes the new one (two Argon2 runs) before it writes;
    // a sign-in that starts in between reads the old hash, checks it, and opens its session after
    // the write. Staggered starts put sign-ins on each side of the write and inside that window.
    for (let round = 0; round < 8; round++) {
      const email = testEmail()
      const oldPassword = `old password ${round}`
      const owner = (await register(test.app, { email, password: oldPassword })).json()
      const [changed, signedIn] = await Promise.all([
        changePassword(test.app, owner.access_token, { oldpassword: oldPassword, newpassword: `new password ${round}` }),
        new Promise((resolve) => setTimeout(resolve, round * 12)).then(() => login(test.app, email, oldPassword)),
      ])
      t.equal(changed.statusCode, 200, `round ${round}: the change went through`)
      if (signedIn.statusCode === 200) {
        const refresh = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${signedIn.json().refresh_token}` } })
        t.equal(refresh.statusCode, 401, `round ${round}: the session the old password opened has ended`)
      } else {
        t.equal(signedIn.json().code, 'SECURELOGIN_CREDENTIALS_INVALID', `round ${round}: or the sign-in was refused`)
      }
      const live = await test.database.query('SELECT count(*) AS n FROM securelogin_sessions WHERE user_id = $1 AND revoked_at IS NULL', [owner.userid])
      t.equal(Number(live[0]!.n), 1, `round ${round}: only the changer's session is live`)
    }
  })

  t.test(`${dialect}: the cookie transport works for password sign-in and registration`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, cookies: { secure: false, allowedOrigins: ['http://app.example.com'] } })
    const headers = { host: 'app.example.com', origin: 'http://app.example.com', 'x-securelogin-transport': 'cookie' }
    const email = testEmail()
    const created = await register(test.app, { email, password: PASSWORD }, headers)
    t.equal(created.statusCode, 201)
    t.notOk('refresh_token' in created.json(), 'the refresh token is not in the body')
    t.ok(created.cookies.some((cookie) => cookie.name.includes('refresh') && cookie.httpOnly === true), 'it is in an HttpOnly cookie')
    const signedIn = await login(test.app, email, PASSWORD, headers)
    t.equal(signedIn.statusCode, 200)
    t.notOk('refresh_token' in signedIn.json())
    const bearer = await login(test.app, email, PASSWORD)
    t.ok(typeof bearer.json().refresh_token === 'string', 'a Bearer client gets both tokens in the body')
    const refused = await login(test.app, email, PASSWORD, { ...headers, origin: 'https://evil.example' })
    t.equal(refused.statusCode, 403, 'another origin may not use the cookies')
    t.equal(refused.json().code, 'SECURELOGIN_COOKIE_ORIGIN_REFUSED')
  })

  t.test(`${dialect}: review findings: an email oracle at /password, a breach hook that answers nonsense, lone surrogates, unlockEmail`, async (t) => {
    const asked: string[] = []
    let answer: unknown = false
    const test = await buildApp(t, dialect, {
      password: { enabled: true, isBreached: async (password) => { asked.push(password); return answer as boolean } },
      rateLimit: { registersPerIp: { max: 5, window: '1h' } },
    })
    // Five registrations an hour from this client: the account below, the phone sign-in's, the
    // refused one, then two questions at /password; the third question is over the limit.
    const taken = testEmail()
    t.equal((await register(test.app, { email: taken, password: PASSWORD })).statusCode, 201)
    const { access_token: token } = await signIn(test, testPhone())

    answer = 'yes'
    const nonsense = await register(test.app, { email: testEmail(), password: 'a fine passphrase' })
    t.equal(nonsense.statusCode, 500, 'a hook that answers neither true nor false fails the request')
    t.equal(Number((await test.database.query("SELECT count(*) AS n FROM securelogin_users WHERE auth_type = 'PASSWORD'"))[0]!.n), 1, 'and stores nothing')
    answer = false

    asked.length = 0
    const codes: string[] = []
    for (let i = 0; i < 3; i++) codes.push((await changePassword(test.app, token, { newpassword: `new passphrase ${i}`, email: taken })).json().code)
    t.same(codes, ['SECURELOGIN_EMAIL_TAKEN', 'SECURELOGIN_EMAIL_TAKEN', 'SECURELOGIN_RATE_LIMITED'], 'asking whether an email has an account is counted like a registration')
    t.same(asked, [], 'nor does a taken email cost a breach check (or a hash)')

    const other = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { failedLoginsPerAccount: { max: 2, window: '1h' } } })
    const email = testEmail()
    t.equal((await register(other.app, { email, password: 'abc\uFFFDdefgh' })).statusCode, 201)
    t.equal((await login(other.app, email, 'abc\uD800defgh')).statusCode, 401, 'a lone surrogate does not stand for U+FFFD')
    t.equal((await login(other.app, email, 'wrong again')).statusCode, 401)
    t.equal((await login(other.app, email, 'abc\uFFFDdefgh')).json().code, 'SECURELOGIN_LOGIN_LOCKED')
    await other.app.secureLogin.unlockEmail(`  ${email.replace('Example.COM', 'example.com')} `)
    const unlocked = await login(other.app, email, 'abc\uFFFDdefgh')
    t.equal(unlocked.statusCode, 200, 'unlockEmail lifts the lock (the address in any form sign-in accepts)')
    const surrogate = await changePassword(other.app, unlocked.json().access_token, { oldpassword: 'abc\uD800defgh', newpassword: 'a new passphrase' })
    t.equal(surrogate.json().code, 'SECURELOGIN_PASSWORD_INCORRECT', 'nor as the current password at /password')
    t.throws(() => other.app.secureLogin.unlockEmail('not an email'), RangeError)
  })

  t.test(`${dialect}: a change of password racing a sign-in that re-hashes the same password succeeds`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { failedLoginsPerAccount: { max: 100, window: '1h' } } })
    // Review finding: the change wrote on condition of the Werkzeug hash it read, which the
    // sign-in had just replaced by Argon2id: the right current password was refused.
    for (let round = 0; round < 8; round++) {
      const email = testEmail().replace('Example.COM', 'example.com')
      const id = crypto.randomUUID()
      await importFlaskUser(test, dialect, { id, email, passwordHash: werkzeugPbkdf2('flask password', `salt${round}`, 20_000) })
      const session = (await login(test.app, email, 'flask password')).json()
      // That sign-in re-hashed it: put the Werkzeug hash back, so that the next one re-hashes again.
      await test.database.query('UPDATE securelogin_users SET password_hash = $1 WHERE id = $2', [werkzeugPbkdf2('flask password', `salt${round}`, 20_000), id])
      const [changed, signedIn] = await Promise.all([
        changePassword(test.app, session.access_token, { oldpassword: 'flask password', newpassword: `new password ${round}` }),
        new Promise((resolve) => setTimeout(resolve, round * 6)).then(() => login(test.app, email, 'flask password')),
      ])
      t.equal(changed.statusCode, 200, `round ${round}: the change went through (${changed.json().code ?? 'ok'}; the sign-in answered ${signedIn.statusCode})`)
      t.equal((await login(test.app, email, `new password ${round}`)).statusCode, 200, `round ${round}: the new password signs in`)
      t.equal((await login(test.app, email, 'flask password')).statusCode, 401, `round ${round}: the old one does not`)
    }
  })

  t.test(`${dialect}: an account that changes between the password check and its new session is read again`, async (t) => {
    // jwt.claims is app code that runs after the password is checked and before the session is
    // written: each call runs the next queued change, as another request could make it then.
    const beforeSession: Array<(userid: string) => Promise<unknown>> = []
    const test = await buildApp(t, dialect, { password: { enabled: true }, jwt: { claims: async ({ userid }) => { await beforeSession.shift()?.(userid); return {} } } })

    const disabledEmail = testEmail()
    beforeSession.push((userid) => test.app.secureLogin.setStatus(userid, 'disabled'))
    const registered = await register(test.app, { email: disabledEmail, password: PASSWORD })
    t.equal(registered.statusCode, 403, 'disabled by the app in the instant after its registration')
    t.equal(registered.json().code, 'SECURELOGIN_ACCOUNT_INACTIVE')
    const [created] = await test.database.query('SELECT id FROM securelogin_users WHERE email = $1', [disabledEmail.replace('Example.COM', 'example.com')])
    t.equal(await liveSessions(test, created!.id as string), 0, 'and it has no session')

    const email = testEmail()
    const { userid } = (await register(test.app, { email, password: PASSWORD })).json()
    beforeSession.push(() => setPasswordHash(test, userid, PASSWORD))
    t.equal((await login(test.app, email, PASSWORD)).statusCode, 200, 'the same password re-hashed meanwhile (another sign-in) is checked again and signs in')

    const before = await liveSessions(test, userid)
    beforeSession.push(() => setPasswordHash(test, userid, 'changed meanwhile'))
    t.equal((await login(test.app, email, PASSWORD)).json().code, 'SECURELOGIN_CREDENTIALS_INVALID', 'a password changed meanwhile is checked again, and is wrong')
    t.equal(await liveSessions(test, userid), before, 'it opened no session')

    await setPasswordHash(test, userid, PASSWORD)
    for (let i = 0; i < 3; i++) beforeSession.push(() => setPasswordHash(test, userid, PASSWORD))
    t.equal((await login(test.app, email, PASSWORD)).json().code, 'SECURELOGIN_CREDENTIALS_INVALID', 'changed before every attempt: refused after the second')
  })

  t.test(`${dialect}: a change of password whose account changes before it is written reads the account again`, async (t) => {
    // password.isBreached runs after the account is read and before the new hash is written: each
    // call runs the next queued change, as another request could make it then.
    const beforeWrite: Array<() => Promise<unknown>> = []
    let breachChecks = 0
    const test = await buildApp(t, dialect, { password: { enabled: true, isBreached: async () => { breachChecks += 1; await beforeWrite.shift()?.(); return false } } })

    const phoneAccount = await signIn(test, testPhone())
    const wanted = testEmail()
    beforeWrite.push(() => register(test.app, { email: wanted, password: PASSWORD }))
    const taken = await changePassword(test.app, phoneAccount.access_token, { newpassword: PASSWORD, email: wanted })
    t.equal(taken.statusCode, 409, 'an email another account took meanwhile is refused by the unique index')
    t.equal(taken.json().code, 'SECURELOGIN_EMAIL_TAKEN')
    t.equal(await storedHash(test, phoneAccount.userid), null, 'and nothing was stored')

    const email = testEmail()
    const { userid, access_token: token } = (await register(test.app, { email, password: PASSWORD })).json()
    breachChecks = 0
    beforeWrite.push(() => setPasswordHash(test, userid, PASSWORD))
    t.equal((await changePassword(test.app, token, { oldpassword: PASSWORD, newpassword: 'second passphrase' })).statusCode, 200, 'the same password re-hashed meanwhile (a sign-in) is checked again and changed')
    t.equal(breachChecks, 1, 'the new password was checked and hashed once')
    t.equal((await login(test.app, email, 'second passphrase')).statusCode, 200)

    beforeWrite.push(() => setPasswordHash(test, userid, 'changed meanwhile'))
    const raced = await changePassword(test.app, token, { oldpassword: 'second passphrase', newpassword: 'third passphrase' })
    t.equal(raced.json().code, 'SECURELOGIN_PASSWORD_INCORRECT', 'another change meanwhile: the current password given is no longer right')
    t.equal((await login(test.app, email, 'changed meanwhile')).statusCode, 200, 'and the other change stands')

    beforeWrite.push(() => test.app.secureLogin.setStatus(userid, 'disabled'))
    const disabled = await changePassword(test.app, token, { oldpassword: 'changed meanwhile', newpassword: 'third passphrase' })
    t.equal(disabled.statusCode, 403, 'disabled meanwhile')
    t.equal(disabled.json().code, 'SECURELOGIN_ACCOUNT_INACTIVE')

    // Only a unique violation means the email is taken: any other failure of the write is a 500.
    if (dialect === 'sqlite') {
      await test.database.query("CREATE TRIGGER refuse_passwords BEFORE UPDATE OF password_hash ON securelogin_users BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    } else {
      await test.database.query("CREATE FUNCTION refuse_passwords() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$")
      await test.database.query('CREATE TRIGGER refuse_passwords BEFORE UPDATE OF password_hash ON securelogin_users FOR EACH ROW EXECUTE FUNCTION refuse_passwords()')
    }
    const failed = await changePassword(test.app, phoneAccount.access_token, { newpassword: PASSWORD, email: testEmail() })
    t.equal(failed.statusCode, 500, 'a failed write is not a taken email')
  })

  t.test(`${dialect}: /password counts against registersPerIp only when it names an email, and the account's own email is not taken`, async (t) => {
    const test = await buildApp(t, dialect, { password: { enabled: true }, rateLimit: { registersPerIp: { max: 2, window: '1h' } } })
    const email = testEmail()
    const { access_token: token } = (await register(test.app, { email, password: PASSWORD })).json()
    t.equal((await changePassword(test.app, token, { oldpassword: PASSWORD, newpassword: 'second passphrase' })).statusCode, 200)
    t.equal((await changePassword(test.app, token, { oldpassword: 'second passphrase', newpassword: 'third passphrase' })).statusCode, 200, 'a change without an email asks nothing about other accounts')
    const own = await changePassword(test.app, token, { oldpassword: 'third passphrase', newpassword: 'fourth passphrase', email: email.replace('Example.COM', 'EXAMPLE.com') })
    t.equal(own.statusCode, 200, 'the account\'s own email, in another case')
    t.equal((await login(test.app, email, 'fourth passphrase')).statusCode, 200)
  })

  t.test(`${dialect}: the store replaces a password hash only from the one given, and opens no session over a change in progress`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const id = randomUUID()
    await store.insertPasswordUser({ id, email: 'store@example.com', passwordHash: 'hash one', username: undefined, now: new Date() })
    t.equal(await store.replacePasswordHash(id, 'not its hash', 'hash two'), false, 'changed meanwhile: nothing replaced')
    t.equal((await store.findUserById(id))!.passwordHash, 'hash one')
    t.equal(await store.replacePasswordHash(id, 'hash one', 'hash two'), true)
    t.equal((await store.findUserById(id))!.passwordHash, 'hash two')

    // The row lock is PostgreSQL's: SQLite runs one writer at a time, and PGlite has one connection.
    if (database.url === undefined) return
    const changer = new pg.Client({ connectionString: database.url })
    await changer.connect()
    database.beforeClose.push(() => changer.end())
    // A change of password in progress (uncommitted) while a sign-in that checked the old hash opens its session.
    await changer.query('BEGIN')
    await changer.query("UPDATE securelogin_users SET password_hash = 'hash three' WHERE id = $1", [id])
    let settled = false
    const opening = store.openPasswordSession({ userId: id, passwordHash: 'hash two', session: { id: randomUUID(), expiresAt: new Date(Date.now() + 60_000), userAgent: null, ip: null }, now: new Date() })
      .finally(() => { settled = true })
    await lockWaited(async (text) => (await changer.query(text)).rows, () => settled)
    await changer.query('COMMIT')
    t.equal(await opening, undefined, 'it waited for the change, then opened nothing for the replaced hash')
  })

  t.test(`${dialect}: a breach hook that answers nonsense is named in the log`, async (t) => {
    // The client gets a bare 500; the app's developer must learn from the log which hook is wrong.
    const database = await createTestDatabase(t, dialect)
    let logged = ''
    const app = Fastify({ logger: { level: 'error', stream: new Writable({ write (chunk, _encoding, done) { logged += String(chunk); done() } }) } })
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET }, password: { enabled: true, isBreached: async () => 'no' as unknown as boolean } })
    await app.ready()
    t.equal((await register(app, { email: testEmail(), password: PASSWORD })).statusCode, 500)
    t.match(logged, /password\.isBreached must return true or false/)
  })

  t.test(`${dialect}: a change of password reads the account twice at most, however often it changes`, async (t) => {
    // Each time the change has read the account (seen at its next statement, which takes a slot
    // of the failure budget), another hash of the same password replaces the account's hash, as
    // concurrent re-hashes would: every write then finds it changed. Five times today's passes:
    // checking the current password leaves the replacement time to land.
    const slow = { ...ARGON2_PARAMETERS, timeCost: 5 * ARGON2_PARAMETERS.timeCost }
    const hashes = [await hash(PASSWORD, slow), await hash(PASSWORD, slow)]
    const watch: { userid?: string, reads: number, justRead: boolean, query?: TestDatabase['query'] } = { reads: 0, justRead: false }
    const database = await createTestDatabase(t, dialect, undefined, {
      logger: {
        logQuery (sql, params) {
          if (watch.userid === undefined) return
          if (sql.includes('from "securelogin_users" where ("securelogin_users"."id" = ') && params[0] === watch.userid) {
            watch.reads += 1
            watch.justRead = true
          } else if (watch.justRead && sql.includes('securelogin_rate_limits')) {
            watch.justRead = false
            setImmediate(() => { void watch.query!('UPDATE securelogin_users SET password_hash = CASE WHEN password_hash = $1 THEN $2 ELSE $3 END WHERE id = $4', [hashes[0], hashes[1], hashes[0], watch.userid]) })
          }
        },
      },
    })
    watch.query = database.query
    const test = await buildApp(t, dialect, enabled, database)
    const email = testEmail()
    const { userid, access_token: token } = (await register(test.app, { email, password: PASSWORD })).json()
    await test.database.query('UPDATE securelogin_users SET password_hash = $1 WHERE id = $2', [hashes[0], userid])
    watch.userid = userid
    const changing = changePassword(test.app, token, { oldpassword: PASSWORD, newpassword: 'never stored' })
    let stopWaiting = () => {}
    const gaveUp = await Promise.race([changing, new Promise<undefined>((resolve) => {
      const timer = setTimeout(resolve, 20_000)
      stopWaiting = () => clearTimeout(timer)
    })])
    stopWaiting()
    watch.userid = undefined
    t.equal(gaveUp?.json().code, 'SECURELOGIN_PASSWORD_INCORRECT', 'it gave up after the second read')
    t.equal(watch.reads, 2)
    t.equal((await login(test.app, email, PASSWORD)).statusCode, 200, 'and the password is unchanged')
  })
}
