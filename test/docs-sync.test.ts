import { readdirSync, readFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import Fastify, { type RouteOptions } from 'fastify'
import t from 'tap'
import { RateLimitRuleSchema, SecureLoginOptionsSchema } from '../schemas/options.js'
import secureLogin, { errors } from '../lib/index.js'
import { createOutbox, TEST_SECRET } from './helper.js'

// The docs name error codes, routes and options; these checks fail when the code gains one the
// docs do not list, or the docs list one the code no longer has. Canonical lists:
//   error codes  docs/errors.md, one table row per code: | `CODE` | status | when | what to do |
//   routes       README.md, the table under "## Routes" (paths relative to `prefix`, each with the
//                section's method, "The routes are `POST`", unless its cell names another: `GET /x`)
//   options      docs/configuration.md, one table row per option path (`otp.ttl`); a `*` stands for
//                any one key (`rateLimit.*.window` covers every rule's window). README.md's
//                "## Options" table must list the same options.

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')

/** The lines of one `## heading` section of a markdown text. */
function section (markdown: string, heading: string): string[] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((line) => line.trim() === `## ${heading}`)
  if (start === -1) throw new Error(`no "## ${heading}" section`)
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '))
  return lines.slice(start + 1, end === -1 ? undefined : end)
}

/** The cells of each table row (header and separator rows excluded). */
function tableRows (lines: string[]): string[][] {
  return lines
    .filter((line) => line.trimStart().startsWith('|') && !/^\s*\|[\s|:-]+\|\s*$/.test(line))
    .map((line) => line.trim().slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim()))
}

/** The `backticked` names in a table cell. */
function codeSpans (cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1] as string)
}

t.test('docs/errors.md lists every error code with its status, and no code that does not exist', async (t) => {
  const documented = new Map<string, number>()
  for (const [first, second] of tableRows(read('docs/errors.md').split('\n'))) {
    const [code] = codeSpans(first ?? '')
    if (code === undefined || !/^SECURELOGIN_[A-Z_]+$/.test(code)) continue
    t.notOk(documented.has(code), `${code} has one row`)
    documented.set(code, Number(second))
  }
  const real = new Map<string, number>()
  for (const [name, ErrorClass] of Object.entries(errors)) {
    const error = new ErrorClass('x', 1)
    real.set(error.code, error.statusCode as number)
    t.equal(documented.get(error.code), error.statusCode, `${error.code} (${name}) is in docs/errors.md with status ${error.statusCode}`)
  }
  for (const code of documented.keys()) t.ok(real.has(code), `docs/errors.md: ${code} exists in lib/errors.ts`)

  // Nor does any other page name a code that does not exist (a renamed code leaves stale mentions).
  const notCodes = new Set(['SECURELOGIN_TEST_POSTGRES_URL'])
  for (const file of ['README.md', ...readdirSync(new URL('../docs', import.meta.url)).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]) {
    for (const [code] of read(file).matchAll(/\bSECURELOGIN_[A-Z_]*[A-Z]\b/g)) {
      if (!notCodes.has(code)) t.ok(real.has(code), `${file} names ${code}, which exists`)
    }
  }
})

/** The plugin's routes, as registered on an app with the default options. */
async function pluginRoutes (t: Pick<typeof import('tap').default, 'teardown'>): Promise<{ routes: RouteOptions[], printed: string }> {
  const sqlite = new Database(':memory:')
  const app = Fastify()
  t.teardown(async () => {
    await app.close()
    sqlite.close()
  })
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => { routes.push(route) })
  await app.register(secureLogin, { db: drizzle(sqlite), sms: createOutbox().provider, jwt: { secret: TEST_SECRET } })
  await app.ready()
  return { routes, printed: app.printRoutes({ commonPrefix: false }) }
}

t.test('README.md\'s route table lists exactly the routes the plugin registers', async (t) => {
  const { routes, printed } = await pluginRoutes(t)
  const prefix = '/api/auth'
  const registered = new Set<string>()
  for (const route of routes) {
    t.ok(route.url.startsWith(`${prefix}/`), `${route.url} is under the prefix`)
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue
      registered.add(`${method} ${route.url.slice(prefix.length)}`)
    }
  }

  const lines = section(read('README.md'), 'Routes')
  const method = /The routes are `([A-Z]+)`/.exec(lines.join('\n'))?.[1]
  t.ok(method, 'the section says which method the routes use')
  const documented = new Set<string>()
  for (const [first] of tableRows(lines)) {
    for (const span of codeSpans(first ?? '')) {
      const route = /^(?:([A-Z]+) )?(\/\S*)$/.exec(span)
      if (route !== null) documented.add(`${route[1] ?? method} ${route[2]}`)
    }
  }
  t.ok(documented.size > 0, 'the section has a route table')
  for (const route of registered) t.ok(documented.has(route), `${route} is in README.md's route table`)
  for (const route of documented) t.ok(registered.has(route), `README.md's ${route} is a route of the plugin`)

  // getting-started.md shows the route tree an app prints; it must be today's.
  const guide = read('docs/getting-started.md')
  const tree = /It prints the plugin's routes:\n\n```text\n([\s\S]*?)```/.exec(guide)?.[1]
  t.equal(tree?.trim(), printed.trim(), 'docs/getting-started.md shows the printRoutes() output of today\'s routes')
})

interface SchemaNode { type?: string, properties?: Record<string, SchemaNode>, anyOf?: SchemaNode[], oneOf?: SchemaNode[], allOf?: SchemaNode[] }

const RULE_KEYS = Object.keys(RateLimitRuleSchema.properties).sort().join()

/**
 * The option paths of the schema: `db`, `jwt.secret`, `cookies`, `cookies.sameSite`… A group (`jwt`,
 * `otp`: an object and nothing else) is documented by its keys and needs no row of its own. A
 * rate-limit rule is one value unless `intoRules`, which asks for its keys instead
 * (`rateLimit.sendsPerPhone.max`).
 */
function optionPaths (schema: SchemaNode, intoRules: boolean, prefix = ''): string[] {
  const paths: string[] = []
  for (const member of [...schema.anyOf ?? [], ...schema.oneOf ?? [], ...schema.allOf ?? []]) paths.push(...optionPaths(member, intoRules, prefix))
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const isRule = Object.keys(child.properties ?? {}).sort().join() === RULE_KEYS
    const isGroup = child.properties !== undefined && child.anyOf === undefined && (intoRules || !isRule)
    if (!isGroup) paths.push(`${prefix}${key}`)
    if (intoRules || !isRule) paths.push(...optionPaths(child, intoRules, `${prefix}${key}.`))
  }
  return [...new Set(paths)]
}

/** Every path a row may name: each option, each group and each rule. */
function allPaths (schema: SchemaNode, prefix = ''): string[] {
  const paths: string[] = []
  for (const member of [...schema.anyOf ?? [], ...schema.oneOf ?? [], ...schema.allOf ?? []]) paths.push(...allPaths(member, prefix))
  for (const [key, child] of Object.entries(schema.properties ?? {})) paths.push(`${prefix}${key}`, ...allPaths(child, `${prefix}${key}.`))
  return [...new Set(paths)]
}

/** Whether a documented name (`rateLimit.*.window`) stands for the option path. */
function covers (documented: string, path: string): boolean {
  const a = documented.split('.')
  const b = path.split('.')
  return a.length === b.length && a.every((segment, i) => segment === '*' || segment === b[i])
}

/** The option names in the first cell of the table rows of `lines`. */
function documentedOptions (lines: string[]): string[] {
  const names: string[] = []
  for (const [first] of tableRows(lines)) {
    for (const name of codeSpans(first ?? '')) if (/^[A-Za-z*]+(\.[A-Za-z*]+)*$/.test(name)) names.push(name)
  }
  return names
}

t.test('docs/configuration.md and README.md document every option, and only options', async (t) => {
  const schema = SecureLoginOptionsSchema as SchemaNode
  const everyPath = optionPaths(schema, true)
  t.ok(everyPath.includes('jwt.secret') && everyPath.includes('rateLimit.sendsPerPhone.window'), 'the walk reaches nested options')
  const anyPath = allPaths(schema)

  // The reference lists every key, down to a rule's `max` (as `rateLimit.*.max`); the README's
  // summary shows each rule as one value, `{ max: 5, window: '1h' }`.
  const pages = [
    { page: 'docs/configuration.md', paths: everyPath, documented: documentedOptions(read('docs/configuration.md').split('\n')) },
    { page: 'README.md', paths: optionPaths(schema, false), documented: documentedOptions(section(read('README.md'), 'Options')) },
  ]
  for (const { page, paths, documented } of pages) {
    for (const path of paths) t.ok(documented.some((name) => covers(name, path)), `${path} has a row in ${page}`)
    for (const name of new Set(documented)) t.ok(anyPath.some((path) => covers(name, path)), `${page}'s ${name} is an option`)
  }
})
