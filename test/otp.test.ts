import t from 'tap'
import { buildApp, dialects, post, testPhone, type TestApp } from './helper.js'

async function requestCode (test: TestApp, phone: string): Promise<string> {
  await post(test.app, '/register', { phone })
  const login = await post(test.app, '/login', { phone })
  if (login.statusCode !== 200) throw new Error(login.body)
  return test.outbox.lastCodeFor(phone)
}

function wrongCode (code: string): string {
  return code === '000000' ? '000001' : '000000'
}

for (const dialect of dialects) {
  t.test(`${dialect}: codes`, async (t) => {
    t.test('the code is stored only as a keyed hash', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const code = await requestCode(test, phone)
      const rows = await test.database.query('SELECT * FROM securelogin_otp_challenges')
      t.equal(rows.length, 1)
      const stored = JSON.stringify(rows)
      t.notOk(stored.includes(code), 'the plaintext code appears nowhere in the row')
      t.match(String(rows[0]!.code_hash), /^[A-Za-z0-9_-]{43}$/, 'an HMAC-SHA256 digest')
    })

    t.test('a wrong code is refused and a right one works', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const code = await requestCode(test, phone)
      const wrong = await post(test.app, '/verify_sms', { phone, token: wrongCode(code) })
      t.equal(wrong.statusCode, 401)
      t.equal(wrong.json().code, 'SECURELOGIN_OTP_INVALID')
      const right = await post(test.app, '/verify_sms', { phone, token: code })
      t.equal(right.statusCode, 200)
    })

    t.test('a code works once', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const code = await requestCode(test, phone)
      t.equal((await post(test.app, '/verify_sms', { phone, token: code })).statusCode, 200)
      const replay = await post(test.app, '/verify_sms', { phone, token: code })
      t.equal(replay.statusCode, 401)
      t.equal(replay.json().code, 'SECURELOGIN_OTP_EXPIRED')
    })

    t.test('a code expires', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const code = await requestCode(test, phone)
      // Age the challenge instead of sleeping through otp.ttl.
      const past = dialect === 'sqlite' ? Date.now() - 1000 : new Date(Date.now() - 1000)
      await test.database.query('UPDATE securelogin_otp_challenges SET expires_at = $1', [past])
      const late = await post(test.app, '/verify_sms', { phone, token: code })
      t.equal(late.statusCode, 401)
      t.equal(late.json().code, 'SECURELOGIN_OTP_EXPIRED')
    })

    t.test('a short otp.ttl really expires the code', async (t) => {
      const test = await buildApp(t, dialect, { otp: { ttl: 1 } })
      const phone = testPhone()
      const code = await requestCode(test, phone)
      await new Promise((resolve) => setTimeout(resolve, 1100))
      t.equal((await post(test.app, '/verify_sms', { phone, token: code })).json().code, 'SECURELOGIN_OTP_EXPIRED')
    })

    t.test('after maxAttempts wrong codes even the right one is refused', async (t) => {
      const test = await buildApp(t, dialect, { otp: { maxAttempts: 3 } })
      const phone = testPhone()
      const code = await requestCode(test, phone)
      for (let i = 0; i < 3; i++) {
        t.equal((await post(test.app, '/verify_sms', { phone, token: wrongCode(code) })).json().code, 'SECURELOGIN_OTP_INVALID')
      }
      const blocked = await post(test.app, '/verify_sms', { phone, token: code })
      t.equal(blocked.statusCode, 429)
      t.equal(blocked.json().code, 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED')
    })

    t.test('concurrent wrong guesses cannot exceed maxAttempts', async (t) => {
      // The number's own lock (failedVerifiesPerPhone) is raised out of the way: this is the code's limit.
      const test = await buildApp(t, dialect, { otp: { maxAttempts: 5 }, rateLimit: { failedVerifiesPerPhone: { max: 100, window: '1d' } } })
      const phone = testPhone()
      const code = await requestCode(test, phone)
      const guesses = Array.from({ length: 30 }, (_, i) => String(i).padStart(6, '0')).filter((guess) => guess !== code).slice(0, 25)
      const answers = await Promise.all(guesses.map((token) => post(test.app, '/verify_sms', { phone, token })))
      t.equal(answers.filter((a) => a.json().code === 'SECURELOGIN_OTP_INVALID').length, 5, 'exactly maxAttempts guesses were compared')
      t.equal(answers.filter((a) => a.json().code === 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED').length, 20)
      const rows = await test.database.query('SELECT attempts FROM securelogin_otp_challenges')
      t.equal(Number(rows[0]!.attempts), 5)
      t.equal((await post(test.app, '/verify_sms', { phone, token: code })).statusCode, 429)
    })

    t.test('of 20 concurrent verifications with the right code exactly one gets tokens', async (t) => {
      const test = await buildApp(t, dialect, { otp: { maxAttempts: 10 } })
      const phone = testPhone()
      const code = await requestCode(test, phone)
      const answers = await Promise.all(Array.from({ length: 20 }, () => post(test.app, '/verify_sms', { phone, token: code })))
      t.equal(answers.filter((a) => a.statusCode === 200).length, 1)
      t.ok(answers.every((a) => a.statusCode === 200 || a.statusCode === 401 || a.statusCode === 429), 'the others get a 4xx')
      const sessions = await test.database.query('SELECT id FROM securelogin_sessions')
      t.equal(sessions.length, 1, 'one session was opened')
    })

    t.test('a new code replaces the previous one', async (t) => {
      const test = await buildApp(t, dialect, { otp: { resendInterval: 1 } })
      const phone = testPhone()
      const first = await requestCode(test, phone)
      await new Promise((resolve) => setTimeout(resolve, 1100))
      const second = await requestCode(test, phone)
      if (first !== second) {
        t.equal((await post(test.app, '/verify_sms', { phone, token: first })).json().code, 'SECURELOGIN_OTP_INVALID', 'the old code no longer works')
      }
      t.equal((await post(test.app, '/verify_sms', { phone, token: second })).statusCode, 200)
    })

    t.test('a new code resets the attempts', async (t) => {
      const test = await buildApp(t, dialect, { otp: { maxAttempts: 1, resendInterval: 1 } })
      const phone = testPhone()
      const first = await requestCode(test, phone)
      await post(test.app, '/verify_sms', { phone, token: wrongCode(first) })
      await new Promise((resolve) => setTimeout(resolve, 1100))
      const second = await requestCode(test, phone)
      t.equal((await post(test.app, '/verify_sms', { phone, token: second })).statusCode, 200)
    })

    t.test('a second code inside the cooldown is a 429 with Retry-After, and sends nothing', async (t) => {
      const test = await buildApp(t, dialect, { otp: { resendInterval: '30s' } })
      const phone = testPhone()
      await requestCode(test, phone)
      const again = await post(test.app, '/login', { phone })
      t.equal(again.statusCode, 429)
      t.equal(again.json().code, 'SECURELOGIN_OTP_RESEND_TOO_SOON')
      const retryAfter = Number(again.headers['retry-after'])
      t.ok(retryAfter >= 29 && retryAfter <= 30, `Retry-After is the rest of the cooldown (${retryAfter})`)
      t.equal(test.outbox.messages.length, 1)
    })

    t.test('concurrent sends inside the cooldown deliver one code', async (t) => {
      const test = await buildApp(t, dialect, { rateLimit: { sendsPerPhone: { max: 100, window: '1h' } } })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      const answers = await Promise.all(Array.from({ length: 10 }, () => post(test.app, '/login', { phone })))
      t.equal(answers.filter((a) => a.statusCode === 200).length, 1)
      t.equal(answers.filter((a) => a.statusCode === 429).length, 9)
      t.equal(test.outbox.messages.length, 1)
    })

    t.test('a failed send leaves no usable code and no cooldown', async (t) => {
      let failing = true
      const sent: string[] = []
      const test = await buildApp(t, dialect, {
        smsDelivery: 'await',
        sms: {
          async send (message) {
            if (failing) throw new Error('vendor exploded: https://vendor.example/Accounts/AC123 token=hunter2')
            sent.push(message.code)
          },
        },
      })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      const failed = await post(test.app, '/login', { phone })
      t.equal(failed.statusCode, 502)
      t.equal(failed.json().code, 'SECURELOGIN_SMS_SEND_FAILED')
      t.notMatch(failed.body, /vendor|AC123|hunter2|https?:/, 'no vendor text reaches the client')
      t.same(await test.database.query('SELECT phone FROM securelogin_otp_challenges'), [], 'no challenge is left')
      failing = false
      const retry = await post(test.app, '/login', { phone })
      t.equal(retry.statusCode, 200, 'the failed send did not start the cooldown')
      t.equal((await post(test.app, '/verify_sms', { phone, token: sent[0]! })).statusCode, 200)
    })

    t.test('a send that outlasts smsTimeout answers 504 and leaves no code', async (t) => {
      const test = await buildApp(t, dialect, {
        smsDelivery: 'await',
        smsTimeout: 0.2,
        sms: { send: (_message, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))) },
      })
      const phone = testPhone()
      await post(test.app, '/register', { phone })
      const slow = await post(test.app, '/login', { phone })
      t.equal(slow.statusCode, 504)
      t.equal(slow.json().code, 'SECURELOGIN_SMS_TIMEOUT')
      t.same(await test.database.query('SELECT phone FROM securelogin_otp_challenges'), [])
    })

    t.test('verify_sms with another user\'s userid is a wrong code: it spends an attempt and signs nobody in', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const other = (await post(test.app, '/register', { phone: testPhone() })).json().userid
      const code = await requestCode(test, phone)
      const mismatch = await post(test.app, '/verify_sms', { phone, token: code, userid: other })
      t.equal(mismatch.statusCode, 401)
      t.equal(mismatch.json().code, 'SECURELOGIN_OTP_INVALID')
      t.equal(Number((await test.database.query('SELECT attempts FROM securelogin_otp_challenges'))[0]!.attempts), 1, 'one attempt spent')
      t.same(await test.database.query('SELECT id FROM securelogin_sessions'), [], 'no session')
      t.equal((await post(test.app, '/verify_sms', { phone, token: code })).statusCode, 200, 'the owner still signs in with the code')
    })
  })

  t.test(`${dialect}: accounts`, async (t) => {
    t.test('one account per normalised number, whatever the spelling', async (t) => {
      const test = await buildApp(t, dialect, { defaultCountry: 'US' })
      const spellings = ['+1 415 555 0133', '(415) 555-0133', '+14155550133', '415.555.0133']
      const answers = await Promise.all(spellings.map((phone) => post(test.app, '/register', { phone })))
      t.ok(answers.every((a) => a.statusCode === 201))
      t.equal(new Set(answers.map((a) => a.json().userid)).size, 1, 'the same userid every time')
      t.equal((await test.database.query('SELECT id FROM securelogin_users')).length, 1)
    })

    t.test('an invalid number is a 400 with its own code', async (t) => {
      const test = await buildApp(t, dialect)
      for (const phone of ['12345', '+1 000 000 0000', 'not a phone', '+999999999999']) {
        const answer = await post(test.app, '/register', { phone })
        t.equal(answer.statusCode, 400, phone)
        t.equal(answer.json().code, 'SECURELOGIN_PHONE_INVALID', phone)
      }
    })

    t.test('login for an unknown number answers like a real one and sends nothing', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const first = await post(test.app, '/login', { phone })
      t.equal(first.statusCode, 200)
      t.match(first.json().userid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      t.equal(test.outbox.messages.length, 0)
      t.equal((await post(test.app, '/login', { phone })).statusCode, 429, 'the same cooldown applies')
      t.same((await test.database.query('SELECT id FROM securelogin_users')), [], 'no account was created')
      const guess = await post(test.app, '/verify_sms', { phone, token: '123456' })
      t.equal(guess.statusCode, 401)
    })

    t.test('the userid login answers for an unknown number is the one registration then gives it', async (t) => {
      const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
      const phone = testPhone()
      const before = (await post(test.app, '/login', { phone })).json().userid
      const registered = (await post(test.app, '/register', { phone })).json().userid
      t.equal(registered, before, 'comparing the two tells nothing about whether the number had an account')
      t.equal((await post(test.app, '/login', { phone })).json().userid, registered)
    })

    t.test('registering a number someone else claimed does not lock its owner out', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      const squatter = await post(test.app, '/register', { phone, username: 'squatter' })
      const owner = await post(test.app, '/register', { phone, username: 'owner' })
      t.equal(owner.statusCode, 201)
      t.equal(owner.json().userid, squatter.json().userid)
      const rows = await test.database.query('SELECT username FROM securelogin_users')
      t.equal(rows[0]!.username, null, 'an unproven account named twice keeps neither name')
      await post(test.app, '/login', { phone })
      t.equal((await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })).statusCode, 200)
      await post(test.app, '/register', { phone, username: 'squatter again' })
      t.equal((await test.database.query('SELECT username FROM securelogin_users'))[0]!.username, null, 'nor does registering rename it once proven')
    })

    t.test('a registration without a name after one with a name leaves the unproven account unnamed', async (t) => {
      const test = await buildApp(t, dialect)
      const phone = testPhone()
      await post(test.app, '/register', { phone, username: 'squatter' })
      t.equal((await test.database.query('SELECT username FROM securelogin_users'))[0]!.username, 'squatter', 'the first registration names it')
      t.equal((await post(test.app, '/register', { phone })).statusCode, 201)
      t.equal((await test.database.query('SELECT username FROM securelogin_users'))[0]!.username, null, 'either may be the owner\'s: no name')
    })
  })
}
