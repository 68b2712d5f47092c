import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import secureLogin from '../lib/index.js'
import { createOutbox, createTestDatabase, dialects, signIn, TEST_SECRET, testPhone, type TestDatabase } from './helper.js'

// The plugin adds decorators to the host and routes under its prefix, and nothing else: the host
// keeps its own error handler, 404 handler, content parsers, body limit and hooks.

const OUR_ROUTES = ['/register', '/login', '/login_sms', '/verify_sms', '/refresh', '/logout', '/logout_all_other_sessions', '/.well-known/jwks.json']
/** The routes with their methods: the sign-in routes are POST; GET routes come with Fastify's HEAD. */
const OUR_METHODS = [
  ...OUR_ROUTES.slice(0, -1).map((url) => `POST ${url}`), 'GET /.well-known/jwks.json', 'HEAD /.well-known/jwks.json',
  'GET /me', 'HEAD /me', 'PATCH /me', 'DELETE /me', 'GET /sessions', 'HEAD /sessions', 'DELETE /sessions/:sid', 'POST /phone', 'POST /phone/verify', 'POST /password',
]

function newApp (database: TestDatabase): FastifyInstance {
  const app = Fastify({ pluginTimeout: 60_000 })
  database.beforeClose.push(() => app.close())
  return app
}

for (const dialect of dialects) {
  t.test(`${dialect}: the plugin leaves the host app's behaviour alone`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = newApp(database)
    const handled: string[] = []
    app.setErrorHandler((error: Error, request, reply) => {
      handled.push(`${request.url} ${error.message}`)
      return reply.code(418).send({ host: true, message: error.message })
    })
    const notFound: string[] = []
    app.setNotFoundHandler((request, reply) => {
      notFound.push(request.url)
      return reply.code(404).send({ host404: true })
    })
    const added: string[] = []
    app.addHook('onRoute', (route) => { added.push(`${[route.method].flat().join(',')} ${route.url}`) })
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET } })
    const ours = [...added]
    app.get('/boom', async () => { throw new Error('boom') })
    app.post('/echo', async (request) => ({ body: request.body }))
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()

    t.same(ours.sort(), OUR_METHODS.map((route) => route.replace(' ', ' /api/auth')).sort(), 'the plugin adds exactly its routes, all under the prefix')
    for (const name of ['authenticate', 'authenticateFresh', 'authenticateRefresh']) {
      t.ok(app.hasDecorator(name), `app.${name} is decorated on the host`)
      t.type((app as unknown as Record<string, unknown>)[name], 'function')
    }
    t.ok(app.hasRequestDecorator('user'), 'request.user is declared')

    const boom = await app.inject({ url: '/boom' })
    t.equal(boom.statusCode, 418, 'a host route error goes to the host error handler')
    t.same(boom.json(), { host: true, message: 'boom' })
    const unauthenticated = await app.inject({ url: '/me' })
    t.equal(unauthenticated.statusCode, 418, 'errors of app.authenticate on a host route also go to the host handler')
    t.same(handled, ['/boom boom', `/me ${unauthenticated.json().message}`])

    const ourError = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: 'abc' } })
    t.equal(ourError.statusCode, 400, 'our routes answer their own errors')
    t.equal(ourError.json().code, 'SECURELOGIN_PHONE_INVALID')
    t.equal(handled.length, 2, 'and the host handler does not see them')

    t.equal((await app.inject({ url: '/nowhere' })).statusCode, 404)
    t.equal((await app.inject({ url: '/api/auth/nowhere' })).statusCode, 404)
    t.equal((await app.inject({ url: '/api/auth/login' })).statusCode, 404, 'a wrong method under the prefix')
    t.same(notFound, ['/nowhere', '/api/auth/nowhere', '/api/auth/login'], 'the host 404 handler answers everywhere, the prefix included')

    const empty = await app.inject({ method: 'POST', url: '/echo', payload: '', headers: { 'content-type': 'application/json' } })
    t.equal(empty.statusCode, 418, 'an empty JSON body on a host route is still an error (our lenient parser stays in our routes)')
    t.match(handled.at(-1), /Body cannot be empty when content-type is set to 'application\/json'/)
    const big = await app.inject({ method: 'POST', url: '/echo', payload: { data: 'x'.repeat(100 * 1024) } })
    t.equal(big.statusCode, 200, 'host routes keep the host body limit (1 MiB), not our 16 KiB')
    const json = await app.inject({ method: 'POST', url: '/echo', payload: { a: [1, 2] } })
    t.same(json.json(), { body: { a: [1, 2] } }, 'the host JSON parser still works')
    const poisoned = await app.inject({ method: 'POST', url: '/echo', payload: '{"__proto__":{"x":1}}', headers: { 'content-type': 'application/json' } })
    t.equal(poisoned.statusCode, 418, 'the host keeps Fastify\'s prototype-poisoning protection')

    const tokens = await (async () => {
      await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: '+14155550123' } })
      await app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone: '+14155550123' } })
      return (await app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone: '+14155550123', token: outbox.lastCodeFor('+14155550123') } })).json()
    })()
    const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.access_token}` } })
    t.equal(me.statusCode, 200, 'app.authenticate works on a host route')
    t.equal(me.json().phone, '+14155550123')
  })

  t.test(`${dialect}: without a host error handler, host routes get Fastify's default handling`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const app = newApp(database)
    await app.register(secureLogin, { db: database.db, sms: createOutbox().provider, jwt: { secret: TEST_SECRET } })
    app.get('/boom', async () => { throw new Error('boom') })
    app.get('/teapot', async () => { throw Object.assign(new Error('short and stout'), { statusCode: 418 }) })
    app.post('/echo', async (request) => ({ body: request.body }))
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()

    const boom = await app.inject({ url: '/boom' })
    t.equal(boom.statusCode, 500)
    t.same(boom.json(), { statusCode: 500, error: 'Internal Server Error', message: 'boom' }, "Fastify's default 500, not SECURELOGIN_INTERNAL")
    t.same((await app.inject({ url: '/teapot' })).json(), { statusCode: 418, error: "I'm a Teapot", message: 'short and stout' })
    t.same((await app.inject({ url: '/nowhere' })).json(), { message: 'Route GET:/nowhere not found', error: 'Not Found', statusCode: 404 }, "Fastify's default 404")
    const empty = await app.inject({ method: 'POST', url: '/echo', payload: '', headers: { 'content-type': 'application/json' } })
    t.equal(empty.statusCode, 400)
    t.equal(empty.json().code, 'FST_ERR_CTP_EMPTY_JSON_BODY', 'the host keeps Fastify\'s JSON parser')
    const me = await app.inject({ url: '/me' })
    t.same(me.json(), { statusCode: 401, code: 'SECURELOGIN_TOKEN_MISSING', error: 'Unauthorized', message: 'An "Authorization: Bearer <token>" header is required' }, 'our errors thrown on host routes have the same shape through the default handler')
    const refreshEmpty = await app.inject({ method: 'POST', url: '/api/auth/refresh', payload: '', headers: { 'content-type': 'application/json' } })
    t.equal(refreshEmpty.json().code, 'SECURELOGIN_TOKEN_MISSING', 'while our routes read an empty JSON body as {}')
  })

  t.test(`${dialect}: the routes follow the prefix`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const app = newApp(database)
    const added: string[] = []
    app.addHook('onRoute', (route) => { added.push(route.url) })
    await app.register(secureLogin, { db: database.db, sms: createOutbox().provider, prefix: '/v1/session', jwt: { secret: TEST_SECRET } })
    await app.ready()
    t.same(added.sort(), OUR_METHODS.map((route) => `/v1/session${route.split(' ')[1]}`).sort())
    t.equal((await app.inject({ method: 'POST', url: '/v1/session/register', payload: { phone: testPhone() } })).statusCode, 201)
    t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone: testPhone() } })).statusCode, 404)
  })

  t.test(`${dialect}: registering the plugin twice in one context fails at startup, naming the clash`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const app = newApp(database)
    const sms = createOutbox().provider
    const startup = (async () => {
      await app.register(secureLogin, { db: database.db, sms, jwt: { secret: TEST_SECRET } })
      await app.register(secureLogin, { db: database.db, sms, prefix: '/v2/auth', jwt: { secret: TEST_SECRET } })
      await app.ready()
    })()
    // Fastify refuses the second `authenticate` decorator; the app does not start half-configured.
    await t.rejects(startup, { code: 'FST_ERR_DEC_ALREADY_PRESENT', message: /authenticate/ })
  })

  t.test(`${dialect}: two instances in sibling contexts work independently under different prefixes`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const app = newApp(database)
    const outboxes = { a: createOutbox(), b: createOutbox() }
    const secrets = { a: TEST_SECRET, b: randomBytes(48).toString('base64') }
    for (const name of ['a', 'b'] as const) {
      await app.register(async (child) => {
        await child.register(secureLogin, { db: database.db, sms: outboxes[name].provider, prefix: `/${name}/auth`, jwt: { secret: secrets[name] } })
        child.get(`/${name}/me`, { preHandler: child.authenticate }, async (request) => request.user)
      })
    }
    await app.ready()
    t.notOk(app.hasDecorator('authenticate'), 'the decorators stay in each sibling context')
    const phone = testPhone()
    const signed: Record<string, string> = {}
    for (const name of ['a', 'b'] as const) {
      const post = (url: string, payload: object) => app.inject({ method: 'POST', url: `/${name}/auth${url}`, payload })
      t.equal((await post('/register', { phone })).statusCode, 201)
      t.equal((await post('/login', { phone })).statusCode, name === 'a' ? 200 : 429, name === 'a' ? 'a sends a code' : 'b shares the database, so the resend cooldown applies across both')
    }
    const verify = await app.inject({ method: 'POST', url: '/a/auth/verify_sms', payload: { phone, token: outboxes.a.lastCodeFor(phone) } })
    t.equal(verify.statusCode, 200)
    signed.a = verify.json().access_token
    t.equal((await app.inject({ url: '/a/me', headers: { authorization: `Bearer ${signed.a}` } })).statusCode, 200)
    t.equal((await app.inject({ url: '/b/me', headers: { authorization: `Bearer ${signed.a}` } })).json().code, 'SECURELOGIN_TOKEN_INVALID', 'b, with another secret, refuses a\'s tokens')
  })

  t.test(`${dialect}: a host that already declares request.user can register the plugin`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const app = newApp(database)
    app.decorateRequest('user', null as never)
    const outbox = createOutbox()
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET } })
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    app.get('/anonymous', async (request) => ({ user: request.user }))
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())
    const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.access_token}` } })
    t.equal(me.statusCode, 200)
    t.equal(me.json().userid, tokens.userid)
    t.same((await app.inject({ url: '/anonymous' })).json(), { user: null }, 'request.user does not leak between requests')
    t.equal(app.secureLogin.jwt, (app.jwt as unknown as Record<string, unknown>).securelogin, 'the plugin\'s @fastify/jwt moved to a namespace rather than clash on request.user')
  })
}
