import { Type, type Static } from '@sinclair/typebox'
import { ErrorResponse, Jwt, Message, Phone, UserId } from './common.js'

/** Only phone accounts exist; the field is accepted for clients of the Flask library. */
const AuthType = Type.Literal('PHONE', { description: 'Always "PHONE"; other sign-in types do not exist' })

export const RegisterBody = Type.Object({
  phone: Phone,
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  auth_type: Type.Optional(AuthType),
}, { title: 'RegisterBody' })
export type RegisterBody = Static<typeof RegisterBody>

export const RegisterResponse = Type.Object({
  message: Type.Literal('registered successfully'),
  userid: UserId,
}, { title: 'RegisterResponse' })
export type RegisterResponse = Static<typeof RegisterResponse>

export const LoginBody = Type.Object({
  phone: Phone,
  auth_type: Type.Optional(AuthType),
}, { title: 'LoginBody' })
export type LoginBody = Static<typeof LoginBody>

export const LoginResponse = Type.Object({
  phone: Type.String({ description: 'The number the code was sent to, in E.164' }),
  userid: UserId,
}, { title: 'LoginResponse' })
export type LoginResponse = Static<typeof LoginResponse>

export const VerifySmsBody = Type.Object({
  phone: Phone,
  token: Type.String({ pattern: '^[0-9]{4,10}$', description: 'The code received by SMS', examples: ['123456'] }),
  userid: Type.Optional(UserId),
}, { title: 'VerifySmsBody' })
export type VerifySmsBody = Static<typeof VerifySmsBody>

export const TokenPair = Type.Object({
  access_token: Jwt,
  refresh_token: Jwt,
}, { title: 'TokenPair' })

export const VerifySmsResponse = Type.Object({
  userid: UserId,
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
}, { title: 'VerifySmsResponse' })
export type VerifySmsResponse = Static<typeof VerifySmsResponse>

export const RefreshResponse = Type.Object({
  access_token: Jwt,
  refresh_token: Jwt,
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
}, { title: 'RefreshResponse' })
export type RefreshResponse = Static<typeof RefreshResponse>

export const LogoutBody = Type.Object({
  refresh_token: Type.Optional(Jwt),
}, { title: 'LogoutBody' })
export type LogoutBody = Static<typeof LogoutBody>

export const LogoutResponse = Type.Object({ message: Type.Literal('logout successful') }, { title: 'LogoutResponse' })
export const LogoutAllOtherSessionsResponse = Type.Object({ message: Type.Literal('logout all other sessions successful') }, { title: 'LogoutAllOtherSessionsResponse' })

export { ErrorResponse, Message }
