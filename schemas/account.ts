import { Type, type Static } from '@sinclair/typebox'
import { ACCESS_TOKEN, ExpiresIn, JwtOrCookie, REFRESH_TOKEN, TokenType, USER_ID, Username } from './auth.js'
import { Jwt, Phone, UserId } from './common.js'

// What a signed-in user reads and changes of their own account and sessions (issue 10). Same
// conventions as auth.ts: snake_case fields, an `$id` on every body and answer.

const Timestamp = (description: string) => Type.String({ format: 'date-time', description, examples: ['2026-12-01T09:30:00.000Z'] })
const SESSION_ID = '3f1c2a9e-7b4d-4e2f-9a6b-0c8d1e2f3a4b'

export const AuthTypes = Type.Array(Type.Union([Type.Literal('PHONE'), Type.Literal('PASSWORD')]), {
  description: 'How the account can sign in: `PHONE` when it has a number, `PASSWORD` when it has a password',
  examples: [['PHONE']],
})

export const Account = Type.Object({
  userid: UserId,
  phone: Type.Union([Type.String(), Type.Null()], { description: 'The account\'s number in E.164; null for a password account that has not added one', examples: ['+14155550123'] }),
  username: Type.Union([Type.String(), Type.Null()], { description: 'The display name, if any', examples: ['Ada'] }),
  email: Type.Optional(Type.String({ description: 'The email of a password account', examples: ['ada@example.com'] })),
  auth_types: AuthTypes,
  created_at: Timestamp('When the account was created'),
  phone_verified_at: Type.Union([Timestamp('When the number was first proven by a code'), Type.Null()]),
}, {
  $id: 'SecureLoginAccount',
  title: 'SecureLoginAccount',
  description: 'The caller\'s account',
  examples: [{ userid: USER_ID, phone: '+14155550123', username: 'Ada', auth_types: ['PHONE'], created_at: '2026-11-02T10:00:00.000Z', phone_verified_at: '2026-11-02T10:01:12.000Z' }],
})
export type Account = Static<typeof Account>

export const AccountPatchBody = Type.Object({
  // No options on the union: OpenAPI 3.0 documents can then say `nullable` (see @fastify/swagger).
  username: Type.Union([Username, Type.Null()]),
}, {
  $id: 'SecureLoginAccountPatchBody',
  title: 'SecureLoginAccountPatchBody',
  description: 'What to change in the caller\'s account: `username`, the new display name (same rules as at registration), or null to remove it',
  examples: [{ username: 'Ada L.' }],
})
export type AccountPatchBody = Static<typeof AccountPatchBody>

export const AccountDeletedResponse = Type.Object({ message: Type.Literal('account deleted') }, {
  $id: 'SecureLoginAccountDeletedResponse',
  title: 'SecureLoginAccountDeletedResponse',
  examples: [{ message: 'account deleted' }],
})
export type AccountDeletedResponse = Static<typeof AccountDeletedResponse>

export const SessionInfo = Type.Object({
  sid: Type.String({ format: 'uuid', description: 'The session id (the tokens\' `sid`)', examples: [SESSION_ID] }),
  created_at: Timestamp('When the session was opened (sign-in)'),
  last_seen_at: Timestamp('When the session last signed in or refreshed'),
  user_agent: Type.Union([Type.String(), Type.Null()], { description: 'The User-Agent of its last sign-in or refresh, at most 256 characters', examples: ['Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)'] }),
  ip: Type.Union([Type.String(), Type.Null()], { description: 'The client address of its last sign-in or refresh', examples: ['203.0.113.7'] }),
  current: Type.Boolean({ description: 'True for the session of the access token of this request' }),
}, { title: 'SecureLoginSessionInfo' })

export const SessionList = Type.Object({
  sessions: Type.Array(SessionInfo, { description: 'The caller\'s live sessions, newest first (at most 100)' }),
}, {
  $id: 'SecureLoginSessionList',
  title: 'SecureLoginSessionList',
  examples: [{ sessions: [{ sid: SESSION_ID, created_at: '2026-12-01T09:30:00.000Z', last_seen_at: '2026-12-01T11:02:40.000Z', user_agent: 'Mozilla/5.0', ip: '203.0.113.7', current: true }] }],
})
export type SessionList = Static<typeof SessionList>

export const SessionParams = Type.Object({
  sid: Type.String({ format: 'uuid', description: 'The id of one of the caller\'s sessions' }),
})
export type SessionParams = Static<typeof SessionParams>

export const SessionEndedResponse = Type.Object({ message: Type.Literal('session ended') }, {
  $id: 'SecureLoginSessionEndedResponse',
  title: 'SecureLoginSessionEndedResponse',
  examples: [{ message: 'session ended' }],
})
export type SessionEndedResponse = Static<typeof SessionEndedResponse>

export const PhoneChangeBody = Type.Object({ phone: Phone }, {
  $id: 'SecureLoginPhoneChangeBody',
  title: 'SecureLoginPhoneChangeBody',
  description: 'The number to move the account to',
  examples: [{ phone: '+14155550199' }],
})
export type PhoneChangeBody = Static<typeof PhoneChangeBody>

export const PhoneChangeResponse = Type.Object({
  phone: Type.String({ description: 'The number the code was sent to, in E.164', examples: ['+14155550199'] }),
}, {
  $id: 'SecureLoginPhoneChangeResponse',
  title: 'SecureLoginPhoneChangeResponse',
  description: 'A code is on its way to the new number',
  examples: [{ phone: '+14155550199' }],
})
export type PhoneChangeResponse = Static<typeof PhoneChangeResponse>

export const PhoneVerifyBody = Type.Object({
  phone: Phone,
  token: Type.String({ pattern: '^[0-9]{4,10}$', description: 'The code the new number received', examples: ['123456'] }),
}, {
  $id: 'SecureLoginPhoneVerifyBody',
  title: 'SecureLoginPhoneVerifyBody',
  description: 'The new number and the code it received',
  examples: [{ phone: '+14155550199', token: '123456' }],
})
export type PhoneVerifyBody = Static<typeof PhoneVerifyBody>

export const PhoneVerifyResponse = Type.Object({
  userid: UserId,
  phone: Type.String({ description: 'The account\'s new number, in E.164', examples: ['+14155550199'] }),
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginPhoneVerifyResponse',
  title: 'SecureLoginPhoneVerifyResponse',
  description: 'The account now has the new number. Every earlier session has ended, this one included: these tokens (fresh) belong to a new session',
  examples: [{ userid: USER_ID, phone: '+14155550199', access_token: ACCESS_TOKEN, refresh_token: REFRESH_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type PhoneVerifyResponse = Static<typeof PhoneVerifyResponse>

export const PhoneVerifyCookieResponse = Type.Object({
  userid: UserId,
  phone: Type.String({ description: 'The account\'s new number, in E.164', examples: ['+14155550199'] }),
  access_token: JwtOrCookie('The access token (a JWT).', ' (only with `cookies.accessToken: \'cookie\'`)'),
  refresh_token: JwtOrCookie('The refresh token (a JWT).'),
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginPhoneVerifyCookieResponse',
  title: 'SecureLoginPhoneVerifyCookieResponse',
  description: 'The account now has the new number, on a server with cookies enabled: cookie clients get the new session\'s refresh token (and optionally its access token) as HttpOnly cookies instead of in the body',
  examples: [{ userid: USER_ID, phone: '+14155550199', access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type PhoneVerifyCookieResponse = Static<typeof PhoneVerifyCookieResponse>
