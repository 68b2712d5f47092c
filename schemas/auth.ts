import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { USERNAME_MAX_LENGTH } from '../lib/username.js'
import { ErrorResponse, Jwt, Message, Phone, UserId } from './common.js'

// Each request and answer carries an `$id`: the routes register them with `addSchema` and refer to
// them by `$ref`, so an OpenAPI document lists each once under its name. The ids are prefixed
// because they share one namespace with the host app's own schemas.

export const USER_ID = 'e5b53d55-bb32-40fb-aaeb-8ad750158639'
export const ACCESS_TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoiYWNjZXNzIn0.c2lnbmF0dXJl'
export const REFRESH_TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl'

/** How a body signs in; absent means "PHONE", as in the Flask library. */
const PhoneAuthType = Type.Literal('PHONE', { description: 'A phone account: the number is the account, a code by SMS proves it. The default when absent' })
const PasswordAuthType = Type.Literal('PASSWORD', { description: 'An email-and-password account (only when the server enables `password`)' })

export const Email = Type.String({
  minLength: 3,
  maxLength: 320,
  description: 'An email address, stored and compared with surrounding white space trimmed and the domain lower-cased (in its ASCII form); the part before the @ keeps its case',
  examples: ['ada@example.com'],
})

/** A password as typed at sign-in: compared as it is, so an imported account's shorter password still works. */
export const Password = Type.String({ minLength: 1, maxLength: 1024, description: 'The account\'s password', examples: ['correct horse battery staple'] })

/** A password being set: the 8-to-128 rule is checked after NFKC, with its own error code. */
export const NewPassword = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: 'The new password: 8 to 128 characters after Unicode NFKC normalisation, any characters, no composition rules; one known from data breaches may be refused',
  examples: ['correct horse battery staple'],
})

/** A display name, as registration and PATCH /me take it. */
export const Username = Type.String({
  minLength: 1,
  maxLength: USERNAME_MAX_LENGTH,
  // Control characters (NUL included) here; the route refuses the rest (lib/username.ts).
  pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F]*$',
  description: 'A display name, stored in Unicode NFC without surrounding white space. Control, invisible (zero-width, bidi, Hangul fillers and other default-ignorable characters, the braille blank), surrogate and private-use characters are refused, except a zero-width joiner or non-joiner inside a word or an emoji, and a variation selector after an emoji, a Han ideograph or a Mongolian letter. An account created by another registration keeps it only while every registration before the first verify_sms gives the same name; after that, registering never renames it',
  examples: ['Ada'],
})

export const TokenType = Type.Literal('Bearer', { description: 'How to send the access token: `Authorization: Bearer <access_token>`' })
export const ExpiresIn = Type.Integer({ description: 'Seconds until the access token expires', examples: [600] })

// /register and /login take a phone body or, with `auth_type: "PASSWORD"`, an email-and-password
// one. The members carry no `$id` (only the union does, so OpenAPI names it once); the routes'
// validator picks the member by `auth_type` and reports that member's errors (lib/routes/validator.ts).
// Their fields carry no `examples`: @fastify/swagger turns a body's own field examples into
// OpenAPI 3.0's `example`, but not inside a union, where 3.0 refuses `examples`. The union's
// examples show both bodies whole.

/** The schema without its `examples` (the TypeBox kind stays: spreading copies symbol keys too). */
function withoutExamples<T extends TSchema> (schema: T): T {
  const { examples: _examples, ...rest } = schema
  return rest as T
}

export const PhoneRegisterBody = Type.Object({
  phone: withoutExamples(Phone),
  username: Type.Optional(withoutExamples(Username)),
  auth_type: Type.Optional(PhoneAuthType),
}, { title: 'SecureLoginPhoneRegisterBody', description: 'The number to create an account for' })

export const PasswordRegisterBody = Type.Object({
  auth_type: PasswordAuthType,
  email: withoutExamples(Email),
  password: withoutExamples(NewPassword),
  username: Type.Optional(withoutExamples(Username)),
}, { title: 'SecureLoginPasswordRegisterBody', description: 'An email-and-password account to create (with `password.enabled`)' })

export const RegisterBody = Type.Union([PhoneRegisterBody, PasswordRegisterBody], {
  $id: 'SecureLoginRegisterBody',
  title: 'SecureLoginRegisterBody',
  description: 'A phone account (`auth_type` absent or "PHONE"), or an email-and-password account (`auth_type: "PASSWORD"`)',
  examples: [{ phone: '+14155550123', username: 'Ada' }, { auth_type: 'PASSWORD', email: 'ada@example.com', password: 'correct horse battery staple' }],
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

export const PasswordRegisterResponse = Type.Object({
  message: Type.Literal('registered successfully'),
  userid: UserId,
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginPasswordRegisterResponse',
  title: 'SecureLoginPasswordRegisterResponse',
  description: 'The new email-and-password account, signed in: a new session with a fresh access token',
  examples: [{ message: 'registered successfully', userid: USER_ID, access_token: ACCESS_TOKEN, refresh_token: REFRESH_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type PasswordRegisterResponse = Static<typeof PasswordRegisterResponse>

export const PhoneLoginBody = Type.Object({
  phone: withoutExamples(Phone),
  auth_type: Type.Optional(PhoneAuthType),
}, { title: 'SecureLoginPhoneLoginBody', description: 'The number to send a one-time code to' })

export const PasswordLoginBody = Type.Object({
  auth_type: PasswordAuthType,
  email: withoutExamples(Email),
  password: withoutExamples(Password),
}, { title: 'SecureLoginPasswordLoginBody', description: 'The email and password of an account (with `password.enabled`)' })

export const LoginBody = Type.Union([PhoneLoginBody, PasswordLoginBody], {
  $id: 'SecureLoginLoginBody',
  title: 'SecureLoginLoginBody',
  description: 'The number to send a one-time code to (`auth_type` absent or "PHONE"), or an email and password to sign in with (`auth_type: "PASSWORD"`)',
  examples: [{ phone: '+14155550123' }, { auth_type: 'PASSWORD', email: 'ada@example.com', password: 'correct horse battery staple' }],
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

export const PasswordRegisterCookieResponse = Type.Object({
  message: Type.Literal('registered successfully'),
  userid: UserId,
  access_token: JwtOrCookie('The access token (a JWT).', ' (only with `cookies.accessToken: \'cookie\'`)'),
  refresh_token: JwtOrCookie('The refresh token (a JWT).'),
  token_type: TokenType,
  expires_in: ExpiresIn,
}, {
  $id: 'SecureLoginPasswordRegisterCookieResponse',
  title: 'SecureLoginPasswordRegisterCookieResponse',
  description: 'The new email-and-password account, signed in, on a server with cookies enabled: cookie clients get the refresh token (and optionally the access token) as HttpOnly cookies instead of in the body',
  examples: [{ message: 'registered successfully', userid: USER_ID, access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 600 }],
})
export type PasswordRegisterCookieResponse = Static<typeof PasswordRegisterCookieResponse>

export const PasswordChangeBody = Type.Object({
  oldpassword: Type.Optional(Password),
  newpassword: NewPassword,
  email: Type.Optional(Email),
}, {
  $id: 'SecureLoginPasswordChangeBody',
  title: 'SecureLoginPasswordChangeBody',
  description: 'The new password, and the current one (`oldpassword`) when the account has one. An account without a password (a phone account) adds one by sending `newpassword` alone, with `email` when it has no email yet: the email it will sign in with',
  examples: [{ oldpassword: 'correct horse battery staple', newpassword: 'a longer passphrase than before' }],
})
export type PasswordChangeBody = Static<typeof PasswordChangeBody>

export const PasswordChangeResponse = Type.Object({ message: Type.Literal('changed password successfully') }, {
  $id: 'SecureLoginPasswordChangeResponse',
  title: 'SecureLoginPasswordChangeResponse',
  examples: [{ message: 'changed password successfully' }],
})
export type PasswordChangeResponse = Static<typeof PasswordChangeResponse>

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
