import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { chromium } from 'playwright-core'
import t from 'tap'
import { buildExampleApp } from '../example-server/app.js'

// The example server's page signs in through the cookie transport in a real headless Chromium:
// the refresh token is an HttpOnly cookie the page cannot read, an expired access token is renewed
// from it, and logout ends the session. Only a developer machine without Chromium may skip.
const CHROMIUM = '/usr/bin/chromium'
const inCi = process.env.CI !== undefined && process.env.CI !== ''

t.test('the example page signs in, calls op, refreshes after expiry and logs out', { skip: !existsSync(CHROMIUM) && !inCi ? `${CHROMIUM} is absent (apt-get install chromium); CI runs this test` : false }, async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed`)
  const sqlite = new Database(':memory:')
  const codes = new Map<string, string>()
  const app = await buildExampleApp({
    db: drizzle(sqlite),
    sms: { name: 'test', async send (message) { codes.set(message.to, message.code) } },
    jwtSecret: randomBytes(48).toString('base64'),
    accessTokenTtl: '1s',
  })
  t.teardown(async () => {
    await app.close()
    sqlite.close()
  })
  // localhost: a secure context, where Chromium keeps Secure cookies over plain http.
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const base = address.replace('127.0.0.1', 'localhost')

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext()
  const page = await context.newPage()
  const failures: string[] = []
  page.on('pageerror', (error) => failures.push(error.message))
  const status = page.locator('#status')

  t.equal((await page.goto(`${base}/`))?.status(), 200, 'the page loads')
  const phone = '+14155550187'
  await page.fill('#phone', phone)
  await page.click('#send')
  await status.filter({ hasText: 'Code sent' }).waitFor({ timeout: 15_000 })
  await page.fill('#code', codes.get(phone) ?? 'none')
  await page.click('#verify')
  await status.filter({ hasText: 'Signed in' }).waitFor({ timeout: 15_000 })

  const cookies = await context.cookies()
  const refresh = cookies.find((cookie) => cookie.name === 'securelogin_refresh')
  t.ok(refresh, 'the browser holds the refresh cookie')
  t.equal(refresh?.httpOnly, true, 'HttpOnly')
  t.equal(refresh?.path, '/api/auth', 'scoped to the auth routes')
  t.equal(await page.evaluate(() => document.cookie), '', 'page scripts cannot read it')

  await page.click('#op')
  await status.filter({ hasText: 'op: test op successful' }).waitFor({ timeout: 15_000 })
  t.pass('op with the access token from sign-in')

  // Let the 1 s access token expire: the page renews it from the cookie and retries.
  await page.waitForTimeout(2_100)
  await page.evaluate(() => { document.getElementById('status')!.textContent = '' })
  const refreshed = page.waitForResponse((response) => response.url().endsWith('/api/auth/refresh'))
  await page.click('#op')
  t.equal((await refreshed).status(), 200, 'the expired access token was renewed through /refresh')
  await status.filter({ hasText: 'op: test op successful' }).waitFor({ timeout: 15_000 })
  const rotated = (await context.cookies()).find((cookie) => cookie.name === 'securelogin_refresh')
  t.not(rotated?.value, refresh?.value, 'and the refresh cookie rotated')

  // Expired again by logout time: the page renews the access token before logging out with it.
  await page.waitForTimeout(2_100)
  const renewed = page.waitForResponse((response) => response.url().endsWith('/api/auth/refresh'))
  const loggedOut = page.waitForResponse((response) => response.url().endsWith('/api/auth/logout') && response.status() === 200)
  await page.click('#logout')
  t.equal((await renewed).status(), 200, 'renewed before logout')
  await loggedOut
  await status.filter({ hasText: 'Signed out' }).waitFor({ timeout: 15_000 })
  t.notOk((await context.cookies()).some((cookie) => cookie.name === 'securelogin_refresh'), 'logout removed the cookie')
  const replay = await app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { 'x-securelogin-transport': 'cookie', host: new URL(base).host, origin: base }, cookies: { securelogin_refresh: rotated!.value } })
  t.equal(replay.statusCode, 401, 'the session is over on the server too')
  t.same(failures, [], 'no script error')
})
