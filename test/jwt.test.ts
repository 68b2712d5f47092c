import fastifyJwt from '@fastify/jwt'
import { createVerifier } from 'fast-jwt'
import Fastify from 'fastify'
import t from 'tap'
import secureLogin from '../lib/index.js'
import { buildApp, createOutbox, createTestDatabase, dialects, post, signIn, TEST_SECRET, testPhone } from './helper.js'

// The plugin's access tokens go through @fastify/jwt: the app gets fastify.jwt and
// request.jwtVerify() for them, or keeps its own @fastify/jwt and finds ours under a namespace.

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

for (const dialect of dialects) {
  t.test(`${dialect}: without an @fastify/jwt of the app's own, the plugin's is the app's`, async (t) => {
    const test = await buildApp(t, dialect)
    const { app } = test
    t.ok(app.hasDecorator('jwt'), 'fastify.jwt is decorated on the host')
    t.equal(app.secureLogin.jwt, app.jwt, 'fastify.secureLogin.jwt is that same instance')
    const tokens = await signIn(test, testPhone())

    const claims = app.jwt.verify<{ sub: string, type: string }>(tokens.access_token)
    t.equal(claims.sub, tokens.userid, 'fastify.jwt.verify accepts the access token')
    t.equal(claims.type, 'access')
    t.equal(app.jwt.decode<{ sub: string }>(tokens.access_token)?.sub, tokens.userid, 'fastify.jwt.decode reads it')
    t.throws(() => app.jwt.verify(tokens.refresh_token), 'fastify.jwt.verify refuses the refresh token (it has a key of its own)')
    t.throws(() => createVerifier({ key: TEST_SECRET })(tokens.refresh_token), /signature/i, 'the refresh token does not verify with jwt.secret at all')
  })

  t.test(`${dialect}: request.jwtVerify() accepts access tokens with the authenticate shape and refuses refresh tokens`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET } })
    app.get('/verified', async (request) => { await request.jwtVerify(); return request.user })
    app.get('/own', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())

    const verified = await app.inject({ url: '/verified', headers: bearer(tokens.access_token) })
    t.equal(verified.statusCode, 200)
    const own = await app.inject({ url: '/own', headers: bearer(tokens.access_token) })
    t.same(verified.json(), own.json(), 'request.user is the same whichever verified the token')
    t.equal(verified.json().userid, tokens.userid)

    const refresh = await app.inject({ url: '/verified', headers: bearer(tokens.refresh_token) })
    t.equal(refresh.statusCode, 401, 'a refresh token is not an access token to request.jwtVerify()')
    t.equal(refresh.json().code, 'FST_JWT_AUTHORIZATION_TOKEN_INVALID')

    const appToken = app.jwt.sign({ sub: tokens.userid, role: 'admin' })
    const appVerified = await app.inject({ url: '/verified', headers: bearer(appToken) })
    t.equal(appVerified.statusCode, 200, 'the app signs tokens of its own design with fastify.jwt')
    t.same(appVerified.json().role, 'admin', 'and they keep their payload')
    const refused = await app.inject({ url: '/own', headers: bearer(appToken) })
    t.equal(refused.statusCode, 401, 'authenticate accepts only the plugin\'s access tokens')
    t.equal(refused.json().code, 'SECURELOGIN_TOKEN_INVALID')
  })

  t.test(`${dialect}: an app that registered @fastify/jwt first keeps it; ours moves to a namespace`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    const appSecret = 'the-app-s-own-secret-for-its-own-tokens'
    await app.register(fastifyJwt, { secret: appSecret })
    const appJwt = app.jwt
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET } })
    app.get('/mine', async (request) => { await request.jwtVerify(); return request.user })
    app.get('/ours', async (request) => {
      await (request as unknown as Record<string, () => Promise<unknown>>).secureloginJwtVerify!()
      return request.user
    })
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()

    t.equal(app.jwt, appJwt, 'fastify.jwt is still the app\'s')
    const ours = (app.jwt as unknown as Record<string, unknown>).securelogin
    t.ok(ours, 'ours is fastify.jwt.securelogin')
    t.equal(app.secureLogin.jwt, ours, 'and fastify.secureLogin.jwt')

    const tokens = await signIn({ app, outbox, database }, testPhone())
    const me = await app.inject({ url: '/me', headers: bearer(tokens.access_token) })
    t.equal(me.statusCode, 200, 'authenticate works')
    t.equal(me.json().userid, tokens.userid)
    t.equal((await app.inject({ url: '/ours', headers: bearer(tokens.access_token) })).json().userid, tokens.userid, 'request.secureloginJwtVerify() verifies ours')
    t.equal((await app.inject({ url: '/mine', headers: bearer(tokens.access_token) })).statusCode, 401, 'the app\'s own jwtVerify does not accept ours (another secret)')
    const appToken = app.jwt.sign({ sub: 'someone' })
    t.equal((await app.inject({ url: '/mine', headers: bearer(appToken) })).json().sub, 'someone', 'and still accepts its own')
    t.equal((await app.inject({ url: '/me', headers: bearer(appToken) })).statusCode, 401, 'authenticate refuses the app\'s tokens')
  })

  t.test(`${dialect}: an @fastify/jwt registered after the plugin works under a namespace of its own`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET } })
    await app.register(fastifyJwt, { secret: 'another-secret-of-the-app-for-partners', namespace: 'partner' })
    await app.ready()
    const partner = (app.jwt as unknown as Record<string, { sign: (p: object) => string, verify: (t: string) => { sub: string } }>).partner!
    t.equal(partner.verify(partner.sign({ sub: 'p' })).sub, 'p')
    const tokens = await signIn({ app, outbox, database }, testPhone())
    t.equal(app.jwt.verify<{ sub: string }>(tokens.access_token).sub, tokens.userid, 'fastify.jwt is still ours')
  })

  t.test(`${dialect}: jwt.claims puts the app's claims into every access token`, async (t) => {
    const seen: string[] = []
    const test = await buildApp(t, dialect, {
      jwt: {
        claims: async (user, request) => {
          seen.push(`${request.url} ${user.userid}`)
          return { roles: ['editor'], tenant: 't1' }
        },
      },
    })
    const tokens = await signIn(test, testPhone())
    const me = await test.app.inject({ url: '/me', headers: bearer(tokens.access_token) })
    t.same(me.json().roles, ['editor'], 'request.user carries the claims after verify_sms')
    t.equal(me.json().tenant, 't1')
    t.equal(me.json().userid, tokens.userid)

    const refreshed = await post(test.app, '/refresh', {}, tokens.refresh_token)
    t.equal(refreshed.statusCode, 200)
    const after = await test.app.inject({ url: '/me', headers: bearer(refreshed.json().access_token) })
    t.same(after.json().roles, ['editor'], 'and after refresh')
    t.same(seen, [`/api/auth/verify_sms ${tokens.userid}`, `/api/auth/refresh ${tokens.userid}`], 'called with the user and the request at verify_sms and refresh')
    const refreshPayload = JSON.parse(Buffer.from(refreshed.json().refresh_token.split('.')[1], 'base64url').toString())
    t.notOk('roles' in refreshPayload, 'refresh tokens do not carry them')
  })

  t.test(`${dialect}: a route that changes request.user changes it for that request only`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET, claims: () => ({ roles: ['member'] }) } })
    app.get('/promote', { preHandler: app.authenticate }, async (request) => {
      (request.user as unknown as { roles: string[] }).roles.push('admin')
      return request.user
    })
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    app.get('/own', async (request) => {
      await request.jwtVerify()
      ;(request.user as unknown as { scopes: string[] }).scopes.push('write')
      return request.user
    })
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())
    t.same((await app.inject({ url: '/promote', headers: bearer(tokens.access_token) })).json().roles, ['member', 'admin'])
    t.same((await app.inject({ url: '/me', headers: bearer(tokens.access_token) })).json().roles, ['member'], 'the next request sees the token\'s claims, not the cached object changed')
    const own = app.jwt.sign({ sub: 'x', scopes: ['read'] })
    t.same((await app.inject({ url: '/own', headers: bearer(own) })).json().scopes, ['read', 'write'])
    t.same((await app.inject({ url: '/own', headers: bearer(own) })).json().scopes, ['read', 'write'], 'and so do tokens of the app\'s own design')
  })

  t.test(`${dialect}: jwt.claims cannot override a reserved claim`, async (t) => {
    for (const reserved of ['sub', 'sid', 'type', 'exp', 'userid', 'fresh', '__proto__', 'constructor']) {
      const test = await buildApp(t, dialect, { jwt: { claims: () => JSON.parse(`{ ${JSON.stringify(reserved)}: { "isAdmin": true } }`) as never } })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      await post(test.app, '/login', { phone })
      const verify = await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })
      t.equal(verify.statusCode, 500, `${reserved}: no token is issued`)
      t.equal(verify.json().code, 'SECURELOGIN_INTERNAL')
      const sessions = await test.database.query('SELECT count(*) AS n FROM securelogin_sessions')
      t.equal(Number(sessions[0]!.n), 0, `${reserved}: and no session is left behind`)
    }
  })
}
