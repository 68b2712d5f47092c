import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import t from 'tap'
import ts from 'typescript'
import { buildExampleApp } from '../example-server/app.js'
import { OPENAPI_FILE, OPENAPI_TYPES_FILE, openApiTypes } from '../example-server/openapi.js'
import { runLoginFlow } from './fixtures/openapi-client.js'
import { createOutbox, testPhone } from './helper.js'

const CLIENT_FILE = fileURLToPath(new URL('./fixtures/openapi-client.ts', import.meta.url))

t.test('test/fixtures/openapi-types.ts is what openapi-typescript generates from docs/openapi.json', async (t) => {
  const generated = await openApiTypes(readFileSync(OPENAPI_FILE, 'utf8'))
  t.equal(readFileSync(OPENAPI_TYPES_FILE, 'utf8'), generated, 'stale client types: run `npm run openapi`')
})

t.test('a client written against the generated types type-checks (tsc), mistakes included', async (t) => {
  const config = ts.readConfigFile(fileURLToPath(new URL('../tsconfig.json', import.meta.url)), (path) => ts.sys.readFile(path))
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, fileURLToPath(new URL('..', import.meta.url)))
  const program = ts.createProgram([CLIENT_FILE], { ...options, noEmit: true })
  const diagnostics = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const where = diagnostic.file === undefined ? '' : `${diagnostic.file.fileName}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}: `
    return where + ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
  })
  t.same(diagnostics, [], 'no type error, and every @ts-expect-error is an error')
})

t.test('the full login flow through openapi-fetch against the example app', async (t) => {
  const sqlite = new Database(':memory:')
  const outbox = createOutbox()
  const app = await buildExampleApp({ db: drizzle(sqlite), sms: outbox.provider, jwtSecret: randomBytes(48).toString('base64') })
  t.teardown(async () => {
    await app.close()
    sqlite.close()
  })
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })
  const phone = testPhone()

  const flow = await runLoginFlow(baseUrl, phone, () => outbox.lastCodeFor(phone))
  t.equal(flow.registered.message, 'registered successfully')
  t.same(flow.login, { phone, userid: flow.registered.userid })
  t.equal(outbox.messages.length, 1, 'one SMS')
  t.equal(flow.session.userid, flow.registered.userid)
  t.equal(flow.tokenType, 'Bearer')
  t.same(flow.op, { message: 'test op successful' })
  t.not(flow.refreshed.refresh_token, flow.session.refresh_token, 'refresh rotates the token')
  t.same(flow.logout, { message: 'logout successful' })
  t.same(flow.afterLogout, { status: 401, code: 'SECURELOGIN_SESSION_REVOKED' }, 'the access token of the ended session is refused, in the documented error shape')
})
