import type { TSchema } from '@sinclair/typebox'
import { ErrorResponse, securitySchemes } from '../../schemas/index.js'

/**
 * A `$ref` to a schema registered with `addSchema`, typed as the schema itself so that the type
 * provider still infers `request.body` and the reply from it. The routes' validator compiler
 * resolves the reference back to the same TypeBox schema.
 */
export function refTo<T extends TSchema> (schema: T): T {
  if (typeof schema.$id !== 'string') throw new TypeError('fastify-securelogin: a referenced schema needs an $id')
  return { $ref: `${schema.$id}#` } as unknown as T
}

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 502 | 503 | 504
type CommonStatus = 400 | 413 | 415 | 500 | 503

/** The 503 of every route: the database is down, restarting, unreachable or slower than `dbTimeout`. */
export const UNAVAILABLE = 'The database cannot serve now (SECURELOGIN_UNAVAILABLE): down, restarting, unreachable, or slower than `dbTimeout`, or the list of ended sessions is older than `revocationMaxDelay` and cannot be read; `Retry-After` says when to try again'

/** The 401 of the routes behind an access token. */
export const ACCESS_TOKEN_REFUSED = 'The Bearer token is missing (SECURELOGIN_TOKEN_MISSING), invalid (SECURELOGIN_TOKEN_INVALID) or expired (SECURELOGIN_TOKEN_EXPIRED), or its session has ended (SECURELOGIN_SESSION_REVOKED)'

/** What every route can answer: each parses a JSON body and reads the database. */
const COMMON: Record<CommonStatus, string> = {
  400: 'The body is not valid JSON (FST_ERR_CTP_INVALID_JSON_BODY) or does not match the schema (SECURELOGIN_BAD_REQUEST)',
  413: 'The body is larger than 16 KiB (FST_ERR_CTP_BODY_TOO_LARGE)',
  415: 'The body is not `application/json` (FST_ERR_CTP_INVALID_MEDIA_TYPE)',
  500: 'An unexpected failure (SECURELOGIN_INTERNAL); the details are logged, never answered',
  503: UNAVAILABLE,
}

/** The 403 of the routes that use the session cookies, on a server with `cookies` enabled. */
export function cookieOriginRefusal (cookies: unknown): string | undefined {
  return cookies === undefined ? undefined : 'The request asked for the cookie transport from an origin that may not use it (SECURELOGIN_COOKIE_ORIGIN_REFUSED)'
}

const RETRY_AFTER = { 'retry-after': { type: 'integer', description: 'Seconds to wait before trying again' } }

/**
 * The error answers of a route: the common ones plus `specific`, each status with the one error
 * shape and a description naming the codes it carries.
 */
export function errorResponses<S extends ErrorStatus> (specific: Partial<Record<CommonStatus, string>> & Record<S, string | undefined>): Record<S | CommonStatus, typeof ErrorResponse> {
  const descriptions: Partial<Record<ErrorStatus, string | undefined>> = { ...COMMON, ...specific }
  const responses: Partial<Record<ErrorStatus, unknown>> = {}
  for (const status of Object.keys(descriptions).map(Number).sort() as ErrorStatus[]) {
    // undefined: a status this route answers only under some options (e.g. cookies).
    if (descriptions[status] === undefined) continue
    responses[status] = { ...refTo(ErrorResponse), description: descriptions[status], ...(status === 429 || status === 503 ? { headers: RETRY_AFTER } : {}) }
  }
  return responses as Record<S | CommonStatus, typeof ErrorResponse>
}

/** Unique per route, also when the plugin is registered twice: `/api/auth/verify_sms` → `apiAuthVerifySms`. */
export function operationIdFor (prefix: string, path: string): string {
  const words = `${prefix}/${path}`.split(/[^A-Za-z0-9]+/).filter((word) => word !== '')
  return words.map((word, i) => i === 0 ? word.toLowerCase() : word[0]!.toUpperCase() + word.slice(1).toLowerCase()).join('')
}

type SwaggerTransformArgs<S> = {
  schema: S
  url: string
  openapiObject?: { components?: { securitySchemes?: Record<string, unknown> } }
  swaggerObject?: { securityDefinitions?: Record<string, unknown> }
}

/**
 * Route `config` for @fastify/swagger: makes sure the document declares the security schemes the
 * route names, which @fastify/swagger requires (it throws on an undeclared one). The host's own
 * declarations win; its options object is never modified.
 */
export const swaggerConfig = {
  swaggerTransform<S> ({ schema, url, openapiObject, swaggerObject }: SwaggerTransformArgs<S>): { schema: S, url: string } {
    if (openapiObject !== undefined) {
      openapiObject.components ??= {}
      openapiObject.components.securitySchemes = { ...securitySchemes, ...openapiObject.components.securitySchemes }
    } else if (swaggerObject !== undefined) {
      // Swagger 2.0 has no bearer scheme: an Authorization header is the closest.
      const definitions = Object.fromEntries(Object.entries(securitySchemes).map(([name, scheme]) => [name, { type: 'apiKey', in: 'header', name: 'authorization', description: `Bearer ${scheme.bearerFormat}: ${scheme.description}` }]))
      swaggerObject.securityDefinitions = { ...definitions, ...swaggerObject.securityDefinitions }
    }
    return { schema, url }
  },
}
