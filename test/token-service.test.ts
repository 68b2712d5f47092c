import { generateKeyPairSync } from 'node:crypto'
import { createSigner, createVerifier } from 'fast-jwt'
import t from 'tap'
import { TokenExpiredError, TokenInvalidError } from '../lib/errors.js'
import { deriveKey } from '../lib/keys.js'
import { tokenService } from './fixtures/token-service.js'
import { TEST_SECRET } from './helper.js'

// lib/tokens.ts on its own: the claims and lifetimes of the tokens it signs, and every way a token
// it did not sign, or signed for another purpose, is refused, with the error a client is told.

const SESSION = { userId: '6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', sessionId: '0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b', phone: '+14155550123' }
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0, 999)
const DAY = 24 * 3600 * 1000

const ed = generateKeyPairSync('ed25519')
const edKey = { kid: 'ed-1', alg: 'EdDSA' as const, privateKey: ed.privateKey, publicKey: ed.publicKey }

function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
}

function headerOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())
}

/** What `run` throws, or undefined. */
function thrownBy (run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  return undefined
}

/** A refresh token signed with the plugin's refresh key (as only the plugin could), with the claims given. */
function forgedRefresh (claims: Record<string, unknown>, header: { typ?: string } = { typ: 'rt+jwt' }, algorithm: 'HS256' | 'HS512' = 'HS256'): string {
  // fast-jwt's signer takes `typ`, though its type definitions omit it.
  const signing = { key: deriveKey(Buffer.from(TEST_SECRET), 'refresh-token'), algorithm, ...header }
  return createSigner(signing)(claims)
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

t.test('an access token: its claims, the extra claims under ours, and its lifetime', async (t) => {
  const { tokens } = await tokenService(t)
  const far = NOW + 30 * DAY
  const { token, expiresIn } = tokens.signAccess({ ...SESSION, fresh: true, now: NOW, sessionExpiresAt: far, extraClaims: { role: 'admin', type: 'not-ours' } })
  const claims = payloadOf(token)
  t.match(claims, { type: 'access', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, fresh: true, role: 'admin' }, 'the session\'s claims, the app\'s extra claims, and ours win')
  t.equal(claims.iat, Math.floor(NOW / 1000), 'iat in whole seconds, rounded down')
  t.equal(claims.exp, Math.floor(NOW / 1000) + 600, 'exp an accessTokenTtl later')
  t.equal(expiresIn, 600, 'expires_in is that lifetime')
  t.type(claims.jti, 'string')
  t.not(payloadOf(tokens.signAccess({ ...SESSION, fresh: true, now: NOW, sessionExpiresAt: far, extraClaims: {} }).token).jti, claims.jti, 'each token its own jti')
  t.equal(payloadOf(tokens.signAccess({ ...SESSION, fresh: false, now: NOW, sessionExpiresAt: far, extraClaims: {} }).token).fresh, false)

  const sessionEnd = NOW + 100_500
  const capped = tokens.signAccess({ ...SESSION, fresh: true, now: NOW, sessionExpiresAt: sessionEnd, extraClaims: {} })
  t.equal(payloadOf(capped.token).exp, Math.floor(sessionEnd / 1000), 'never past its session\'s end, in whole seconds rounded down')
  t.equal(capped.expiresIn, Math.floor(sessionEnd / 1000) - Math.floor(NOW / 1000))
})

t.test('a refresh token: its claims, its header and its lifetime', async (t) => {
  const { tokens } = await tokenService(t, { issuer: 'https://auth.example', audience: 'example-app' })
  const sessionEnd = NOW + 30 * DAY + 700
  const token = tokens.signRefresh({ ...SESSION, generation: 7, now: NOW, sessionExpiresAt: sessionEnd })
  const claims = payloadOf(token)
  t.match(claims, { type: 'refresh', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, gen: 7, iss: 'https://auth.example', aud: 'example-app' })
  t.equal(claims.iat, Math.floor(NOW / 1000))
  t.equal(claims.exp, Math.floor(sessionEnd / 1000), 'it lives as long as its session')
  t.type(claims.jti, 'string')
  t.match(headerOf(token), { alg: 'HS256', typ: 'rt+jwt' })
  // Its key is derived from the secret, not the secret itself.
  const withSecret = createVerifier({ key: Buffer.from(TEST_SECRET), algorithms: ['HS256'] })
  t.ok(thrownBy(() => withSecret(token)), 'the access-token secret does not verify it')
  const withRefreshKey = createVerifier({ key: deriveKey(Buffer.from(TEST_SECRET), 'refresh-token'), algorithms: ['HS256'], allowedIss: 'https://auth.example', allowedAud: 'example-app' })
  t.equal(withRefreshKey(token).sid, SESSION.sessionId, 'the derived refresh key does')
})

t.test('verifyAccess accepts its own tokens and refuses every other', async (t) => {
  const { tokens, accessJwt } = await tokenService(t)
  const now = Date.now()
  const { token } = tokens.signAccess({ ...SESSION, fresh: true, now, sessionExpiresAt: now + DAY, extraClaims: {} })
  t.match(tokens.verifyAccess(token), { type: 'access', sub: SESSION.userId, sid: SESSION.sessionId, fresh: true })

  const expired = tokens.signAccess({ ...SESSION, fresh: true, now: now - DAY, sessionExpiresAt: now + DAY, extraClaims: {} }).token
  t.type(thrownBy(() => tokens.verifyAccess(expired)), TokenExpiredError, 'an expired one: TOKEN_EXPIRED')
  t.type(thrownBy(() => tokens.verifyAccess(`${token}x`)), TokenInvalidError, 'a bad signature: TOKEN_INVALID')
  const refresh = tokens.signRefresh({ ...SESSION, generation: 0, now, sessionExpiresAt: now + DAY })
  t.type(thrownBy(() => tokens.verifyAccess(refresh)), TokenInvalidError, 'a refresh token: TOKEN_INVALID')
  // Signed with the access key, so only the claims can tell.
  const noExp = accessJwt.sign({ type: 'access', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, fresh: true })
  t.notOk('exp' in payloadOf(noExp), '(precondition) the token has no exp')
  t.type(thrownBy(() => tokens.verifyAccess(noExp)), TokenInvalidError, 'an access-key token without exp: TOKEN_INVALID, it would never expire')
  const refreshShaped = accessJwt.sign({ type: 'refresh', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, gen: 0, exp: nowSeconds() + 60 })
  t.type(thrownBy(() => tokens.verifyAccess(refreshShaped)), TokenInvalidError, 'an access-key token of another type: TOKEN_INVALID')
})

t.test('with jwt.keys, verifyAccess answers a promise with the same refusals', async (t) => {
  const { tokens } = await tokenService(t, { keys: [edKey] })
  const now = Date.now()
  const { token } = tokens.signAccess({ ...SESSION, fresh: false, now, sessionExpiresAt: now + DAY, extraClaims: {} })
  const answer = tokens.verifyAccess(token)
  t.type(answer, Promise)
  t.match(await answer, { type: 'access', sid: SESSION.sessionId, fresh: false })
  const expired = tokens.signAccess({ ...SESSION, fresh: true, now: now - DAY, sessionExpiresAt: now + DAY, extraClaims: {} }).token
  await t.rejects(Promise.resolve(tokens.verifyAccess(expired)), TokenExpiredError, 'an expired one: TOKEN_EXPIRED')
  await t.rejects(Promise.resolve(tokens.verifyAccess(`${token}x`)), TokenInvalidError, 'a bad signature: TOKEN_INVALID')
})

t.test('verifyRefresh accepts its own tokens and refuses every other', async (t) => {
  const { tokens, accessJwt } = await tokenService(t)
  const now = Date.now()
  const token = tokens.signRefresh({ ...SESSION, generation: 3, now, sessionExpiresAt: now + DAY })
  t.match(tokens.verifyRefresh(token), { type: 'refresh', sub: SESSION.userId, sid: SESSION.sessionId, gen: 3 })

  const expired = tokens.signRefresh({ ...SESSION, generation: 3, now: now - 2 * DAY, sessionExpiresAt: now - DAY })
  t.type(thrownBy(() => tokens.verifyRefresh(expired)), TokenExpiredError, 'an expired one: TOKEN_EXPIRED')
  t.type(thrownBy(() => tokens.verifyRefresh(`${token}x`)), TokenInvalidError, 'a bad signature: TOKEN_INVALID')
  const access = tokens.signAccess({ ...SESSION, fresh: true, now, sessionExpiresAt: now + DAY, extraClaims: {} }).token
  t.type(thrownBy(() => tokens.verifyRefresh(access)), TokenInvalidError, 'an access token: TOKEN_INVALID')
  t.type(thrownBy(() => tokens.verifyRefresh(accessJwt.sign({ type: 'refresh', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, gen: 0, exp: nowSeconds() + 60 }))), TokenInvalidError, 'a refresh-shaped token of the access key: TOKEN_INVALID')

  const claims = { type: 'refresh', sub: SESSION.userId, sid: SESSION.sessionId, phone: SESSION.phone, exp: nowSeconds() + 60 }
  t.equal(tokens.verifyRefresh(forgedRefresh({ ...claims, gen: 0 })).gen, 0, '(precondition) the refresh key\'s own token passes')
  for (const gen of [1.5, '1', null]) {
    t.type(thrownBy(() => tokens.verifyRefresh(forgedRefresh({ ...claims, gen }))), TokenInvalidError, `gen ${JSON.stringify(gen)}: TOKEN_INVALID`)
  }
  t.type(thrownBy(() => tokens.verifyRefresh(forgedRefresh({ ...claims, gen: 0 }, {}))), TokenInvalidError, 'without typ rt+jwt: TOKEN_INVALID')
  // The algorithm is pinned (RFC 8725 §3.1), not taken from the token's header.
  t.type(thrownBy(() => tokens.verifyRefresh(forgedRefresh({ ...claims, gen: 0 }, { typ: 'rt+jwt' }, 'HS512'))), TokenInvalidError, 'signed with the refresh key under another algorithm: TOKEN_INVALID')
  t.type(thrownBy(() => tokens.verifyRefresh(forgedRefresh({ ...claims, gen: 0, type: 'access' }))), TokenInvalidError, 'of another type: TOKEN_INVALID')
})
