// Type tests: compiles test/types/usage.ts with tsc under the project's strict settings and fails on
// any error. Its `// @ts-expect-error` lines are mistakes that must not compile; should one ever
// compile, tsc reports the directive as unused (TS2578) and this test fails.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

// One tsc run over the package's types takes half a minute or more on a busy machine.
t.setTimeout(240_000)

t.test('the public types: test/types/usage.ts compiles, and each @ts-expect-error is an error', async (t) => {
  t.setTimeout(220_000)
  const dir = t.testdir()
  const fromDir = (path: string) => relative(dir, join(root, path)).split('\\').join('/')
  // Checked in the same run: a fixture with a mistake that compiles (an unused @ts-expect-error)
  // and one that does not, to prove that this test fails on both.
  writeFileSync(join(dir, 'broken.ts'), [
    `import { consoleSms, type SecureLoginUser } from '${fromDir('lib/index.js')}'`,
    '// @ts-expect-error this compiles, so the directive is unused',
    'consoleSms()',
    "export const user: SecureLoginUser = { userid: 'u', phone: '+1', sid: 's', fresh: 'yes' }",
    '',
  ].join('\n'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: fromDir('tsconfig.json'),
    compilerOptions: { noEmit: true, strict: true },
    include: [],
    files: [fromDir('test/types/usage.ts'), 'broken.ts'],
  }, null, 2))

  const output = await new Promise<string>((resolve) => {
    execFile(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: dir, timeout: 200_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve(`${stdout}${stderr}${error?.killed === true ? '\n(killed: timeout)' : ''}`)
    })
  })
  const diagnostics = output.split('\n').filter((line) => /\): error TS\d+/.test(line))
  const usage = diagnostics.filter((line) => line.includes('usage.ts('))
  const broken = diagnostics.filter((line) => line.startsWith('broken.ts('))

  t.same(usage, [], 'test/types/usage.ts compiles: the API types as documented, and every mistake marked @ts-expect-error is refused')
  t.same(diagnostics.filter((line) => !usage.includes(line) && !broken.includes(line)), [], 'no errors elsewhere')
  t.match(broken, [/^broken\.ts\(2,1\): error TS2578: Unused '@ts-expect-error' directive/, /^broken\.ts\(4,\d+\): error TS2322/], 'the check fails on a mistake that compiles and on one that does not')
  t.notMatch(output, /killed: timeout/, 'tsc finished')
})
