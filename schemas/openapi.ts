import type { TSchema } from '@sinclair/typebox'
import {
  LoginBody, LoginResponse, LogoutAllOtherSessionsResponse, LogoutBody, LogoutResponse, RefreshResponse, RegisterBody,
  RegisterResponse, VerifySmsBody, VerifySmsResponse, VerifySmsCookieResponse, RefreshCookieResponse,
  PasswordRegisterResponse, PasswordRegisterCookieResponse, PasswordChangeBody, PasswordChangeResponse,
} from './auth.js'
import { Account, AccountDeletedResponse, AccountPatchBody, PhoneChangeBody, PhoneChangeResponse, PhoneVerifyBody, PhoneVerifyCookieResponse, PhoneVerifyResponse, SessionEndedResponse, SessionList } from './account.js'
import { ErrorResponse } from './common.js'
import { JwksResponse } from './jwks.js'

/** Every schema the routes refer to by `$ref`, each with its `$id`: they become OpenAPI components. */
export const sharedSchemas: readonly TSchema[] = [
  ErrorResponse, RegisterBody, RegisterResponse, LoginBody, LoginResponse, VerifySmsBody, VerifySmsResponse,
  RefreshResponse, LogoutBody, LogoutResponse, LogoutAllOtherSessionsResponse, VerifySmsCookieResponse, RefreshCookieResponse,
  PasswordRegisterResponse, PasswordRegisterCookieResponse, PasswordChangeBody, PasswordChangeResponse,
  JwksResponse,
  Account, AccountPatchBody, AccountDeletedResponse, SessionList, SessionEndedResponse,
  PhoneChangeBody, PhoneChangeResponse, PhoneVerifyBody, PhoneVerifyResponse, PhoneVerifyCookieResponse,
]

/**
 * The security schemes the routes name. The plugin adds them to an OpenAPI document that lacks
 * them; a host app may also declare them itself (`components: { securitySchemes }`).
 */
export const securitySchemes = {
  accessToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'The `access_token` of verify_sms or refresh. Routes that need a fresh sign-in refuse one from refresh (SECURELOGIN_FRESH_TOKEN_REQUIRED).',
  },
  refreshToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'The `refresh_token` of verify_sms or refresh; each works once.',
  },
} as const

/** Component names OpenAPI accepts (`^[a-zA-Z0-9._-]+$`). */
const COMPONENT_NAME = /^[A-Za-z0-9._-]+$/

/**
 * `refResolver` option for `@fastify/swagger`: names each component after its schema's `$id`
 * (e.g. `SecureLoginError`) instead of `def-0`, `def-1`…
 * @example await app.register(swagger, { openapi: { openapi: '3.1.0' }, refResolver })
 */
export const refResolver = {
  buildLocalReference (json: { $id?: unknown }, _baseUri: unknown, _fragment: string, i: number): string {
    return typeof json.$id === 'string' && COMPONENT_NAME.test(json.$id) ? json.$id : `def-${i}`
  },
}
