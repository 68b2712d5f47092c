import { Type, type Static } from '@sinclair/typebox'
import { USERNAME_MAX_LENGTH } from '../lib/username.js'
import { ErrorResponse, Jwt, Message, Phone, UserId } from './common.js'

// Each request and answer carries an `$id`: the routes register them with `addSchema` and refer to
// them by `$ref`, so an OpenAPI document lists each once under its name. The ids are prefixed
// because they share one namespace with the host app's own schemas.

export const USER_ID = 'e5b53d55-bb32-40fb-aaeb-8ad750158639'
export const ACCESS_TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoiYWNjZXNzIn0.c2lnbmF0dXJl'
export const REFRESH_TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl'

/** Only phone accounts exist; the field is accepted for clients of the Flask library. */
const AuthType = Type.Literal('PHONE', { description: 'Always "PHONE"; other sign-in types do not exist' })

/** A display name, as registration and PATCH /me take it. */
export const Username = Type.String({
  minLength: 1,
  maxLength: USERNAME_MAX_LENGTH,
  // Control characters (NUL included) here; the route refuses the rest (lib/username.ts).
  pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F]*$',
  description: 'A display name, stored in Unicode NFC without surrounding white space. Control, invisible (zero-width, bidi), surrogate and private-use characters are refused, except a zero-width joiner or non-joiner inside a word or an emoji. An account created by another registration keeps it only while every registration before the first verify_sms gives the same name; after that, registering never renames it',
  examples: ['Ada'],
})

export const TokenType = Type.Literal('Bearer', { description: 'How to send the access token: `Authorization: Bearer <access_token>`' })
export const ExpiresIn = Type.Integer({ description: 'Seconds until the access token expires', examples: [600] })

export const RegisterBody = Type.Object({
  phone: Phone,
  username: Type.Optional(Username),
  auth_type: Type.Optional(AuthType),
}, {
  $id: 'SecureLoginRegisterBody',
  title: 'SecureLoginRegisterBody',
  description: 'The number to create an account for',
  examples: [{ phone: '+14155550123', username: 'Ada' }],
})
export type RegisterBody = Static<typeof RegisterBody>

export const RegisterResponse = Type.Object({
  message: Type.Literal('registered successfully'),
  userid: UserId,
}, {
  $id: 'SecureLoginRegisterResponse',
  title: 'SecureLoginRegisterResponse',
  description: 'The account of the number: a new one, or the existing one (registering never reveals which)',
  examples: [{ message: 'registered successfully', userid: USER_ID }],
})
export type RegisterResponse = Static<typeof RegisterResponse>

export const LoginBody = Type.Object({
  phone: Phone,
  auth_type: Type.Optional(AuthType),
}, {
  $id: 'SecureLoginLoginBody',
  title: 'SecureLoginLoginBody',
  description: 'The number to send a one-time code to',
  examples: [{ phone: '+14155550123' }],
})
export type LoginBody = Static<typeof LoginBody>

export const LoginResponse = Type.Object({
  phone: Type.String({ description: 'The number the code was sent to, in E.164', examples: ['+14155550123'] }),
  userid: UserId,
}, {
  $id: 'SecureLoginLoginResponse',
  title: 'SecureLoginLoginResponse',
  description: 'The same answer whether or not the number has an account; only numbers with one get a code',
  examples: [{ phone: '+14155550123', userid: USER_ID }],
})
export type LoginResponse = Static<typeof LoginResponse>

export const VerifySmsBody = Type.Object({
  phone: Phone,
  token: Type.String({ pattern: '^[0-9]{4,10}$', description: 'The code received by SMS', examples: ['123456'] }),
  userid: Type.Optional(UserId),
}, {
  $id: 'SecureLoginVerifySmsBody',
  title: 'SecureLoginVerifySmsBody',
  description: 'The number and the code it received; `userid`, when given, must be the one login answered',
  examples: [{ phone: '+14155550123', token: '123456' }],
})
export type VerifySmsBody = Static<typeof VerifySmsBody>

export const TokenPair = Type.Object({
  access_token: Jwt,
  refresh_token: Jwt,
}, { title: 'TokenPair' })

export const VerifySmsResponse = Type.Object({
  userid: UserId,
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginVerifySmsResponse',
  title: 'SecureLoginVerifySmsResponse',
  description: 'A new session: a fresh access token and a refresh token',
  examples: [{ userid: USER_ID, access_token: ACCESS_TOKEN, refresh_token: REFRESH_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type VerifySmsResponse = Static<typeof VerifySmsResponse>

export const RefreshResponse = Type.Object({
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginRefreshResponse',
  title: 'SecureLoginRefreshResponse',
  description: 'A new access token (not fresh) and the next refresh token; the one sent stops working',
  examples: [{ access_token: ACCESS_TOKEN, refresh_token: REFRESH_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type RefreshResponse = Static<typeof RefreshResponse>

const IN_COOKIE = 'Absent when the request used the cookie transport (`X-SecureLogin-Transport: cookie`) and the token went into an HttpOnly cookie'
export const JwtOrCookie = (description: string, when = '') => Type.Optional(Type.String({ minLength: Jwt.minLength, maxLength: Jwt.maxLength, description: `${description} ${IN_COOKIE}${when}` }))

export const VerifySmsCookieResponse = Type.Object({
  userid: UserId,
  access_token: JwtOrCookie('The access token (a JWT).', ' (only with `cookies.accessToken: \'cookie\'`)'),
  refresh_token: JwtOrCookie('The refresh token (a JWT).'),
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginVerifySmsCookieResponse',
  title: 'SecureLoginVerifySmsCookieResponse',
  description: 'A new session, on a server with cookies enabled: Bearer clients get both tokens in the body; cookie clients get the refresh token (and optionally the access token) as HttpOnly cookies instead',
  examples: [{ userid: USER_ID, access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type VerifySmsCookieResponse = Static<typeof VerifySmsCookieResponse>

export const RefreshCookieResponse = Type.Object({
  access_token: JwtOrCookie('The access token (a JWT).', ' (only with `cookies.accessToken: \'cookie\'`)'),
  refresh_token: JwtOrCookie('The next refresh token (a JWT).'),
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginRefreshCookieResponse',
  title: 'SecureLoginRefreshCookieResponse',
  description: 'The next tokens, on a server with cookies enabled: what went into a cookie is not in the body',
  examples: [{ access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type RefreshCookieResponse = Static<typeof RefreshCookieResponse>

export const LogoutBody = Type.Object({
  refresh_token: Type.Optional(Type.String({ minLength: Jwt.minLength, maxLength: Jwt.maxLength, description: 'The refresh token of the session to end; the session of the access token when absent' })),
}, {
  $id: 'SecureLoginLogoutBody',
  title: 'SecureLoginLogoutBody',
  description: 'Which session to end; an empty object (or no body) means the caller\'s own',
  examples: [{ refresh_token: REFRESH_TOKEN }],
})
export type LogoutBody = Static<typeof LogoutBody>

export const LogoutResponse = Type.Object({ message: Type.Literal('logout successful') }, {
  $id: 'SecureLoginLogoutResponse',
  title: 'SecureLoginLogoutResponse',
  examples: [{ message: 'logout successful' }],
})
export type LogoutResponse = Static<typeof LogoutResponse>

export const LogoutAllOtherSessionsResponse = Type.Object({ message: Type.Literal('logout all other sessions successful') }, {
  $id: 'SecureLoginLogoutAllOtherSessionsResponse',
  title: 'SecureLoginLogoutAllOtherSessionsResponse',
  examples: [{ message: 'logout all other sessions successful' }],
})
export type LogoutAllOtherSessionsResponse = Static<typeof LogoutAllOtherSessionsResponse>

export { ErrorResponse, Message }
