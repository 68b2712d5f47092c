// The soak's mixed load: virtual users, each sending one request at a time, each running journeys
// of real clients until told to stop. Every route is in them, with the right and the wrong uses
// a client makes (a wrong code, a resend too soon, the replay of a rotated refresh token):
//   new user       register (sometimes twice) → login (sometimes again at once: 429) → verify_sms
//                  (sometimes a wrong code first: 401) → GET /api/me → refresh 1-3 times (sometimes
//                  replaying the token just rotated: 409) → GET /api/me → logout, or keep the
//                  session open and come back later
//   returning user a second sign-in once the resend interval has passed → logout_all_other_sessions
//                  (sometimes first with a refreshed, not fresh, token: 401) → the first session's
//                  refresh token is refused (401) → logout
//   stale replay   a refresh token rotated more than twice the reuse grace ago: 401, and the
//                  plugin ends its session as stolen
//   now and then   the key set, a login for a number without an account, an invalid number,
//                  verify_sms without a code sent, GET /api/me without a token
import { randomInt } from 'node:crypto'
import { field, type Answer, type ApiRequest, type Client } from './soak-client.js'
import { CodeBox, phoneSupply } from './soak-phones.js'
import { Tally } from './soak-tally.js'

/** The soak server's otp.resendInterval and sessions.reuseGrace (test/bench/server.ts, soakApp). */
const RESEND_INTERVAL_MS = 1000
const REUSE_GRACE_MS = 1000

/** Bounds on what the load keeps between journeys, so the client's own memory stays flat. */
const MAX_WAITING_ACCOUNTS = 2000
const MAX_STALE_TOKENS = 2000

const API = '/api/auth'
const RESEND_TOO_SOON = 'login (resend too soon)'

interface Session { access: string, refresh: string }

interface Account {
  phone: string
  userid: string
  session: Session
  /** When its next login may send a code (the resend interval after the last one). */
  readyAt: number
}

const chance = (p: number) => Math.random() < p

/** A code of the same length that is not `code`. */
function wrongCode (code: string): string {
  const last = Number(code.at(-1))
  return code.slice(0, -1) + String((last + 1 + randomInt(9)) % 10)
}

export class MixedLoad {
  /** Swapped by the caller to start counting afresh (after the warm-up). */
  tally = new Tally()
  private stopping = false
  private running: Array<Promise<void>> = []
  private readonly accountPhones = phoneSupply('accounts')
  private readonly noAccountPhones = phoneSupply('no-account')
  private readonly waiting: Account[] = []
  private readonly stale: Array<{ token: string, at: number }> = []

  constructor (private readonly client: Client, private readonly codes: CodeBox) {}

  start (users: number): void {
    this.running = Array.from({ length: users }, () => this.virtualUser())
  }

  /** Lets each virtual user finish the request it is in (bounded by the request timeout). */
  async stop (): Promise<void> {
    this.stopping = true
    await Promise.all(this.running)
  }

  private async virtualUser (): Promise<void> {
    while (!this.stopping) {
      try {
        await this.nextJourney()
      } catch (error) {
        this.tally.harnessFault('journey', error instanceof Error ? error.stack ?? error.message : String(error))
      }
    }
  }

  private async nextJourney (): Promise<void> {
    const account = this.waiting[0]
    if (account !== undefined && account.readyAt <= Date.now()) {
      this.waiting.shift()
      return this.returningUser(account)
    }
    const stale = this.stale[0]
    if (stale !== undefined && Date.now() - stale.at > 2 * REUSE_GRACE_MS) {
      this.stale.shift()
      await this.call('refresh (reused old token)', [401], { path: `${API}/refresh`, token: stale.token })
    }
    if (chance(0.1)) await this.oddRequest()
    return this.newUser()
  }

  /**
   * Sends one request and counts its answer; undefined once the load is stopping (nothing sent).
   * A step that expects only refusals must never succeed, except the resend too soon, whose
   * refusal lasts only the resend interval: a stalled machine may legitimately let it through.
   */
  private async call (step: string, expected: readonly number[], request: ApiRequest): Promise<Answer | undefined> {
    if (this.stopping) return undefined
    const tally = this.tally
    const answer = await this.client.send(request)
    const mustRefuse = expected.every((status) => status >= 400) && step !== RESEND_TOO_SOON
    tally.record(step, request, answer, expected, mustRefuse)
    return answer
  }

  private async newUser (): Promise<void> {
    const phone = this.accountPhones()
    const body = chance(0.3) ? { phone, username: `soak ${phone.slice(-6)}` } : { phone }
    const registered = await this.call('register', [201], { path: `${API}/register`, body })
    if (registered?.status !== 201) return
    const userid = field(registered, 'userid')
    if (chance(0.1)) {
      const again = await this.call('register (existing number)', [201], { path: `${API}/register`, body })
      if (again?.status === 201 && field(again, 'userid') !== userid) this.tally.harnessFault('register (existing number)', `a second register of ${phone} answered another userid`)
    }
    const session = await this.signIn(phone, userid)
    if (session === undefined) return
    await this.call('GET /api/me (fresh token)', [200], { method: 'GET', path: '/api/me', token: session.access })
    for (let i = 1 + randomInt(3); i > 0; i--) {
      if (!await this.rotate(session)) return
    }
    await this.call('GET /api/me (refreshed token)', [200], { method: 'GET', path: '/api/me', token: session.access })
    if (chance(0.5) && this.waiting.length < MAX_WAITING_ACCOUNTS) {
      this.waiting.push({ phone, userid, session, readyAt: Date.now() + RESEND_INTERVAL_MS + 100 })
      return
    }
    await this.logout(session)
  }

  /** login → the code → verify_sms; the new session, or undefined when a step failed. */
  private async signIn (phone: string, userid: string): Promise<Session | undefined> {
    const login = await this.call('login', [200], { path: `${API}/login`, body: { phone } })
    if (login?.status !== 200) return undefined
    if (chance(0.1)) await this.call(RESEND_TOO_SOON, [429], { path: `${API}/login`, body: { phone } })
    const code = await this.codes.take(phone)
    if (code === undefined) {
      if (!this.stopping) this.tally.harnessFault('login', `no SMS reached ${phone} within 3 s of a 200 from /login`)
      return undefined
    }
    if (chance(0.25)) await this.call('verify_sms (wrong code)', [401], { path: `${API}/verify_sms`, body: { phone, token: wrongCode(code) } })
    const body = chance(0.5) ? { phone, token: code, userid } : { phone, token: code }
    const verified = await this.call('verify_sms', [200], { path: `${API}/verify_sms`, body })
    if (verified?.status !== 200) return undefined
    return { access: field(verified, 'access_token'), refresh: field(verified, 'refresh_token') }
  }

  /** One refresh; sometimes the replaced token is replayed at once, or kept to be replayed late. False when the session ended. */
  private async rotate (session: Session): Promise<boolean> {
    const old = session.refresh
    const refreshed = await this.call('refresh', [200], { path: `${API}/refresh`, token: old })
    if (refreshed?.status !== 200) return false
    session.access = field(refreshed, 'access_token')
    session.refresh = field(refreshed, 'refresh_token')
    if (chance(0.2)) {
      // Within the reuse grace: two tabs racing, 409. Past it (a slow machine), the session ends: 401.
      const replay = await this.call('refresh (replay within grace)', [409, 401], { path: `${API}/refresh`, token: old })
      return replay?.status === 409
    }
    if (chance(0.15) && this.stale.length < MAX_STALE_TOKENS) this.stale.push({ token: old, at: Date.now() })
    return true
  }

  /** Ends the session by its access token alone or naming its refresh token; sometimes checks the refresh token is dead. */
  private async logout (session: Session): Promise<void> {
    const body = chance(0.5) ? { refresh_token: session.refresh } : {}
    const out = await this.call('logout', [200], { path: `${API}/logout`, token: session.access, body })
    if (out?.status === 200 && chance(0.3)) await this.call('refresh (after logout)', [401], { path: `${API}/refresh`, token: session.refresh })
  }

  private async returningUser (account: Account): Promise<void> {
    const current = await this.signIn(account.phone, account.userid)
    if (current === undefined) return
    const fresh = current.access
    if (chance(0.3)) {
      // A refreshed access token is not fresh: ending the other sessions needs a new sign-in.
      if (!await this.rotate(current)) return
      await this.call('logout_all_other_sessions (refreshed token)', [401], { path: `${API}/logout_all_other_sessions`, token: current.access })
    }
    const body = chance(0.5) ? { refresh_token: current.refresh } : undefined
    const ended = await this.call('logout_all_other_sessions', [200], { path: `${API}/logout_all_other_sessions`, token: fresh, body })
    if (ended?.status !== 200) return
    // The other session's refresh token is refused at once; its access token within revocationMaxDelay.
    await this.call('refresh (other session ended)', [401], { path: `${API}/refresh`, token: account.session.refresh })
    await this.call('GET /api/me (other session ended)', [200, 401], { method: 'GET', path: '/api/me', token: account.session.access })
    await this.logout(current)
  }

  /** Requests a client gets wrong, or makes rarely. */
  private async oddRequest (): Promise<void> {
    const phone = this.noAccountPhones()
    switch (randomInt(5)) {
      case 0: await this.call('GET jwks.json', [200], { method: 'GET', path: `${API}/.well-known/jwks.json` }); break
      case 1: await this.call('login (no account)', [200], { path: `${API}/login`, body: { phone } }); break
      case 2: await this.call('register (invalid number)', [400], { path: `${API}/register`, body: { phone: '12345' } }); break
      case 3: await this.call('verify_sms (no code sent)', [401], { path: `${API}/verify_sms`, body: { phone, token: '123456' } }); break
      default: await this.call('GET /api/me (no token)', [401], { method: 'GET', path: '/api/me' })
    }
  }
}
