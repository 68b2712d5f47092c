// Mutation testing of the modules that decide security (issue 11): `npm run mutation`.
// How to run it, what it costs and the scores so far: docs/testing.md.
//
// The tap runner runs each test file as `node --import tsx <file>` (not through the tap CLI) and
// records which test files reach which mutant, so a mutant is only tested by the files that
// execute it, stopping at the first file that fails. Incremental mode keeps the results in
// reports/stryker-incremental.json (git-ignored) and only re-tests mutants whose code or covering
// test files changed since the last run.

import { existsSync } from 'node:fs'

// Run standalone, tap's per-file timeout would be its 30 s default, not package.json's 300 s.
process.env.TAP_TIMEOUT ??= '300'

/** Files that run in-process and exercise these modules. Left out, and why:
 * - child processes, a browser or other servers do the work, out of Stryker's sight (per-test
 *   coverage is recorded in the test's own process): browser-cookies, docs-ui, example-server,
 *   multi-instance, migrate-concurrency, migrations, pgbouncer, types, docs-samples;
 * - about docs, the OpenAPI description or options, not these modules: docs-sync, openapi,
 *   typed-client, options;
 * - load and fuzzing, a minute each, paid again by every surviving mutant: steady-load, property. */
const leftOut = [
  'browser-cookies', 'docs-ui', 'example-server', 'multi-instance', 'migrate-concurrency',
  'migrations', 'pgbouncer', 'types', 'docs-samples',
  'docs-sync', 'openapi', 'typed-client', 'options',
  'steady-load', 'property',
]

/** The modules that decide security. */
const mutate = [
  'lib/otp.ts',
  'lib/challenges.ts',
  'lib/sessions.ts',
  'lib/tokens.ts',
  'lib/authenticate.ts',
  'lib/revocation.ts',
  'lib/rate-limit.ts',
  'lib/store/index.ts',
  'lib/sms/deliver.ts',
  // The account lifecycle (issue 10): ids for life, deletion, disabling, change of number.
  'lib/accounts.ts',
  'lib/store/accounts.ts',
  'lib/admin.ts',
  // Password accounts (issue 10): sign-in, change, limits, hashing, and their store.
  'lib/passwords/accounts.ts',
  'lib/passwords/hash.ts',
  'lib/store/passwords.ts',
  // A request's writes committed together on better-sqlite3 (issue 12): never rolled back.
  'lib/store/unit-of-work.ts',
]
// Stryker only warns about a pattern that matches nothing: a renamed module must fail (and CI's
// dry run with it) rather than silently leave the list.
for (const file of mutate) {
  if (!existsSync(new URL(file, import.meta.url))) throw new Error(`stryker.config.mjs: ${file} does not exist`)
}

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate,
  testRunner: 'tap',
  tap: {
    testFiles: [`test/!(${leftOut.join('|')}).test.ts`],
    nodeArgs: ['--import', 'tsx'],
  },
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  incremental: true,
  // Real databases and a busy 2-core machine: a slow file is not a mutant that hangs.
  timeoutMS: 30_000,
  timeoutFactor: 2,
  // The first run of every file takes 3 to 7 minutes here, beyond Stryker's default 5.
  dryRunTimeoutMinutes: 30,
  ignorePatterns: ['dist', '.tap', 'example-server/.data'],
  reporters: ['clear-text', 'progress', 'html'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
}
