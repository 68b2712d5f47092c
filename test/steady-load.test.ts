import t from 'tap'
import { buildApp, dialects, testPhone } from './helper.js'

// Under a steady sign-in load the plugin's tables must level off: the purge deletes used and
// expired codes, ended sessions (once no access token of theirs can still be checked) and stale
// counters as fast as the load makes them. Short lifetimes and a one-second purge make that visible
// in seconds; every sign-in comes from a new client address, so the per-IP counters would grow
// without bound if nothing deleted them.
const RULE = { max: 1_000_000, window: '1s' } as const
const SECONDS = 16

for (const dialect of dialects) {
  t.test(`${dialect}: under a steady sign-in load the tables stop growing`, async (t) => {
    const test = await buildApp(t, dialect, {
      // JWT times are whole seconds: a 1 s token may have only a few ms left when it is used.
      jwt: { accessTokenTtl: '3s' },
      otp: { ttl: '5s', resendInterval: '1ms' },
      purgeInterval: '1s',
      rateLimit: {
        sendsPerIp: RULE, verifiesPerIp: RULE, registersPerIp: RULE, sendsPerPhone: RULE,
        sendsPerPrefix: RULE, sendsGlobal: RULE, failedVerifiesPerPhone: { max: 100, window: '1s' },
      },
    })
    const { app, outbox, database } = test
    const phones = Array.from({ length: 8 }, () => testPhone())
    let address = 0
    const nextAddress = () => { address++; return `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address & 255}` }
    const post = (url: string, remoteAddress: string, payload?: object, token?: string) => app.inject({
      method: 'POST', url: `/api/auth${url}`, payload, remoteAddress, headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })

    const started = Date.now()
    const signIns: number[] = []
    const failures: string[] = []
    const signInAndOut = async (phone: string) => {
      const ip = nextAddress()
      await post('/register', ip, { phone })
      const login = await post('/login', ip, { phone })
      if (login.statusCode !== 200) return failures.push(`login ${login.statusCode} ${login.body}`)
      const verify = await post('/verify_sms', ip, { phone, token: outbox.lastCodeFor(phone) })
      if (verify.statusCode !== 200) return failures.push(`verify ${verify.statusCode} ${verify.body}`)
      const tokens = verify.json()
      const refreshed = await post('/refresh', ip, undefined, tokens.refresh_token)
      if (refreshed.statusCode !== 200) return failures.push(`refresh ${refreshed.statusCode} ${refreshed.body}`)
      const logout = await post('/logout', ip, undefined, refreshed.json().access_token)
      if (logout.statusCode !== 200) return failures.push(`logout ${logout.statusCode} ${logout.body}`)
      signIns.push(Date.now() - started)
    }
    let stop = false
    // One client per number, signing in and out again and again (background delivery: wait for the code).
    const clients = phones.map(async (phone) => {
      while (!stop) {
        await signInAndOut(phone)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })

    const tables = ['securelogin_otp_challenges', 'securelogin_sessions', 'securelogin_rate_limits'] as const
    const samples: Array<{ at: number, rows: Record<string, number> }> = []
    while (Date.now() - started < SECONDS * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      const rows: Record<string, number> = {}
      for (const table of tables) rows[table] = Number((await database.query(`SELECT count(*) AS n FROM ${table}`))[0]!.n)
      samples.push({ at: Date.now() - started, rows })
    }
    stop = true
    await Promise.all(clients)

    t.same(failures.slice(0, 5), [], 'every sign-in, refresh and logout succeeded')
    // Level means bounded by the last few seconds' load, not by all the load so far: a table that
    // only grew would hold a row (or three counters) for every sign-in of the run.
    const last = samples.at(-1)!
    const signInsWithin = (ms: number) => signIns.filter((at) => at > last.at - ms && at <= last.at).length
    const total = signIns.filter((at) => at <= last.at).length
    const bounds: Record<(typeof tables)[number], { rows: number, why: string }> = {
      // One row per number.
      securelogin_otp_challenges: { rows: phones.length, why: 'one per number' },
      // Ended sessions go once no access token of theirs is left (3 s) at the next purge (1 s).
      securelogin_sessions: { rows: signInsWithin(5_000) + 2 * phones.length, why: 'the sessions of the last 5 s' },
      // Three per-IP counters per sign-in, kept for their 1 s window until the next purge; plus
      // the per-number, per-prefix and global ones.
      securelogin_rate_limits: { rows: 3 * signInsWithin(3_000) + 10 * phones.length, why: 'the counters of the last 3 s' },
    }
    // Long enough that tables keeping every row would break these bounds.
    t.ok(total > bounds.securelogin_sessions.rows, `the load went on long enough: ${total} sign-ins, more than the sessions bound`)
    t.ok(3 * total > bounds.securelogin_rate_limits.rows, `and ${3 * total} per-IP counters made, more than the counters bound`)
    for (const table of tables) {
      t.ok(last.rows[table]! <= bounds[table].rows, `${table}: ${last.rows[table]} rows at the end, at most ${bounds[table].rows} (${bounds[table].why}), after ${total} sign-ins`)
    }
  })
}
