import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { chromium } from 'playwright-core'
import t from 'tap'
import { buildExampleApp } from '../example-server/app.js'

// The interactive reference at /docs, loaded in a real headless Chromium (Debian's `chromium`
// package; .ci/run installs it). Only a developer machine without it may skip; CI must run it.
const CHROMIUM = '/usr/bin/chromium'
const inCi = process.env.CI !== undefined && process.env.CI !== ''
const AUTH_ROUTES = ['register', 'login', 'login_sms', 'verify_sms', 'refresh', 'logout', 'logout_all_other_sessions'].map((route) => `/api/auth/${route}`)

t.test('Swagger UI at /docs renders every auth route of the document', { skip: !existsSync(CHROMIUM) && !inCi ? `${CHROMIUM} is absent (apt-get install chromium); CI runs this test` : false }, async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed`)
  const sqlite = new Database(':memory:')
  const app = await buildExampleApp({ db: drizzle(sqlite), sms: { name: 'silent', async send () {} }, jwtSecret: randomBytes(48).toString('base64') })
  t.teardown(async () => {
    await app.close()
    sqlite.close()
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const failures: string[] = []
  page.on('pageerror', (error) => failures.push(error.message))
  page.on('requestfailed', (request) => failures.push(`${request.url()}: ${request.failure()?.errorText}`))

  const response = await page.goto(`${base}/docs`)
  t.equal(response?.status(), 200, '/docs answers')
  // Swagger UI fetches /docs/json and renders one block per operation.
  await page.locator('.opblock-summary-path', { hasText: '/api/auth/verify_sms' }).first().waitFor({ timeout: 30_000 })
  const paths = await page.locator('.opblock-summary-path').allTextContents()
  for (const route of AUTH_ROUTES) t.ok(paths.some((path) => path.trim() === route), `${route} is on the page`)
  t.match(await page.locator('.info .title').textContent(), /fastify-securelogin/, 'the title comes from package.json')
  t.ok(await page.locator('.btn.authorize').count(), 'an Authorize button for the bearer schemes')

  // The schemas section lists the named components.
  const models = await page.locator('section.models .json-schema-2020-12__title').allTextContents()
  t.ok(models.includes('SecureLoginError'), 'the SecureLoginError component is listed')
  t.same(failures, [], 'no script error and no failed request')
})
