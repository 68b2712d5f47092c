import t from 'tap'
import type { SecureLoginEvent } from '../lib/index.js'
import { buildApp, dialects, post, signIn, testPhone, waitFor } from './helper.js'

// onEvent: an audit trail of every sign-in step, handed over after the action and never on the
// request's path.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/**
 * Waits until `arrived` holds (at most 5 s: an event that never comes then fails the assertions
 * after it), then 20 ms more, so that an event that should not be there has its chance to show.
 * Handed over after the action, an event may follow the answer by a database round trip or more.
 */
async function settle (arrived: () => boolean): Promise<void> {
  await waitFor(arrived, 5_000)
  await sleep(20)
}
const has = (events: SecureLoginEvent[], type: SecureLoginEvent['type']) => () => events.some((event) => event.type === type)

for (const dialect of dialects) {
  t.test(`${dialect}: each step emits its event, with the number masked`, async (t) => {
    const events: SecureLoginEvent[] = []
    const test = await buildApp(t, dialect, {
      onEvent: (event) => { events.push(event) },
      otp: { resendInterval: 0.001 },
      rateLimit: { failedVerifiesPerPhone: { max: 2, window: '1d' }, registersPerIp: { max: 1, window: '1h' } },
    })
    const phone = testPhone()
    await post(test.app, '/register', { phone })
    const login = await post(test.app, '/login', { phone })
    const userid = login.json().userid as string
    const code = test.outbox.lastCodeFor(phone)
    await post(test.app, '/verify_sms', { phone, token: code === '000000' ? '111111' : '000000' })
    const signedIn = (await post(test.app, '/verify_sms', { phone, token: code })).json()
    const refreshed = (await post(test.app, '/refresh', {}, signedIn.refresh_token)).json()
    await new Promise((resolve) => setTimeout(resolve, 50))
    await post(test.app, '/logout', {}, refreshed.access_token)
    await post(test.app, '/register', { phone: testPhone() })
    await settle(() => events.length >= 6)

    t.same(events.map((event) => event.type), ['otp.sent', 'otp.failed', 'login', 'refresh', 'logout', 'limit'])
    const byType = new Map(events.map((event) => [event.type, event]))
    t.match(byType.get('otp.failed'), { userid, reason: 'wrong-code' })
    t.match(byType.get('login'), { userid, sid: String })
    t.equal(byType.get('login')!.sid, byType.get('refresh')!.sid, 'login and refresh name the same session')
    t.match(byType.get('logout'), { userid, reason: 'logout' })
    t.match(byType.get('limit'), { reason: 'SECURELOGIN_RATE_LIMITED' })
    for (const event of events) {
      t.ok(event.at instanceof Date, `${event.type}: at`)
      t.equal(event.ip, '127.0.0.1', `${event.type}: ip`)
      if (event.phone !== undefined) t.notOk(event.phone.includes(phone.slice(3, -2)), `${event.type}: the number is masked (${event.phone})`)
    }
    t.notOk(JSON.stringify(events).includes(phone), 'no full number anywhere in the events')
  })

  t.test(`${dialect}: reuse, lockout and a failed SMS are events too`, async (t) => {
    const events: SecureLoginEvent[] = []
    const codes: string[] = []
    let failing = false
    const test = await buildApp(t, dialect, {
      onEvent: (event) => { events.push(event) },
      otp: { resendInterval: 0.001 },
      sessions: { reuseGrace: '1s' },
      rateLimit: { failedVerifiesPerPhone: { max: 1, window: '1d' } },
      sms: { async send (message) { if (failing) throw new Error('down'); codes.push(message.code) } },
    })
    test.app.log.level = 'silent'
    const phone = testPhone()
    await post(test.app, '/register', { phone })
    failing = true
    await post(test.app, '/login', { phone })
    await settle(has(events, 'sms.failed'))
    t.equal(events.at(-1)?.type, 'sms.failed')
    failing = false
    await post(test.app, '/login', { phone })
    await post(test.app, '/verify_sms', { phone, token: '000001' })
    await post(test.app, '/verify_sms', { phone, token: '000002' })
    await settle(has(events, 'otp.locked'))
    t.same(events.slice(-3).map((event) => event.type), ['otp.sent', 'otp.failed', 'otp.locked'])

    await test.app.secureLogin.unlockPhone(phone)
    await post(test.app, '/login', { phone })
    const tokens = (await post(test.app, '/verify_sms', { phone, token: codes.at(-1)! })).json()
    await post(test.app, '/refresh', {}, tokens.refresh_token)
    await new Promise((resolve) => setTimeout(resolve, 1100)) // past reuseGrace: a replay is a theft signal
    t.equal((await post(test.app, '/refresh', {}, tokens.refresh_token)).statusCode, 401)
    await settle(has(events, 'refresh.reuse'))
    t.match(events.at(-1), { type: 'refresh.reuse', userid: tokens.userid, sid: String })
  })

  t.test(`${dialect}: a refused code names its account and why: a userid that is not the number's, a wrong change-of-number code`, async (t) => {
    const events: SecureLoginEvent[] = []
    const test = await buildApp(t, dialect, { onEvent: (event) => { events.push(event) } })
    const caller = await signIn(test, testPhone())
    const phone = testPhone()
    await post(test.app, '/register', { phone })
    const userid = (await post(test.app, '/login', { phone })).json().userid as string
    await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone), userid: '00000000-0000-4000-8000-000000000000' })
    const newPhone = testPhone()
    await post(test.app, '/phone', { phone: newPhone }, caller.access_token)
    const code = test.outbox.lastCodeFor(newPhone)
    t.equal((await post(test.app, '/phone/verify', { phone: newPhone, token: code === '000000' ? '111111' : '000000' }, caller.access_token)).json().code, 'SECURELOGIN_OTP_INVALID')
    await settle(() => events.filter((event) => event.type === 'otp.failed').length >= 2)

    t.match(events.filter((event) => event.type === 'otp.failed'), [
      { userid, reason: 'userid-mismatch' },
      { userid: caller.userid, reason: 'wrong-code' },
    ], 'the mismatch names the number\'s account; the change, the account that asked it')
  })

  t.test(`${dialect}: a throwing or hanging handler neither breaks nor delays a request`, async (t) => {
    let calls = 0
    const hanging = await buildApp(t, dialect, { onEvent: () => { calls++; return new Promise<void>(() => {}) } })
    const phone = testPhone()
    await post(hanging.app, '/register', { phone })
    const login = await post(hanging.app, '/login', { phone })
    t.equal(login.statusCode, 200, 'a handler that never settles does not hold the answer')
    t.equal((await post(hanging.app, '/verify_sms', { phone, token: hanging.outbox.lastCodeFor(phone) })).statusCode, 200)
    await settle(() => calls >= 2)
    t.equal(calls, 2)

    const throwing = await buildApp(t, dialect, { onEvent: () => { throw new Error('audit table is gone') } })
    throwing.app.log.level = 'silent'
    const other = testPhone()
    await post(throwing.app, '/register', { phone: other })
    await post(throwing.app, '/login', { phone: other })
    t.equal((await post(throwing.app, '/verify_sms', { phone: other, token: throwing.outbox.lastCodeFor(other) })).statusCode, 200, 'a throwing handler changes no answer')
  })
}
