// The package as users get it: packs the repository with `npm pack` (which builds through `prepare`),
// checks what the tarball holds, then installs it in a scratch app outside the repository with the
// app's own fastify, drizzle-orm and better-sqlite3, and without twilio. With the lowest and then
// the newest fastify and drizzle-orm that peerDependencies claim, the app (test/package/app/)
// type-checks under --strict without skipLibCheck, signs in end to end, and loads from CommonJS.
// Usage: node test/package/check.mjs   (KEEP=1 keeps the scratch folder)
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const fixture = fileURLToPath(new URL('app/', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

// Each peer range is proved at both ends: its lowest version and whatever npm picks for it today.
// fastify ^5.0.0: 5.0.0 has everything we and @fastify/jwt call.
// drizzle-orm: our emitted table types (dist/lib/db/*.d.ts) give SQLiteColumn/PgColumn the three
// type arguments that 0.38 introduced, so 0.36 and 0.37 run the sign-in but fail to type-check
// (TS2707); 0.38 type-checks and signs in on SQLite, but its WITH takes no INSERT or UPDATE (no
// getSelectedFields on them), which the PostgreSQL statements use: the sign-in on PostgreSQL fails
// there, so the floor is 0.39; every minor from 0.39 to 0.45 passes (lib/db/migrate.ts reads
// DrizzleQueryError, new in 0.44.4, from a namespace import so that older ones still link). 0.46
// and 1.0 are not claimed until tried.
const lowest = (range) => {
  const found = /^\s*(?:\^|>=|~)?\s*(\d+\.\d+\.\d+)(?:\s|$)/.exec(range)
  if (found === null || range.includes('||')) throw new Error(`cannot tell the lowest version of ${range}`)
  return found[1]
}
const peers = { fastify: pkg.peerDependencies.fastify, drizzle: pkg.peerDependencies['drizzle-orm'] }
const ENDS = [
  { label: 'lowest', fastify: lowest(peers.fastify), drizzle: lowest(peers.drizzle) },
  { label: 'newest', ...peers },
]
// The app's own driver and tools, as a user adds them; the versions this repository builds with.
// better-sqlite3 stays on 12: 13 crashes on Node 20.
const APP_DEPS = ['better-sqlite3@12', ...['pg', '@types/pg', '@types/better-sqlite3', 'typescript', '@types/node'].map((name) => `${name}@${pkg.devDependencies[name]}`)]
// The sign-in on PostgreSQL (postgres.ts) needs a server: CI must give one, as for the tests.
const postgresUrl = process.env.SECURELOGIN_TEST_POSTGRES_URL
if (process.env.CI !== undefined && process.env.CI !== '' && postgresUrl === undefined) {
  throw new Error('CI is set but SECURELOGIN_TEST_POSTGRES_URL is not: the pack test must sign in on PostgreSQL too')
}

const started = Date.now()
const scratch = mkdtempSync(join(tmpdir(), 'securelogin-pack-'))
// Started by `npm run test:package`, the scratch npm must not inherit this package's lifecycle variables.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) =>
  !/^npm_(package|lifecycle|config_local_prefix)/i.test(name) && name !== 'INIT_CWD'))

function run (command, args, cwd, timeout = 300_000) {
  try {
    return execFileSync(command, args, { cwd, env, timeout, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 })
  } catch (error) {
    const output = `${error.stdout ?? ''}${error.stderr ?? ''}`.trim()
    const failed = new Error(`${command} ${args.join(' ')} failed${error.signal ? ` (${error.signal})` : ''}:\n${output.split('\n').slice(-25).join('\n')}`)
    throw Object.assign(failed, { output })
  }
}

function files (dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name))
}

/** What the tarball must and must not hold, checked where npm unpacked it. */
function checkContents (dir) {
  const problems = []
  const top = readdirSync(dir).filter((name) => !['package.json', 'README.md', 'LICENSE', 'dist', 'lib', 'schemas', 'migrations'].includes(name))
  if (top.length > 0) problems.push(`unexpected at the top: ${top.join(', ')}`)
  for (const dialect of ['sqlite', 'postgres']) {
    const journal = join(dir, 'migrations', dialect, 'meta', '_journal.json')
    if (!existsSync(journal)) { problems.push(`missing ${relative(dir, journal)}`); continue }
    for (const { tag } of JSON.parse(readFileSync(journal, 'utf8')).entries) {
      if (!existsSync(join(dir, 'migrations', dialect, `${tag}.sql`))) problems.push(`missing migrations/${dialect}/${tag}.sql`)
    }
  }
  const extra = files(join(dir, 'migrations')).map((f) => relative(dir, f).split('\\').join('/'))
    .filter((f) => !/^migrations\/[^/]+\/([^/]+\.sql|meta\/_journal\.json)$/.test(f))
  if (extra.length > 0) problems.push(`dev-only files in migrations/: ${extra.join(', ')}`)
  for (const entry of Object.values(pkg.exports)) {
    for (const target of typeof entry === 'string' ? [entry] : Object.values(entry)) {
      if (!existsSync(join(dir, target))) problems.push(`exports names a missing ${target}`)
    }
  }
  const dist = files(join(dir, 'dist'))
  if (!dist.some((f) => f.endsWith('.d.ts.map'))) problems.push('no declaration maps in dist/')
  for (const map of dist.filter((f) => f.endsWith('.map'))) {
    for (const source of JSON.parse(readFileSync(map, 'utf8')).sources) {
      if (!existsSync(resolve(dirname(map), source))) problems.push(`${relative(dir, map)} points at a missing ${source}`)
    }
  }
  for (const types of dist.filter((f) => f.endsWith('.d.ts'))) {
    if (/from ['"]twilio['"/]|import\(['"]twilio['"/]/.test(readFileSync(types, 'utf8'))) problems.push(`${relative(dir, types)} imports twilio, an optional peer`)
  }
  if (problems.length > 0) throw new Error(`the tarball is wrong:\n  ${problems.slice(0, 20).join('\n  ')}`)
}

/** tsc's error lines, or none when it passes. */
function typeErrors (app, project) {
  try {
    run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', project, '--pretty', 'false'], app)
    return []
  } catch (error) {
    const lines = (error.output ?? '').split('\n').filter((line) => /error TS\d+/.test(line))
    if (lines.length === 0) throw error
    return lines
  }
}

function version (app, name) {
  return JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')).version
}

try {
  run('npm', ['pack', '--pack-destination', scratch], root)
  const tarball = readdirSync(scratch).find((name) => name.endsWith('.tgz'))
  if (tarball === undefined) throw new Error('npm pack made no tarball')

  const app = join(scratch, 'app')
  cpSync(fixture, app, { recursive: true })
  writeFileSync(join(app, 'package.json'), JSON.stringify({
    name: 'securelogin-scratch-app', private: true, type: 'module', allowScripts: { 'better-sqlite3': true },
  }, null, 2))

  for (const end of ENDS) {
    // The same folder both times: the second install only swaps fastify and drizzle-orm, and the
    // better-sqlite3 addon (built from source where its prebuilt binary cannot be fetched) is kept.
    run('npm', ['install', '--no-audit', '--no-fund', join(scratch, tarball), `fastify@${end.fastify}`, `drizzle-orm@${end.drizzle}`, ...APP_DEPS], app)
    const installed = `fastify ${version(app, 'fastify')}, drizzle-orm ${version(app, 'drizzle-orm')}`
    if (existsSync(join(app, 'node_modules/twilio'))) throw new Error('twilio got installed; the check needs an app without it')
    if (end === ENDS[0]) checkContents(join(app, 'node_modules/fastify-securelogin'))

    const tolerated = new Set(typeErrors(app, 'tsconfig.control.json'))
    rmSync(join(app, 'out'), { recursive: true, force: true })
    const ours = typeErrors(app, 'tsconfig.json').filter((line) => !tolerated.has(line))
    if (ours.length > 0) throw new Error(`${end.label} (${installed}): app.ts does not type-check:\n${ours.slice(0, 20).join('\n')}`)

    const signIn = run(process.execPath, ['out/app.js'], app, 60_000)
    if (!/^signed in as /m.test(signIn)) throw new Error(`${end.label}: the sign-in printed ${signIn}`)
    const onPostgres = postgresUrl === undefined ? '' : run(process.execPath, ['out/postgres.js'], app, 60_000)
    if (postgresUrl !== undefined && !/^signed in on PostgreSQL as /m.test(onPostgres)) throw new Error(`${end.label}: the sign-in on PostgreSQL printed ${onPostgres}`)
    run(process.execPath, ['require.cjs'], app, 60_000)
    console.log(`pack test ${end.label} (${installed}): types, sign-in${postgresUrl === undefined ? ' (SQLite only: no SECURELOGIN_TEST_POSTGRES_URL)' : ' on SQLite and PostgreSQL'} and require() ok; ${tolerated.size} errors of drizzle-orm's own .d.ts tolerated`)
  }
  console.log(`pack test passed in ${Math.round((Date.now() - started) / 1000)}s (${tarball})`)
  if (process.env.KEEP === undefined) rmSync(scratch, { recursive: true, force: true })
} catch (error) {
  console.error(`pack test failed after ${Math.round((Date.now() - started) / 1000)}s; scratch folder kept: ${scratch}\n${error.message}`)
  process.exitCode = 1
}
