import t from 'tap'
import { buildApp, dialects, post, testPhone } from './helper.js'

// A fault between two writes must leave both or neither: here the session insert fails (a trigger
// refuses it, as a full disk or a lost connection would), and the code must still work afterwards.
for (const dialect of dialects) {
  t.test(`${dialect}: a session that cannot be written leaves the code unused`, async (t) => {
    const test = await buildApp(t, dialect)
    const { app, outbox, database } = test
    const phone = testPhone()
    await post(app, '/register', { phone })
    t.equal((await post(app, '/login', { phone })).statusCode, 200)
    const code = outbox.lastCodeFor(phone)

    if (dialect === 'sqlite') {
      await database.query("CREATE TRIGGER refuse_sessions BEFORE INSERT ON securelogin_sessions BEGIN SELECT RAISE(ABORT, 'no sessions now'); END")
    } else {
      await database.query("CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no sessions now'; END $$")
      await database.query('CREATE TRIGGER refuse_sessions BEFORE INSERT ON securelogin_sessions FOR EACH ROW EXECUTE FUNCTION refuse_sessions()')
    }
    const failed = await post(app, '/verify_sms', { phone, token: code })
    t.equal(failed.statusCode, 500, 'the failed write is a server error')
    t.equal(failed.json().code, 'SECURELOGIN_INTERNAL')
    const [challenge] = await database.query('SELECT consumed_at FROM securelogin_otp_challenges WHERE phone = $1', [phone])
    t.equal(challenge?.consumed_at, null, 'the code was not used up')
    t.same(await database.query('SELECT id FROM securelogin_sessions'), [], 'and no session exists')

    await database.query('DROP TRIGGER refuse_sessions' + (dialect === 'sqlite' ? '' : ' ON securelogin_sessions'))
    const retried = await post(app, '/verify_sms', { phone, token: code })
    t.equal(retried.statusCode, 200, 'the same code signs in once the database takes writes again')
    t.equal((await post(app, '/verify_sms', { phone, token: code })).json().code, 'SECURELOGIN_OTP_EXPIRED', 'and only once')
  })
}
