import { createHmac, createPublicKey, generateKeyPairSync, sign as signBytes, type KeyObject } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { createSigner, createVerifier } from 'fast-jwt'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import secureLogin, { type SecureLoginOptions } from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { buildApp, createOutbox, createTestDatabase, dialects, post, signIn, TEST_SECRET, testPhone, type TestApp, type TestDatabase } from './helper.js'

// jwt.keys: asymmetric access tokens on the @fastify/jwt base, a key set at
// GET {prefix}/.well-known/jwks.json, rotation, and no algorithm confusion.

const pem = (key: KeyObject, type: 'pkcs8' | 'spki') => key.export({ type, format: 'pem' }) as string
const ed = generateKeyPairSync('ed25519')
const ed2 = generateKeyPairSync('ed25519')
const es = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const es384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaSmall = generateKeyPairSync('rsa', { modulusLength: 1024 })

type KeyOption = NonNullable<SecureLoginOptions['jwt']['keys']>[number]
const edKey: KeyOption = { kid: 'ed-1', alg: 'EdDSA', privateKey: pem(ed.privateKey, 'pkcs8'), publicKey: pem(ed.publicKey, 'spki') }
const edKey2: KeyOption = { kid: 'ed-2', alg: 'EdDSA', privateKey: ed2.privateKey, publicKey: ed2.publicKey }
const esKey: KeyOption = { kid: 'es-1', alg: 'ES256', privateKey: es.privateKey, publicKey: pem(es.publicKey, 'spki') }
const rsaKey: KeyOption = { kid: 'rs-1', alg: 'RS256', privateKey: pem(rsa.privateKey, 'pkcs8'), publicKey: rsa.publicKey }

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const b64 = (value: object | string) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const partsOf = (token: string) => token.split('.') as [string, string, string]
const headerOf = (token: string) => JSON.parse(Buffer.from(partsOf(token)[0], 'base64url').toString()) as Record<string, unknown>

/** The test helper's app (`authenticate` on /me) with `jwt.keys`. */
function keyedApp (t: Parameters<typeof buildApp>[0], dialect: 'sqlite' | 'postgres', keys: KeyOption[], database?: TestDatabase): Promise<TestApp> {
  return buildApp(t, dialect, { jwt: { keys } }, database)
}

async function verified (app: FastifyInstance, token: string) {
  return app.inject({ url: '/verified', headers: bearer(token) })
}

// ---------------------------------------------------------------- options, checked without a database

const memoryDb = drizzle(new Database(':memory:'))
t.teardown(() => memoryDb.$client.close())
const withKeys = (keys: unknown) => ({ db: memoryDb, sms: { async send () {} }, jwt: { secret: TEST_SECRET, keys } }) as SecureLoginOptions

function keysMessage (keys: unknown): string {
  try {
    resolveOptions(withKeys(keys))
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('expected the keys to be refused')
}

t.test('jwt.keys is checked at startup, and no message shows key material', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['an empty list', [], /jwt\.keys must be a non-empty array of \{ kid, alg, privateKey, publicKey \}/],
    ['EdDSA with a P-256 key', [{ ...esKey, alg: 'EdDSA' }], /jwt\.keys\[0\] \(kid 'es-1'\): alg 'EdDSA' needs an Ed25519 key \(got ec\)/],
    ['ES256 with an Ed25519 key', [{ ...edKey, alg: 'ES256' }], /jwt\.keys\[0\] \(kid 'ed-1'\): alg 'ES256' needs an EC key on the P-256 curve \(got ed25519\)/],
    ['ES256 with a P-384 key', [{ kid: 'p384', alg: 'ES256', privateKey: es384.privateKey, publicKey: es384.publicKey }], /alg 'ES256' needs an EC key on the P-256 curve \(got the secp384r1 curve\)/],
    ['RS256 with an EC key', [{ ...esKey, alg: 'RS256' }], /alg 'RS256' needs an RSA key \(got ec\)/],
    ['RS256 with a 1024-bit key', [{ kid: 'small', alg: 'RS256', privateKey: rsaSmall.privateKey, publicKey: rsaSmall.publicKey }], /alg 'RS256' needs an RSA key of at least 2048 bits \(got 1024\)/],
    ['HS256', [{ ...edKey, alg: 'HS256' }], /jwt\.keys\[0\]\.alg must be 'EdDSA', 'ES256' or 'RS256' \(got "HS256"\)/],
    ['a public key of another pair', [{ ...edKey, publicKey: ed2.publicKey }], /jwt\.keys\[0\] \(kid 'ed-1'\): publicKey is not the public key of privateKey/],
    ['one kid twice', [edKey, { ...edKey2, kid: 'ed-1' }], /jwt\.keys\[1\]\.kid 'ed-1' is used twice/],
    ['the private key as the public key', [{ ...edKey, publicKey: edKey.privateKey }], /jwt\.keys\[0\]\.publicKey must be the public key: a private key was given/],
    ['a private KeyObject as the public key', [{ ...edKey2, publicKey: ed2.privateKey }], /jwt\.keys\[0\]\.publicKey must be a public key \(got a private KeyObject\)/],
    ['the public key as the private key', [{ ...edKey, privateKey: edKey.publicKey }], /jwt\.keys\[0\]\.privateKey must be an unencrypted private key in PEM/],
    ['garbage as the private key', [{ ...edKey, privateKey: `${(edKey.privateKey as string).slice(0, 60)}garbage` }], /jwt\.keys\[0\]\.privateKey must be an unencrypted private key in PEM .* could not be read/],
    ['a Buffer as the public key', [{ ...edKey, publicKey: Buffer.from(edKey.publicKey as string) }], /jwt\.keys\[0\]\.publicKey must be a public key in PEM or a KeyObject \(got a Buffer\)/],
    ['a kid with a space', [{ ...edKey, kid: 'my key' }], /jwt\.keys\[0\]\.kid must be 1 to 64 letters, digits/],
    ['an unknown key in an entry', [{ ...edKey, use: 'sig' }], /unknown option jwt\.keys\[0\]\.use/],
    ['no alg', [{ kid: 'x', privateKey: edKey.privateKey, publicKey: edKey.publicKey }], /jwt\.keys\[0\]\.alg is required/],
  ]
  const material = [edKey, esKey, rsaKey].flatMap((key) => [key.privateKey, key.publicKey]).filter((key): key is string => typeof key === 'string')
    .map((text) => text.split('\n')[1]!.slice(0, 20))
  for (const [name, keys, expected] of cases) {
    const message = keysMessage(keys)
    t.match(message, /^fastify-securelogin: /, `${name}: the plugin's message`)
    t.match(message, expected, `${name}: ${message}`)
    t.notMatch(message, /-----\s*[A-Za-z0-9+/=]{8}/, `${name}: no PEM body in the message`)
    for (const chunk of material) t.notOk(message.includes(chunk), `${name}: no key bytes in the message`)
  }
  const resolved = resolveOptions(withKeys([edKey, edKey2, esKey, rsaKey]))
  t.same(resolved.jwtKeys?.map((key) => [key.kid, key.alg]), [['ed-1', 'EdDSA'], ['ed-2', 'EdDSA'], ['es-1', 'ES256'], ['rs-1', 'RS256']], 'PEM strings and KeyObjects are both taken, in order')
  t.same(resolved.jwtKeys?.map((key) => Object.keys(key.jwk).sort()), [
    ['alg', 'crv', 'kid', 'kty', 'use', 'x'],
    ['alg', 'crv', 'kid', 'kty', 'use', 'x'],
    ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'],
    ['alg', 'e', 'kid', 'kty', 'n', 'use'],
  ], 'the JWKs to publish hold public members only')
})

t.test('jwt.secret stays required with jwt.keys', async (t) => {
  t.throws(() => resolveOptions({ db: memoryDb, sms: { async send () {} }, jwt: { keys: [edKey] } } as unknown as SecureLoginOptions), /jwt\.secret is required/)
})

// ---------------------------------------------------------------- the plugin with keys

for (const dialect of dialects) {
  t.test(`${dialect}: with jwt.keys the first key signs access tokens (kid, alg, typ at+jwt); refresh tokens keep their HMAC key`, async (t) => {
    const test = await keyedApp(t, dialect, [edKey, esKey])
    const tokens = await signIn(test, testPhone())
    t.same(headerOf(tokens.access_token), { alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' })
    t.same(headerOf(tokens.refresh_token), { alg: 'HS256', typ: 'rt+jwt' }, 'the refresh token is HS256 under the derived key, as without keys')
    const claims = createVerifier({ key: pem(ed.publicKey, 'spki'), algorithms: ['EdDSA'], checkTyp: 'at+jwt' })(tokens.access_token)
    t.equal(claims.sub, tokens.userid, 'any JWT library verifies it with the public key')
    t.throws(() => createVerifier({ key: TEST_SECRET, algorithms: ['HS256'] })(tokens.access_token), 'jwt.secret no longer verifies access tokens')

    const me = await test.app.inject({ url: '/me', headers: bearer(tokens.access_token) })
    t.equal(me.statusCode, 200, 'authenticate accepts it')
    const refreshed = await post(test.app, '/refresh', undefined, tokens.refresh_token)
    t.equal(refreshed.statusCode, 200)
    t.same(headerOf(refreshed.json().access_token), { alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' }, 'refreshed access tokens too')
    t.equal((await test.app.inject({ url: '/me', headers: bearer(refreshed.json().access_token) })).json().userid, tokens.userid)
    t.equal((await test.app.inject({ url: '/me', headers: bearer(tokens.refresh_token) })).json().code, 'SECURELOGIN_TOKEN_INVALID', 'a refresh token is still no access token')
  })

  t.test(`${dialect}: request.jwtVerify() and fastify.jwt.verify() accept the plugin's access tokens under jwt.keys`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET, keys: [edKey, rsaKey] } })
    app.get('/verified', async (request) => { await request.jwtVerify(); return request.user })
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())
    const answer = await verified(app, tokens.access_token)
    t.equal(answer.statusCode, 200, answer.body)
    t.same(answer.json(), (await app.inject({ url: '/me', headers: bearer(tokens.access_token) })).json(), 'the same request.user as authenticate')
    const claims = await (app.jwt.verify(tokens.access_token) as unknown as Promise<{ sub: string }>)
    t.equal(claims.sub, tokens.userid, 'fastify.jwt.verify() resolves to the claims (a promise under jwt.keys)')
    const own = app.jwt.sign({ sub: 'x', scope: 'download' })
    t.same(headerOf(own), { alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' }, 'fastify.jwt.sign() signs the app\'s own tokens with the first key')
    t.equal((await verified(app, own)).json().scope, 'download', 'and request.jwtVerify() accepts them')
    t.equal((await verified(app, tokens.refresh_token)).statusCode, 401, 'a refresh token is refused')
  })

  t.test(`${dialect}: an app that registered @fastify/jwt first keeps it; ours, under its namespace, uses jwt.keys`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(fastifyJwt, { secret: 'the-app-s-own-secret-for-its-own-tokens' })
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET, keys: [esKey] } })
    app.get('/ours', async (request) => {
      await (request as unknown as Record<string, () => Promise<unknown>>).secureloginJwtVerify!()
      return request.user
    })
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())
    t.same(headerOf(tokens.access_token), { alg: 'ES256', typ: 'at+jwt', kid: 'es-1' })
    t.equal((await app.inject({ url: '/ours', headers: bearer(tokens.access_token) })).json().userid, tokens.userid)
  })

  t.test(`${dialect}: rotation — add the new key first, drop the old one after one access-token lifetime`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const before = await keyedApp(t, dialect, [edKey], database)
    const during = await keyedApp(t, dialect, [edKey2, edKey], database)
    const after = await keyedApp(t, dialect, [edKey2], database)
    const old = await signIn(before, testPhone())
    t.equal((await during.app.inject({ url: '/me', headers: bearer(old.access_token) })).statusCode, 200, 'a token of the old key works while both are listed')
    const refreshed = (await post(during.app, '/refresh', undefined, old.refresh_token)).json()
    t.equal(headerOf(refreshed.access_token).kid, 'ed-2', 'new tokens carry the new key')
    t.equal((await before.app.inject({ url: '/me', headers: bearer(refreshed.access_token) })).json().code, 'SECURELOGIN_TOKEN_INVALID', 'an instance that does not list the new key yet refuses them')
    t.equal((await after.app.inject({ url: '/me', headers: bearer(refreshed.access_token) })).statusCode, 200)
    const dropped = await after.app.inject({ url: '/me', headers: bearer(old.access_token) })
    t.equal(dropped.json().code, 'SECURELOGIN_TOKEN_INVALID', 'once the old key is dropped its tokens are refused')
    t.equal((await post(after.app, '/refresh', undefined, refreshed.refresh_token)).statusCode, 200, 'refresh tokens do not depend on jwt.keys')
  })

  t.test(`${dialect}: algorithm confusion and foreign keys are refused by authenticate and request.jwtVerify()`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET, keys: [edKey, esKey, rsaKey] } })
    app.get('/verified', async (request) => { await request.jwtVerify(); return request.user })
    app.get('/me', { preHandler: app.authenticate }, async (request) => request.user)
    await app.ready()
    const tokens = await signIn({ app, outbox, database }, testPhone())
    const payload = partsOf(tokens.access_token)[1]
    const hmac = (head: object, key: string | Buffer) => {
      const input = `${b64(head)}.${payload}`
      return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
    }
    const edSigned = (head: object, key: KeyObject) => {
      const input = `${b64(head)}.${payload}`
      return `${input}.${signBytes(null, Buffer.from(input), key).toString('base64url')}`
    }
    const published = (await app.inject({ url: '/api/auth/.well-known/jwks.json' })).json().keys as Array<{ kid: string }>
    const attacks: Record<string, string> = {}
    for (const key of [edKey, esKey, rsaKey]) {
      const publicPem = typeof key.publicKey === 'string' ? key.publicKey : pem(key.publicKey, 'spki')
      attacks[`HS256 keyed with ${key.kid}'s public key PEM`] = hmac({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }, publicPem)
      attacks[`HS256 keyed with ${key.kid}'s public key PEM, no kid`] = hmac({ alg: 'HS256', typ: 'at+jwt' }, publicPem)
      attacks[`HS256 keyed with ${key.kid}'s published JWK`] = hmac({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }, JSON.stringify(published.find((jwk) => jwk.kid === key.kid)))
    }
    Object.assign(attacks, {
      'HS256 keyed with jwt.secret': hmac({ alg: 'HS256', typ: 'at+jwt' }, TEST_SECRET),
      'HS256 keyed with jwt.secret, naming a listed kid': hmac({ alg: 'HS256', typ: 'at+jwt', kid: 'ed-1' }, TEST_SECRET),
      'alg none': `${b64({ alg: 'none', typ: 'at+jwt', kid: 'ed-1' })}.${payload}.`,
      'alg none, no kid': `${b64({ alg: 'none', typ: 'at+jwt' })}.${payload}.`,
      'alg none with a signature': `${b64({ alg: 'none', typ: 'at+jwt', kid: 'ed-1' })}.${payload}.${partsOf(tokens.access_token)[2]}`,
      'an unlisted key under a listed kid': edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' }, ed2.privateKey),
      'an unlisted key under its own kid': edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-2' }, ed2.privateKey),
      'the signing key under another listed kid': edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: 'es-1' }, ed.privateKey),
      'the signing key without a kid': edSigned({ alg: 'EdDSA', typ: 'at+jwt' }, ed.privateKey),
      'a kid that is not a string': edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: ['ed-1'] }, ed.privateKey),
      'a kid of the object prototype': edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: '__proto__' }, ed.privateKey),
      'ES256 claimed for the EdDSA key': edSigned({ alg: 'ES256', typ: 'at+jwt', kid: 'ed-1' }, ed.privateKey),
      'a changed payload': `${partsOf(tokens.access_token)[0]}.${b64({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: 'someone-else' })}.${partsOf(tokens.access_token)[2]}`,
    })
    t.equal((await app.inject({ url: '/me', headers: bearer(edSigned({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' }, ed.privateKey)) })).statusCode, 200, 'control: the token re-signed as it was works')
    for (const [name, token] of Object.entries(attacks)) {
      const me = await app.inject({ url: '/me', headers: bearer(token) })
      t.equal(me.statusCode, 401, `${name}: authenticate refuses it`)
      // An empty signature does not even look like a token to authenticate's Bearer pattern.
      t.equal(me.json().code, token.endsWith('.') ? 'SECURELOGIN_TOKEN_MISSING' : 'SECURELOGIN_TOKEN_INVALID', `${name}: as an invalid token`)
      const own = await verified(app, token)
      t.equal(own.statusCode, 401, `${name}: request.jwtVerify() refuses it`)
      t.equal(own.json().code, 'FST_JWT_AUTHORIZATION_TOKEN_INVALID', `${name}: as @fastify/jwt's invalid token`)
      await t.rejects((async () => app.jwt.verify(token))(), `${name}: fastify.jwt.verify() refuses it`)
    }
  })

  t.test(`${dialect}: an access token of a listed key without typ at+jwt is refused`, async (t) => {
    const test = await keyedApp(t, dialect, [edKey])
    const tokens = await signIn(test, testPhone())
    const payload = JSON.parse(Buffer.from(partsOf(tokens.access_token)[1], 'base64url').toString())
    for (const typ of ['JWT', 'rt+jwt']) {
      const token = createSigner({ key: edKey.privateKey as string, algorithm: 'EdDSA', kid: 'ed-1', header: { alg: 'EdDSA', typ } })(payload)
      t.equal((await test.app.inject({ url: '/me', headers: bearer(token) })).json().code, 'SECURELOGIN_TOKEN_INVALID', `typ ${typ}`)
    }
  })

  t.test(`${dialect}: GET {prefix}/.well-known/jwks.json publishes the public keys, cacheable, and never a private member`, async (t) => {
    const test = await keyedApp(t, dialect, [edKey, esKey, rsaKey])
    const answer = await test.app.inject({ url: '/api/auth/.well-known/jwks.json' })
    t.equal(answer.statusCode, 200)
    t.equal(answer.headers['cache-control'], 'public, max-age=300')
    t.match(answer.headers['content-type'], /^application\/json/)
    const { keys } = answer.json() as { keys: Array<Record<string, string>> }
    t.same(keys.map((key) => [key.kid, key.kty, key.alg, key.use, key.crv]), [
      ['ed-1', 'OKP', 'EdDSA', 'sig', 'Ed25519'],
      ['es-1', 'EC', 'ES256', 'sig', 'P-256'],
      ['rs-1', 'RSA', 'RS256', 'sig', undefined],
    ], 'every listed key, the signing key first')
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) {
      t.notOk(keys.some((key) => member in key), `no key has a "${member}" member`)
    }
    t.notMatch(answer.body, /PRIVATE|"d"\s*:/, 'nothing private in the body')
    for (const [i, key] of keys.entries()) {
      const imported = createPublicKey({ key: key as never, format: 'jwk' })
      const given = [edKey, esKey, rsaKey][i]!.publicKey
      t.ok(imported.equals(typeof given === 'string' ? createPublicKey(given) : given), `${key.kid}: the JWK is the listed public key`)
    }
    const tokens = await signIn(test, testPhone())
    const jwk = createPublicKey({ key: keys[0] as never, format: 'jwk' })
    t.equal(createVerifier({ key: pem(jwk, 'spki'), algorithms: ['EdDSA'] })(tokens.access_token).sub, tokens.userid, 'the published key verifies access tokens')
    const head = await test.app.inject({ method: 'HEAD', url: '/api/auth/.well-known/jwks.json' })
    t.equal(head.statusCode, 200, 'HEAD works too')
  })

  t.test(`${dialect}: without jwt.keys the key set is empty`, async (t) => {
    const test = await buildApp(t, dialect, { prefix: '/auth' })
    const answer = await test.app.inject({ url: '/auth/.well-known/jwks.json' })
    t.equal(answer.statusCode, 200)
    t.same(answer.json(), { keys: [] })
    t.equal(answer.headers['cache-control'], 'public, max-age=300')
  })
}
