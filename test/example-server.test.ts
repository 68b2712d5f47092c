import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { jwtSecretFromEnv } from '../example-server/config.js'
import { smsProviderFromEnv } from '../example-server/sms.js'
import { waitFor } from './helper.js'

t.test('npm run example: the README curl session works end to end on SQLite with the console provider', async (t) => {
  const dir = t.testdir()
  const server = spawn(process.execPath, ['--import', 'tsx', 'example-server/server.ts'], {
    env: { ...process.env, NODE_ENV: 'development', PORT: '0', DATABASE_URL: join(dir, 'example.db'), JWT_SECRET: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => { server.kill('SIGTERM') })
  let output = ''
  server.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  server.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const started = Date.now()
  while (!output.includes('Server listening') && Date.now() - started < 60_000) {
    if (server.exitCode !== null) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(output, /Server listening/, 'the server started')
  // Port 0: the system's choice, read from the log (a port found free beforehand could be taken meanwhile).
  const port = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1]
  t.match(output, /JWT_SECRET is not set: using a development secret/, 'a missing secret in development is a warning')

  const base = `http://127.0.0.1:${port}/api/auth`
  const call = async (path: string, body?: object, token?: string) => {
    const response = await fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body ?? {}),
    })
    return { status: response.status, body: await response.json() as Record<string, string> }
  }
  const phone = '+14155550123'
  const register = await call('/register', { username: 'my test account', auth_type: 'PHONE', phone })
  t.equal(register.status, 201)
  const login = await call('/login', { auth_type: 'PHONE', phone })
  t.same(login, { status: 200, body: { phone, userid: register.body.userid } })
  // The code is sent after /login answers: wait for its line (at most 10 s).
  const codeLine = /\[sms to \+14155550123\] (\d{6}) is your login code/
  await waitFor(() => codeLine.test(output), 10_000)
  const line = codeLine.exec(output)
  t.ok(line, 'the console provider printed the code')
  const verify = await call('/verify_sms', { userid: register.body.userid, phone, token: line?.[1] })
  t.equal(verify.status, 200)
  t.same(await call('/op', {}, verify.body.access_token), { status: 200, body: { message: 'test op successful' } })
  t.same(await call('/op2', {}, verify.body.access_token), { status: 200, body: { message: 'test op2 successful' } })
  const refresh = await call('/refresh', {}, verify.body.refresh_token)
  t.equal(refresh.status, 200)
  t.equal((await call('/op2', {}, refresh.body.access_token)).status, 401, 'op2 needs a fresh token')
  t.same(await call('/logout', { refresh_token: refresh.body.refresh_token }, refresh.body.access_token), { status: 200, body: { message: 'logout successful' } })
  t.equal((await call('/op', {}, refresh.body.access_token)).status, 401)
  t.notOk(output.includes(refresh.body.refresh_token!), 'tokens are not logged')

  server.kill('SIGTERM')
  await once(server, 'exit')
})

t.test('the example server reads its JWT secret safely', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'secret')
  const warnings: string[] = []
  t.throws(() => jwtSecretFromEnv({ NODE_ENV: 'production' }, file, (m) => warnings.push(m)), /JWT_SECRET is required when NODE_ENV=production/)
  t.notOk(existsSync(file), 'production never writes a secret file')
  t.equal(jwtSecretFromEnv({ JWT_SECRET: 'from-env' }, file, (m) => warnings.push(m)), 'from-env')
  const generated = jwtSecretFromEnv({}, file, (m) => warnings.push(m))
  t.ok(Buffer.from(generated, 'base64').length >= 32, 'a generated secret is long enough')
  t.equal(jwtSecretFromEnv({}, file, (m) => warnings.push(m)), generated, 'and kept across restarts')
  t.equal(readFileSync(file, 'utf8').trim(), generated)
  t.equal(statSync(file).mode & 0o077, 0, 'readable by its owner only')
  t.equal(warnings.length, 2)
})

t.test('the example server picks the SMS provider from the environment', async (t) => {
  // consoleSms() reads NODE_ENV from the process, where `npm run example` sets it to development.
  const saved = process.env.NODE_ENV
  t.teardown(() => { if (saved === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = saved })
  process.env.NODE_ENV = 'development'
  t.equal(smsProviderFromEnv({}).name, 'console')
  t.throws(() => smsProviderFromEnv({ SMS_PROVIDER: 'twilio-verify', TWILIO_ACCOUNT_SID: 'AC' + '0'.repeat(32) }), /SMS_PROVIDER=twilio-verify needs TWILIO_AUTH_TOKEN, TWILIO_VERIFY_SERVICE_SID/)
  t.throws(() => smsProviderFromEnv({ SMS_PROVIDER: 'twilio-messaging' }), /needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM/)
  t.throws(() => smsProviderFromEnv({ SMS_PROVIDER: 'carrier-pigeon' }), /SMS_PROVIDER must be one of console, twilio-verify, twilio-messaging/)
  const verify = smsProviderFromEnv({ SMS_PROVIDER: 'twilio-verify', TWILIO_ACCOUNT_SID: 'AC' + '1'.repeat(32), TWILIO_AUTH_TOKEN: 'x'.repeat(32), TWILIO_VERIFY_SERVICE_SID: 'VA' + '2'.repeat(32) })
  t.equal(verify.name, 'twilio-verify')
  const messaging = smsProviderFromEnv({ SMS_PROVIDER: 'twilio-messaging', TWILIO_ACCOUNT_SID: 'AC' + '1'.repeat(32), TWILIO_AUTH_TOKEN: 'x'.repeat(32), TWILIO_FROM: '+15005550006' })
  t.equal(messaging.name, 'twilio-messaging')
})
