import t from 'tap'
import Fastify from 'fastify'
import secureLogin from '../lib/index.js'
import { createOutbox, createTestDatabase, dialects, post, signIn, TEST_SECRET, testPhone } from './helper.js'

// app.authenticateRefresh promises "a valid refresh token of a session not revoked". The revocation
// list only holds sessions ended within an access token's lifetime, and a refresh token lives for
// months: the hook must read the session, or a logged-out refresh token would pass it again once
// the list forgot the session.
for (const dialect of dialects) {
  t.test(`${dialect}: authenticateRefresh refuses the refresh token of a session ended long ago`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    const outbox = createOutbox()
    const app = Fastify()
    database.beforeClose.push(() => app.close())
    await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET, accessTokenTtl: '3s' }, revocationMaxDelay: '100ms' })
    app.get('/with-refresh', { preHandler: app.authenticateRefresh }, async (request) => ({ sid: request.user.sid }))
    await app.ready()
    const test = { app, outbox, database }
    const withRefresh = (token: string) => test.app.inject({ url: '/with-refresh', headers: { authorization: `Bearer ${token}` } })

    const kept = await signIn(test, testPhone())
    const ended = await signIn(test, testPhone())
    t.equal((await withRefresh(ended.refresh_token)).statusCode, 200, 'a live session passes')
    t.equal((await post(test.app, '/logout', undefined, ended.access_token)).statusCode, 200)
    t.equal((await withRefresh(ended.refresh_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'refused at once')
    // Past the access tokens' lifetime (3 s: a 1 s token signed at a second's end could expire
    // before the logout above) and the list's refreshes, with room for a busy machine: the
    // revocation list no longer holds the session.
    await new Promise((resolve) => setTimeout(resolve, 4_500))
    const later = await withRefresh(ended.refresh_token)
    t.equal(later.statusCode, 401, 'still refused once the revocation list has forgotten the session')
    t.equal(later.json().code, 'SECURELOGIN_SESSION_REVOKED')
    t.equal((await withRefresh(kept.refresh_token)).statusCode, 200, 'the other session still passes')
    t.equal((await post(test.app, '/refresh', undefined, ended.refresh_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', '/refresh refuses it too')
  })
}
