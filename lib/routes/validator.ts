import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { TSchema } from '@sinclair/typebox'
import type { FastifySchemaCompiler } from 'fastify'

/**
 * The members of a body union told apart by `auth_type` (/register and /login), by tag; the member
 * whose `auth_type` is optional also takes bodies without one. Undefined for any other schema.
 */
function membersByAuthType (schema: TSchema): { members: Map<string, TSchema>, fallback: string } | undefined {
  if (!Array.isArray(schema.anyOf)) return undefined
  const members = new Map<string, TSchema>()
  let fallback: string | undefined
  for (const member of schema.anyOf as TSchema[]) {
    const tag: unknown = member.properties?.auth_type?.const
    if (typeof tag !== 'string') return undefined
    members.set(tag, member)
    if (!(member.required as string[] | undefined ?? []).includes('auth_type')) fallback = tag
  }
  return fallback === undefined ? undefined : { members, fallback }
}

/**
 * TypeBox's validator compiler, except for a body that is a union by `auth_type`: that body is
 * checked against the member its `auth_type` names, so a phone body missing `phone` is told
 * exactly that, not TypeBox's "Expected union value".
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const union = route.httpPart === 'body' ? membersByAuthType(route.schema) : undefined
  if (union === undefined) return TypeBoxValidatorCompiler(route)
  const checks = new Map([...union.members].map(([tag, member]) => [tag, TypeBoxValidatorCompiler({ ...route, schema: member })]))
  const tags = [...union.members.keys()].map((tag) => `"${tag}"`).join(' or ')
  return (body: unknown) => {
    const tag = typeof body === 'object' && body !== null ? (body as { auth_type?: unknown }).auth_type ?? union.fallback : union.fallback
    const check = typeof tag === 'string' ? checks.get(tag) : undefined
    if (check === undefined) return { error: [{ message: `must be ${tags}`, instancePath: '/auth_type' }] as unknown as Error }
    return check(body)
  }
}
