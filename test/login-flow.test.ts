import t from 'tap'
import { buildApp, dialects, post, testPhone } from './helper.js'

for (const dialect of dialects) {
  t.test(`${dialect}: register → login → verify_sms → protected route → refresh → logout`, async (t) => {
    const test = await buildApp(t, dialect)
    const { app, outbox } = test
    const phone = testPhone()

    const register = await post(app, '/register', { phone, username: 'my test account', auth_type: 'PHONE' })
    t.equal(register.statusCode, 201)
    const { userid, message } = register.json()
    t.equal(message, 'registered successfully')
    t.match(userid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)

    const login = await post(app, '/login', { phone, auth_type: 'PHONE' })
    t.equal(login.statusCode, 200)
    t.same(login.json(), { phone, userid })
    t.equal(outbox.messages.length, 1)
    const sms = outbox.messages[0]!
    t.equal(sms.to, phone)
    t.match(sms.code, /^\d{6}$/)
    t.ok(sms.body.includes(sms.code), 'the text carries the code')

    const verify = await post(app, '/verify_sms', { phone, token: sms.code, userid })
    t.equal(verify.statusCode, 200, verify.body)
    const tokens = verify.json()
    t.equal(tokens.userid, userid)
    t.equal(tokens.token_type, 'Bearer')
    t.equal(tokens.expires_in, 600)

    const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${tokens.access_token}` } })
    t.equal(me.statusCode, 200)
    t.same(me.json(), { userid, phone, sid: me.json().sid, fresh: true })

    const refreshed = await app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${tokens.refresh_token}`, 'content-type': 'application/json' }, payload: '{}' })
    t.equal(refreshed.statusCode, 200, refreshed.body)
    const pair = refreshed.json()
    t.not(pair.refresh_token, tokens.refresh_token)
    const meAgain = await app.inject({ url: '/me', headers: { authorization: `Bearer ${pair.access_token}` } })
    t.equal(meAgain.json().fresh, false, 'a refreshed access token is not fresh')
    t.equal(meAgain.json().sid, me.json().sid, 'refresh keeps the session')

    const logout = await post(app, '/logout', { refresh_token: pair.refresh_token }, pair.access_token)
    t.equal(logout.statusCode, 200)
    t.same(logout.json(), { message: 'logout successful' })
    t.equal((await post(app, '/refresh', undefined, pair.refresh_token)).statusCode, 401, 'the refresh token no longer works')
    t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${pair.access_token}` } })).statusCode, 401, 'the access token no longer works')
  })

  t.test(`${dialect}: login_sms is login under the Flask name, and national numbers use defaultCountry`, async (t) => {
    const { app, outbox } = await buildApp(t, dialect, { defaultCountry: 'US' })
    const register = await post(app, '/register', { phone: '(415) 555-0142' })
    t.equal(register.statusCode, 201)
    const login = await post(app, '/login_sms', { phone: '+1 415 555 0142' })
    t.equal(login.statusCode, 200)
    t.same(login.json(), { phone: '+14155550142', userid: register.json().userid })
    t.equal(outbox.messages[0]?.to, '+14155550142')
  })
}
