// Every ```ts code sample in README.md and docs/*.md is type-checked (strict) against the package's
// source, and the samples marked `run` are also executed. A sample is named by the marker before
// its fence:
//
//   <!-- sample: getting-started/app.ts -->        type-checked
//   <!-- sample: getting-started/app.test.ts run --> type-checked, then run with tsx (must exit 0)
//
// Samples that listen on a port, need a PostgreSQL server or call a vendor are type-checked only.
// A ```ts fence without a marker is still type-checked, under a generated name. Samples in one
// folder can import each other (`import { notes } from './schema.js'`).
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

export interface DocSample {
  /** The markdown file, relative to the repository root. */
  doc: string
  /** 1-based line of the sample's first code line in `doc`. */
  line: number
  /** Where the sample is written, relative to the samples folder. */
  file: string
  run: boolean
  code: string
}

const TS_LANGS = new Set(['ts', 'typescript', 'mts'])
const MARKER = /^\s*<!--\s*sample:\s*(\S+)((?:\s+\w+)*)\s*-->\s*$/

/** The ```ts samples of one markdown file, and the problems with its markers. */
export function extractSamples (doc: string, text: string): { samples: DocSample[], problems: string[] } {
  const lines = text.split('\n')
  const samples: DocSample[] = []
  const problems: string[] = []
  let pending: { file: string, run: boolean, line: number } | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const marker = MARKER.exec(line)
    if (marker !== null) {
      if (pending !== undefined) problems.push(`${doc}:${pending.line}: sample marker ${pending.file} is not followed by a \`\`\`ts fence`)
      const flags = (marker[2] ?? '').trim().split(/\s+/).filter(Boolean)
      const file = marker[1] as string
      if (!/^[\w.-]+(\/[\w.-]+)*\.ts$/.test(file) || file.split('/').includes('..')) problems.push(`${doc}:${i + 1}: sample name ${file} must be a relative path ending in .ts`)
      for (const flag of flags) if (flag !== 'run') problems.push(`${doc}:${i + 1}: unknown sample flag ${flag} (only "run")`)
      pending = { file, run: flags.includes('run'), line: i + 1 }
      continue
    }
    const fence = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(line)
    if (fence === null) {
      if (pending !== undefined && line.trim() !== '') {
        problems.push(`${doc}:${pending.line}: sample marker ${pending.file} is not followed by a \`\`\`ts fence`)
        pending = undefined
      }
      continue
    }
    const indent = (fence[1] as string).length
    const close = new RegExp(`^\\s*${(fence[2] as string)[0] === '`' ? '`' : '~'}{${(fence[2] as string).length},}\\s*$`)
    let end = i + 1
    while (end < lines.length && !close.test(lines[end] as string)) end++
    const lang = (fence[3] as string).toLowerCase()
    if (TS_LANGS.has(lang)) {
      const code = lines.slice(i + 1, end).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n') + '\n'
      const name = pending?.file ?? `unnamed/${doc.replace(/\.md$/, '').replace(/[^\w]+/g, '-')}-line-${i + 2}.ts`
      samples.push({ doc, line: i + 2, file: name, run: pending?.run ?? false, code })
    } else if (pending !== undefined) {
      problems.push(`${doc}:${pending.line}: sample marker ${pending.file} is followed by a \`\`\`${lang} fence, not \`\`\`ts`)
    }
    pending = undefined
    i = end
  }
  if (pending !== undefined) problems.push(`${doc}:${pending.line}: sample marker ${pending.file} is not followed by a \`\`\`ts fence`)
  return { samples, problems }
}

/** README.md and every docs/*.md. */
export function documentationFiles (): string[] {
  return ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)]
}

interface Exec { code: number | null, output: string }

function exec (command: string, args: string[], options: { cwd: string, env?: NodeJS.ProcessEnv, timeout: number }): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(command, args, { ...options, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({ code, output: `${stdout}${stderr}${error !== null && error.killed ? '\n(killed: timeout)' : ''}` })
    })
  })
}

/**
 * Writes the samples into `dir` (inside the repository, so that the project's node_modules
 * resolve) with a strict tsconfig that maps `fastify-securelogin` to the source, and type-checks
 * them with one `tsc` run. Returns the diagnostics by sample file (`''` for other files).
 */
export async function typeCheckSamples (dir: string, samples: DocSample[]): Promise<{ byFile: Map<string, string[]>, output: string }> {
  const fromDir = (path: string) => relative(dir, join(root, path)).split('\\').join('/')
  for (const sample of samples) {
    mkdirSync(dirname(join(dir, sample.file)), { recursive: true })
    writeFileSync(join(dir, sample.file), sample.code)
  }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      types: ['node'],
      paths: {
        'fastify-securelogin': [fromDir('lib/index.ts')],
        'fastify-securelogin/sqlite': [fromDir('lib/db/sqlite.ts')],
        'fastify-securelogin/postgres': [fromDir('lib/db/postgres.ts')],
        'fastify-securelogin/schemas': [fromDir('schemas/index.ts')],
      },
    },
    files: samples.map((sample) => sample.file),
  }, null, 2))
  const result = await exec(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: dir, timeout: 100_000 })
  const byFile = new Map<string, string[]>()
  for (const line of result.output.split('\n')) {
    const diagnostic = /^(.+?)\((\d+),(\d+)\): (error .*)$/.exec(line)
    if (diagnostic === null) continue
    const file = (diagnostic[1] as string).split('\\').join('/')
    const sample = samples.find((s) => s.file === file)
    const where = sample === undefined ? `${file}:${diagnostic[2]}` : `${sample.doc}:${sample.line + Number(diagnostic[2]) - 1}`
    const key = sample === undefined ? '' : file
    byFile.set(key, [...(byFile.get(key) ?? []), `${where}: ${diagnostic[4]}`])
  }
  if (result.code !== 0 && byFile.size === 0) byFile.set('', [`tsc failed: ${result.output.slice(0, 2000)}`])
  return { byFile, output: result.output }
}

/** Runs one sample with tsx, in its folder, with a random JWT_SECRET; resolves its exit code and output. */
export function runSample (dir: string, sample: DocSample): Promise<Exec> {
  const file = join(dir, sample.file)
  return exec(process.execPath, ['--import', 'tsx', file], {
    cwd: dirname(file),
    timeout: 120_000, // PGlite starts slowly on a busy machine
    env: {
      ...process.env,
      NODE_ENV: 'test',
      JWT_SECRET: randomBytes(48).toString('base64'),
      TSX_TSCONFIG_PATH: join(dir, 'tsconfig.json'),
    },
  })
}

// Two samples that must fail, checked in the same tsc run as the real ones: proof that a broken
// sample fails this test rather than passing unnoticed.
const selfTest = extractSamples('self-test.md', [
  '<!-- sample: __self-test__/type-error.ts -->',
  '```ts',
  "import secureLogin from 'fastify-securelogin'",
  "const wrong: string = secureLogin // a plugin is not a string",
  'console.log(wrong)',
  '```',
  '<!-- sample: __self-test__/throws.ts run -->',
  '```ts',
  "throw new Error('a sample that fails when run')",
  '```',
].join('\n'))

// One tsc run over the samples and the package's source, and the runs beside it, take a minute or
// more on a busy machine: more than the suite's default timeout.
t.setTimeout(300_000)

const found = documentationFiles().map((doc) => extractSamples(doc, readFileSync(join(root, doc), 'utf8')))
const samples = found.flatMap((f) => f.samples)

t.test('sample markers are well formed and sample names are unique', async (t) => {
  t.same(found.flatMap((f) => f.problems), [], 'no marker problems')
  const names = samples.map((s) => s.file)
  t.same(names.filter((name, i) => names.indexOf(name) !== i), [], 'no two samples share a name')
  t.ok(samples.length >= 10, `found ${samples.length} samples`)
  t.same(samples.filter((s) => s.file.startsWith('unnamed/')).map((s) => `${s.doc}:${s.line}`), [], 'every ```ts sample has a <!-- sample: … --> marker')
})

async function inParallel<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

t.test('every ```ts sample type-checks, and the `run` samples run', async (t) => {
  t.setTimeout(280_000)
  const dir = t.testdir()
  const all = [...samples, ...selfTest.samples]
  const toRun = all.filter((s) => s.run)
  // The samples must be on disk (with their tsconfig) before tsx runs them: typeCheckSamples writes
  // them synchronously before it starts tsc.
  const checking = typeCheckSamples(dir, all)
  const running = inParallel(toRun, 2, (sample) => runSample(dir, sample))
  const [{ byFile }, runs] = await Promise.all([checking, running])

  t.same(byFile.get('') ?? [], [], 'no errors outside the samples')
  for (const sample of samples) t.same(byFile.get(sample.file) ?? [], [], `${sample.doc}:${sample.line} ${sample.file} type-checks`)
  t.match(byFile.get('__self-test__/type-error.ts') ?? [], [/^self-test\.md:4: error TS2322/], 'a sample with a type error is reported, at its line in the markdown')

  toRun.forEach((sample, i) => {
    const result = runs[i] as Exec
    if (sample.file.startsWith('__self-test__/')) {
      t.not(result.code, 0, 'a sample that throws fails the run')
    } else {
      t.equal(result.code, 0, `${sample.doc}:${sample.line} ${sample.file} runs`, { output: result.output.slice(-4000) })
    }
  })
})
