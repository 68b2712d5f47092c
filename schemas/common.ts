import { Type, type Static } from '@sinclair/typebox'

export const Phone = Type.String({
  minLength: 3,
  maxLength: 32,
  description: 'Phone number in international form (+14155550123), or national form when the server sets defaultCountry',
  examples: ['+14155550123'],
})

export const UserId = Type.String({ format: 'uuid', description: 'Public user id (the JWT `sub`)', examples: ['e5b53d55-bb32-40fb-aaeb-8ad750158639'] })

export const Jwt = Type.String({
  minLength: 1,
  maxLength: 4096,
  description: 'A JSON Web Token',
  examples: ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoiYWNjZXNzIn0.c2lnbmF0dXJl'],
})

export const Message = Type.Object({ message: Type.String() }, { title: 'Message' })

/**
 * The one shape of every error this plugin answers: Fastify's own error shape with a stable `code`.
 * Registered as the named component `SecureLoginError`.
 */
export const ErrorResponse = Type.Object({
  statusCode: Type.Integer({ description: 'The HTTP status, repeated', examples: [401] }),
  code: Type.String({ description: 'Stable machine-readable code: SECURELOGIN_* (listed in docs/errors.md), or FST_* for an unparsable body', examples: ['SECURELOGIN_OTP_INVALID'] }),
  error: Type.String({ description: 'HTTP status text', examples: ['Unauthorized'] }),
  message: Type.String({ description: 'Human-readable explanation, safe to show a user', examples: ['The code is incorrect'] }),
  attempts_left: Type.Optional(Type.Integer({ minimum: 0, description: 'With SECURELOGIN_OTP_INVALID: how many more tries the current code allows', examples: [4] })),
}, {
  $id: 'SecureLoginError',
  title: 'SecureLoginError',
  description: 'An error answered by fastify-securelogin',
  examples: [{ statusCode: 401, code: 'SECURELOGIN_OTP_INVALID', error: 'Unauthorized', message: 'The code is incorrect' }],
})

export type ErrorResponse = Static<typeof ErrorResponse>
