import { readFileSync } from 'node:fs'
import SwaggerParser from '@apidevtools/swagger-parser'
import swagger, { type SwaggerOptions } from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { OPENAPI_FILE, openApiDocument } from '../example-server/openapi.js'
import secureLogin from '../lib/index.js'
import { ErrorResponse, refResolver, sharedSchemas } from '../schemas/index.js'
import { createOutbox, createTestDatabase, TEST_SECRET, testPhone, type TestDatabase } from './helper.js'

type Operation = {
  operationId?: string
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string, name: string }>
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> }
  responses: Record<string, { description: string, headers?: Record<string, unknown>, content?: Record<string, { schema: { $ref?: string } }> }>
}
type Document = {
  openapi?: string
  swagger?: string
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, { title?: string }>, securitySchemes?: Record<string, { type: string, scheme?: string, bearerFormat?: string }> }
  securityDefinitions?: Record<string, unknown>
  definitions?: Record<string, { title?: string }>
}

// What each route answers, read from lib/challenges.ts, lib/sessions.ts, lib/authenticate.ts and the
// routes' error handler. Every route parses a JSON body (400, 413, 415) and reads the database
// (500, and 503 when it cannot serve: lib/store/deadline.ts).
const COMMON = ['400', '413', '415', '500', '503']
type Method = 'get' | 'post' | 'patch' | 'delete'
const EXPECTED: Record<string, { method?: Method, security?: string, success: string, errors: string[], body?: false }> = {
  // With `auth_type: "PASSWORD"`: a taken email (409), a wrong password (401), a disabled account (403).
  '/register': { success: '201', errors: [...COMMON, '409', '429'] },
  '/login': { success: '200', errors: [...COMMON, '401', '403', '429'] },
  '/login_sms': { success: '200', errors: [...COMMON, '401', '403', '429'] },
  '/verify_sms': { success: '200', errors: [...COMMON, '401', '403', '429', '502', '504'] },
  '/refresh': { security: 'refreshToken', success: '200', errors: [...COMMON, '401', '409'], body: false },
  '/logout': { security: 'accessToken', success: '200', errors: [...COMMON, '401', '403'] },
  '/logout_all_other_sessions': { security: 'accessToken', success: '200', errors: [...COMMON, '401', '403'] },
  'GET /me': { method: 'get', security: 'accessToken', success: '200', errors: [...COMMON, '401'], body: false },
  'PATCH /me': { method: 'patch', security: 'accessToken', success: '200', errors: [...COMMON, '401'] },
  'DELETE /me': { method: 'delete', security: 'accessToken', success: '200', errors: [...COMMON, '401'], body: false },
  'GET /sessions': { method: 'get', security: 'accessToken', success: '200', errors: [...COMMON, '401'], body: false },
  'DELETE /sessions/{sid}': { method: 'delete', security: 'accessToken', success: '200', errors: [...COMMON, '401', '404'], body: false },
  '/phone': { security: 'accessToken', success: '200', errors: [...COMMON, '401', '429'] },
  '/phone/verify': { security: 'accessToken', success: '200', errors: [...COMMON, '401', '403', '409', '429', '502', '504'] },
  '/password': { security: 'accessToken', success: '200', errors: [...COMMON, '401', '403', '409', '429'] },
}
const COMPONENTS = sharedSchemas.map((schema) => schema.$id as string)

/** A host app: @fastify/swagger as given, then the plugin (once per prefix, in sibling contexts). */
async function hostApp (t: Tap, database: TestDatabase, swaggerOptions: SwaggerOptions, prefixes: string[] = ['/api/auth']): Promise<FastifyInstance> {
  const app = Fastify({ pluginTimeout: 60_000 })
  database.beforeClose.push(() => app.close())
  await app.register(swagger, swaggerOptions)
  for (const prefix of prefixes) {
    await app.register(async (child) => {
      await child.register(secureLogin, { db: database.db, sms: createOutbox().provider, prefix, jwt: { secret: TEST_SECRET } })
    })
  }
  await app.ready()
  t.ok(app.swagger, 'the app has its document')
  return app
}
type Tap = Pick<typeof t, 'ok' | 'notOk' | 'equal' | 'same' | 'match' | 'notMatch' | 'fail' | 'resolves'>

async function validate (t: Tap, document: unknown): Promise<void> {
  // The parser dereferences the document it is given: hand it a copy.
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'a valid document (@apidevtools/swagger-parser)')
}

function schemaRefs (document: Document): string {
  return document.openapi === undefined ? '#/definitions/' : '#/components/schemas/'
}

/** Checks the plugin's routes under `prefix` are all documented, with their errors and security. */
/** With `cookies` enabled, the routes that read or write the session cookies also answer 403 (a refused origin). */
const WITH_COOKIES: Record<string, string[]> = { '/refresh': ['403'], '/register': ['403'] }

function checkRoutes (t: Tap, document: Document, prefix: string, named: boolean, cookies = false): void {
  const refs = schemaRefs(document)
  const errorRef = named ? `${refs}SecureLoginError` : undefined
  for (const [route, base] of Object.entries(EXPECTED)) {
    const path = route.replace(/^[A-Z]+ /, '')
    const expected = cookies && WITH_COOKIES[path] !== undefined ? { ...base, errors: [...base.errors, ...WITH_COOKIES[path]] } : base
    const method = expected.method ?? 'post'
    const operation = document.paths[`${prefix}${path}`]?.[method]
    if (operation === undefined) {
      t.fail(`${method.toUpperCase()} ${prefix}${path} is documented`)
      continue
    }
    t.ok(operation.operationId, `${path} has an operationId`)
    t.same(Object.keys(operation.responses).sort(), [expected.success, ...expected.errors].sort(), `${prefix}${path}: the success and every error status it can answer`)
    for (const status of expected.errors) {
      const response: Operation['responses'][string] = operation.responses[status]!
      t.notMatch(response.description, /^Default Response$/, `${path} ${status} is described`)
      const ref: string | undefined = document.openapi === undefined ? (response as unknown as { schema: { $ref: string } }).schema.$ref : response.content?.['application/json']?.schema.$ref
      if (errorRef === undefined) t.match(ref, new RegExp(`^${refs}`), `${path} ${status} refers to the error component`)
      else t.equal(ref, errorRef, `${path} ${status} is a SecureLoginError`)
      if (status === '429') t.ok(response.headers?.['retry-after'], `${path} 429 documents Retry-After`)
    }
    t.same(operation.security, expected.security === undefined ? undefined : [{ [expected.security]: [] }], `${path}: security ${expected.security ?? 'none'}`)
    if (document.openapi !== undefined && expected.body !== false) {
      const body = operation.requestBody?.content['application/json']?.schema.$ref
      t.match(body, new RegExp(`^${refs}${named ? 'SecureLogin' : ''}`), `${path}: the body is a component`)
    }
  }
  // The key set: a GET without security, answering only the set, with its cache header.
  const jwks = document.paths[`${prefix}/.well-known/jwks.json`]?.get
  if (jwks === undefined) {
    t.fail(`GET ${prefix}/.well-known/jwks.json is documented`)
    return
  }
  t.ok(jwks.operationId, 'the key set has an operationId')
  t.same(Object.keys(jwks.responses), ['200'], 'the key set answers only 200')
  t.same(jwks.security, undefined, 'the key set is public')
  const ok = jwks.responses['200']!
  const ref = document.openapi === undefined ? (ok as unknown as { schema: { $ref: string } }).schema.$ref : ok.content?.['application/json']?.schema.$ref
  if (named) t.equal(ref, `${refs}SecureLoginJwks`, 'the key set is a SecureLoginJwks')
  else t.match(ref, new RegExp(`^${refs}`), 'the key set refers to its component')
  t.ok(ok.headers?.['cache-control'], 'the key set documents Cache-Control')
}

/** No operation describes Authorization as a header parameter: the security schemes do. */
function checkNoAuthorizationHeader (t: Tap, document: Document): void {
  const headers = Object.values(document.paths).flatMap((item) => Object.values(item)).flatMap((operation) => operation.parameters ?? [])
    .filter((parameter) => parameter.in === 'header').map((parameter) => parameter.name.toLowerCase())
  t.notOk(headers.includes('authorization'), 'no authorization header parameter')
}

t.test('docs/openapi.json is what `npm run openapi` generates now', async (t) => {
  const committed = readFileSync(OPENAPI_FILE, 'utf8')
  const generated = await openApiDocument()
  t.equal(committed, generated, 'docs/openapi.json is stale: run `npm run openapi` and commit it')
})

t.test('docs/openapi.json: a valid OpenAPI 3.1 document of every route, with errors, security and named components', async (t) => {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document
  t.equal(document.openapi, '3.1.0')
  await validate(t, document)
  // The example server enables cookies (its page at / uses them).
  checkRoutes(t, document, '/api/auth', true, true)
  checkNoAuthorizationHeader(t, document)

  const schemes = document.components?.securitySchemes ?? {}
  for (const name of ['accessToken', 'refreshToken']) {
    t.match(schemes[name], { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }, `${name} is an http bearer JWT scheme`)
  }
  const used = new Set(Object.values(document.paths).flatMap((item) => Object.values(item)).flatMap((operation) => operation.security ?? []).flatMap(Object.keys))
  t.same([...used].sort(), ['accessToken', 'refreshToken'], 'both schemes are used')

  const schemas = document.components?.schemas ?? {}
  for (const name of COMPONENTS) t.ok(schemas[name], `components.schemas.${name}`)
  t.same(Object.keys(schemas).filter((name) => /^def-\d+$/.test(name)), [], 'no unnamed def-N component')

  const operationIds = Object.values(document.paths).flatMap((item) => Object.values(item)).map((operation) => operation.operationId)
  t.equal(new Set(operationIds).size, operationIds.length, 'operationIds are unique')
  t.ok(document.paths['/api/auth/op']?.post, 'the example routes are documented too')
})

for (const mode of [
  { name: 'OpenAPI 3.1', options: { openapi: { openapi: '3.1.0' } }, validates: true },
  { name: 'OpenAPI 3.0', options: { openapi: { openapi: '3.0.3' } }, validates: true },
  // @fastify/swagger copies JSON Schema keywords Swagger 2.0 lacks (`examples`, `const`) as they are,
  // for any app's schemas: the document is usable but not strictly valid. It must still not crash.
  { name: 'Swagger 2.0', options: { swagger: {} }, validates: false },
] as const) {
  t.test(`a host registering @fastify/swagger (${mode.name}, no security schemes of its own) before the plugin gets our routes`, async (t) => {
    const database = await createTestDatabase(t, 'sqlite')
    const app = await hostApp(t, database, { ...mode.options })
    const document = app.swagger() as unknown as Document
    if (mode.validates) await validate(t, document)
    checkRoutes(t, document, '/api/auth', false)
    checkNoAuthorizationHeader(t, document)
    const schemas = document.components?.schemas ?? document.definitions ?? {}
    t.same(Object.values(schemas).map((schema) => schema.title).sort(), [...COMPONENTS].sort(), 'components titled by $id with the default refResolver')
    if (document.openapi !== undefined) t.match(document.components?.securitySchemes, { accessToken: { type: 'http', scheme: 'bearer' }, refreshToken: { type: 'http', scheme: 'bearer' } }, 'the plugin declared its schemes')
    else t.match(document.securityDefinitions, { accessToken: { type: 'apiKey', in: 'header' }, refreshToken: { type: 'apiKey', in: 'header' } })
  })

  t.test(`${mode.name} with our refResolver: components named after their $id`, async (t) => {
    const database = await createTestDatabase(t, 'sqlite')
    const app = await hostApp(t, database, { ...mode.options, refResolver })
    const document = app.swagger() as unknown as Document
    if (mode.validates) await validate(t, document)
    checkRoutes(t, document, '/api/auth', true)
    t.same(Object.keys(document.components?.schemas ?? document.definitions ?? {}).sort(), [...COMPONENTS].sort())
  })
}

t.test('the host\'s own security schemes win and its options are left alone', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  const own = { accessToken: { type: 'http', scheme: 'bearer', description: 'the host\'s words' } } as const
  const securitySchemes = { ...own }
  const app = await hostApp(t, database, { openapi: { openapi: '3.1.0', components: { securitySchemes } }, refResolver })
  const document = app.swagger() as unknown as Document
  t.match(document.components?.securitySchemes?.accessToken, own.accessToken)
  t.ok(document.components?.securitySchemes?.refreshToken)
  t.same(Object.keys(securitySchemes), ['accessToken'], 'the host\'s options object is not modified')
  await validate(t, document)
})

t.test('two instances in sibling contexts under different prefixes: both documented, one set of components', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  const app = await hostApp(t, database, { openapi: { openapi: '3.1.0' }, refResolver }, ['/a/auth', '/b/auth'])
  const document = app.swagger() as unknown as Document
  await validate(t, document)
  checkRoutes(t, document, '/a/auth', true)
  checkRoutes(t, document, '/b/auth', true)
  const operationIds = Object.values(document.paths).flatMap((item) => Object.values(item)).map((operation) => operation.operationId)
  t.equal(operationIds.length, 32, '16 operations of each instance')
  t.equal(new Set(operationIds).size, 32, 'operationIds are unique across the two instances')
  t.same(Object.keys(document.components?.schemas ?? {}).sort(), [...COMPONENTS].sort())
  const phone = testPhone()
  t.equal((await app.inject({ method: 'POST', url: '/b/auth/register', payload: { phone } })).statusCode, 201)
})

t.test('a host may register our schemas itself, for its own routes; another schema under our $id fails startup', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  const app = Fastify({ pluginTimeout: 60_000 })
  database.beforeClose.push(() => app.close())
  app.addSchema(ErrorResponse)
  await app.register(secureLogin, { db: database.db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET } })
  app.get('/mine', { schema: { response: { 401: { $ref: 'SecureLoginError#' } } }, preHandler: app.authenticate }, async () => ({}))
  await app.ready()
  t.same((await app.inject({ url: '/mine' })).json(), { statusCode: 401, code: 'SECURELOGIN_TOKEN_MISSING', error: 'Unauthorized', message: 'An "Authorization: Bearer <token>" header is required' })
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: 14155550100 } })).json().code, 'SECURELOGIN_BAD_REQUEST', 'validation stays strict')

  const other = Fastify({ pluginTimeout: 60_000 })
  database.beforeClose.push(() => other.close())
  other.addSchema({ $id: 'SecureLoginError', type: 'object' })
  await t.rejects((async () => {
    await other.register(secureLogin, { db: database.db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET } })
    await other.ready()
  })(), /already has a different schema with \$id "SecureLoginError"/)
})
