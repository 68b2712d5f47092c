import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript'
import { buildExampleApp } from './app.js'

/** Where `npm run openapi` writes the document; test/openapi.test.ts fails when it is stale. */
export const OPENAPI_FILE = fileURLToPath(new URL('../docs/openapi.json', import.meta.url))
/** The client types generated from it, used by test/fixtures/openapi-client.ts (checked by test/typed-client.test.ts). */
export const OPENAPI_TYPES_FILE = fileURLToPath(new URL('../test/fixtures/openapi-types.ts', import.meta.url))

const TOP_LEVEL = ['openapi', 'info', 'tags', 'servers', 'security', 'paths', 'components']

/**
 * Sorts object keys so that the file changes only when the API does. The fields of a schema
 * (`properties`) keep their declared order, which is the order a reader expects.
 */
function sortKeys (value: unknown, keepOrder = false): unknown {
  if (Array.isArray(value)) return value.map((item) => sortKeys(item))
  if (typeof value !== 'object' || value === null) return value
  const keys = Object.keys(value)
  if (!keepOrder) keys.sort()
  return Object.fromEntries(keys.map((key) => [key, sortKeys((value as Record<string, unknown>)[key], key === 'properties')]))
}

/** The example app's OpenAPI document as committed in docs/openapi.json. */
export async function openApiDocument (): Promise<string> {
  const sqlite = new Database(':memory:')
  // The document does not depend on the provider; this one sends nothing, in any NODE_ENV.
  const app = await buildExampleApp({ db: drizzle(sqlite), sms: { name: 'none', async send () {} }, jwtSecret: randomBytes(48).toString('base64') })
  try {
    await app.ready()
    const document = sortKeys(app.swagger()) as Record<string, unknown>
    const ordered = Object.fromEntries([...TOP_LEVEL.filter((key) => key in document), ...Object.keys(document).filter((key) => !TOP_LEVEL.includes(key))].map((key) => [key, document[key]]))
    return `${JSON.stringify(ordered, null, 2)}\n`
  } finally {
    await app.close()
    sqlite.close()
  }
}

/** TypeScript types of a document for openapi-fetch, as `npx openapi-typescript docs/openapi.json` writes them. */
export async function openApiTypes (document: string): Promise<string> {
  return COMMENT_HEADER + astToString(await openapiTS(JSON.parse(document) as OpenAPI3, { silent: true }))
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const document = await openApiDocument()
  writeFileSync(OPENAPI_FILE, document)
  writeFileSync(OPENAPI_TYPES_FILE, await openApiTypes(document))
  console.log(`wrote ${OPENAPI_FILE} and ${OPENAPI_TYPES_FILE}`)
}
