// Shared helpers: start a bench server in a child process, drive it with autocannon, format tables.
// The server and the load generator (test/bench/load-generator.mjs, plain JS) each run in a process
// of their own, so that on a 2-core machine each gets a core, and neither shares an event loop with
// this process, which only directs the run and prints the tables.
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const HOST = '127.0.0.1'

/** Seconds per measured run and per warm-up run; override with BENCH_DURATION / BENCH_WARMUP. */
export const DURATION = Number(process.env.BENCH_DURATION ?? 4)
export const WARMUP = Number(process.env.BENCH_WARMUP ?? 1)
/** Requests each connection has in flight; BENCH_PIPELINING. */
export const PIPELINING = Number(process.env.BENCH_PIPELINING ?? 1)
/** Interleaved rounds of the cases measured side by side (GET /, POST /work), and seconds a case a round. */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
export const ROUND_SECONDS = Number(process.env.BENCH_ROUND_SECONDS ?? 2)
/**
 * A directory: each measured run of a server writes its CPU profile there (sampling adds to its CPU
 * figure); with BENCH_HEAP_PROFILE=1, a sampled profile of what it allocated (`.heapprofile`).
 */
const PROFILE_DIR = process.env.BENCH_PROFILE
const PROFILE_KIND = process.env.BENCH_HEAP_PROFILE === '1' ? 'heapprofile' : 'cpuprofile'

export interface Row {
  group: string
  name: string
  /** Successful (2xx) responses per second. */
  rps: number
  p50: number
  p99: number
  /** Server CPU time (user + system) per response, in µs: less sensitive to other load than req/s. */
  cpu?: number
  /** Responses that were not 2xx plus socket errors and timeouts: should be 0. */
  bad: number
  /** req/s relative to the bare baseline; when absent, computed against the table's baseline. */
  ratio?: number
  note?: string
}

export interface ServerHandle {
  port: number
  /** Its scenario, label, SQLite settings, named statements and scale, e.g. `signin-sqlite-NORMAL-worker`, `bare-paced`: names its profiles. */
  name: string
  info: Record<string, unknown>
  /** Sends a message and resolves with the child's reply of the same type. */
  ask: <T = unknown>(type: string, payload?: Record<string, unknown>) => Promise<T>
  stop: () => Promise<void>
}

let serverFile: string | undefined

/**
 * The bench server as plain JavaScript, compiled once per run by tsc (test/bench/tsconfig.json) into
 * .bench-build/: run under a TypeScript loader, a server's memory and startup would be the loader's
 * as much as ours (tsx keeps a module-loading thread and its caches: about 50 MB more RSS for the
 * same bare server in our runs).
 */
function compiledServer (): string {
  if (serverFile !== undefined) return serverFile
  const repo = fileURLToPath(new URL('../../', import.meta.url))
  execFileSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repo, 'test', 'bench', 'tsconfig.json')], { stdio: 'inherit' })
  serverFile = join(repo, '.bench-build', 'test', 'bench', 'server.js')
  return serverFile
}

/** The parts of a resident set, from Linux's /proc/<pid>/status (bytes). */
export interface RssParts { anon: number, file: number, shmem: number }

/**
 * The resident set at its highest sample (bytes): its parts, V8's heap spaces (physical size, by
 * V8's space name), and what Node counts outside V8's heap (`external`, of which `arrayBuffers`).
 */
export interface MemoryAtPeak { rss: number, parts: RssParts, heapSpaces: Record<string, number>, external: number, arrayBuffers: number }

/** Wall time inside better-sqlite3's calls (µs): its commits, everything else, and how many calls (BENCH_BREAKDOWN=1). */
export interface SqliteTime { statements: number, commits: number, calls: number }

/** Each bench server's peak resident set (bytes) over its whole life, and its parts as it stopped, by scenario. */
export const peakRss = new Map<string, { peak: number, atStop?: RssParts, atPeak?: MemoryAtPeak }>()

/**
 * `signin-sqlite 84 MB (at its stop: 40 MB anonymous, 44 MB files, 0 MB shared memory), …`: the peak
 * RSS of every server this run stopped. Files are mapped code (Node's own binary is about 34 MB of
 * it) and data; shared memory includes SQLite's WAL index.
 */
export function peakRssNote (): string {
  const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`
  return [...peakRss].map(([scenario, { peak, atStop, atPeak }]) => `${scenario} ${mb(peak)}${atStop === undefined ? '' : ` (at its stop: ${mb(atStop.anon)} anonymous, ${mb(atStop.file)} files, ${mb(atStop.shmem)} shared memory)`}${atPeak === undefined ? '' : `, ${peakNote(atPeak, mb)}`}`).join(', ')
}

/**
 * `at its highest sample 140 MB: 95 MB anonymous, of which V8's new space 33 MB, old space 20 MB,
 * its other spaces 9 MB, external 3 MB and the rest 30 MB (…)`: where the anonymous memory was.
 */
function peakNote ({ rss, parts, heapSpaces, external }: MemoryAtPeak, mb: (bytes: number) => string): string {
  const space = (name: string) => heapSpaces[name] ?? 0
  const v8 = Object.values(heapSpaces).reduce((sum, size) => sum + size, 0)
  const young = space('new_space') + space('new_large_object_space')
  const old = space('old_space') + space('large_object_space')
  return `at its highest sample ${mb(rss)}: ${mb(parts.anon)} anonymous, of which V8's young generation ${mb(young)}, old generation ${mb(old)}, its other spaces (code, maps, read-only) ${mb(v8 - young - old)}, buffers outside V8's heap ${mb(external)} and the rest ${mb(parts.anon - v8 - external)} (native: SQLite's caches, Node, the allocator's free memory)`
}

/**
 * Forks test/bench/server.ts for one scenario and waits until it listens on 127.0.0.1.
 * `nodeFlags` go to the child's Node (the soak's `--expose-gc`).
 */
export async function startServer (scenario: string, env: Record<string, string> = {}, nodeFlags: string[] = []): Promise<ServerHandle> {
  const child: ChildProcess = fork(compiledServer(), [scenario], {
    // BENCH_SERVER_FLAGS: more flags for every server, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile one.
    execArgv: [...nodeFlags, ...(process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter(Boolean)],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const waiting = new Map<string, (message: any) => void>()
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve() }))
  child.on('message', (message: any) => {
    const resolve = waiting.get(message.type)
    if (resolve !== undefined) { waiting.delete(message.type); resolve(message) }
  })
  const reply = (type: string, timeoutMs: number) => new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => { waiting.delete(type); reject(new Error(`bench server ${scenario}: no '${type}' within ${timeoutMs} ms`)) }, timeoutMs)
    waiting.set(type, (message) => { clearTimeout(timer); resolve(message) })
    void exit.then(() => { if (waiting.has(type)) { clearTimeout(timer); reject(new Error(`bench server ${scenario} exited`)) } })
  })
  let ready: any
  try {
    // A server that seeds a million rows first (`--scale`) takes minutes to be ready.
    ready = await reply('ready', env.BENCH_SCALE === undefined ? 60_000 : 900_000)
  } catch (error) {
    if (!exited) child.kill('SIGKILL')
    throw error
  }
  if (ready.error !== undefined) {
    await exit
    throw new Error(`bench server ${scenario}: ${ready.error}`)
  }
  // What this server is (`signin-sqlite NORMAL worker 10000 accounts`, `signin-postgres named`,
  // `bare paced`): names its profiles and its peak RSS, so no two servers of a run share a name.
  // BENCH_LABEL: a word more, for a second server of one scenario (its server ignores it).
  const setting = (name: string) => env[name] ?? process.env[name]
  const setup = [
    scenario, env.BENCH_LABEL, setting('BENCH_SQLITE_SYNC'), setting('BENCH_SQLITE_CHECKPOINTS'),
    scenario.endsWith('postgres') && setting('BENCH_PG_NAMED') === '1' ? 'named' : undefined,
    env.BENCH_SCALE === undefined ? undefined : `${env.BENCH_SCALE} accounts`,
  ].filter(Boolean)
  return {
    port: ready.port,
    name: setup.join('-').replaceAll(' ', '-'),
    info: ready,
    ask: async (type, payload = {}) => {
      const answer = reply(type, 600_000)
      child.send({ type, ...payload })
      return answer
    },
    stop: async () => {
      if (exited) return
      const answer = reply('cpu', 10_000)
      child.send({ type: 'cpu' })
      const { maxRss, rssParts, atPeak } = await answer.catch(() => ({ maxRss: NaN, rssParts: undefined, atPeak: undefined }))
      peakRss.set(setup.join(' '), { peak: maxRss, atStop: rssParts, atPeak })
      child.send({ type: 'stop' })
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL') }, 10_000)
      await exit
      clearTimeout(timer)
    },
  }
}

export interface LoadOptions {
  port: number
  /** When given, the server's CPU time is sampled around the measured run. */
  server?: ServerHandle
  /** Skip the warm-up run (the caller warmed the server up already). */
  noWarmup?: boolean
  /** Called between the warm-up and the measured run (before `amount` is asked again). */
  beforeMeasure?: () => Promise<void>
  method?: 'GET' | 'POST'
  path: string
  connections: number
  headers?: Record<string, string>
  body?: string
  /** A sign-in step of the load generator (its dynamic requests), used instead of method/path/body: see `setStep`. */
  step?: SignInStep
  /** With BENCH_PROFILE set: the measured run's CPU profile goes to `$BENCH_PROFILE/<profile>.cpuprofile`. */
  profile?: string
  /** Called before each run (warm-up and measured): stop after this many responses, for scenarios with a finite supply of inputs. */
  amount?: (runSeconds: number) => number | undefined
  duration?: number
}

export interface LoadResult {
  rps: number
  p50: number
  p99: number
  ok: number
  bad: number
  seconds: number
  /** Server CPU µs per response, when `server` was given. */
  cpu?: number
  /** With BENCH_BREAKDOWN=1: the part of `cpu` spent on the server's main thread (Linux only). */
  mainThread?: number
  /** With BENCH_BREAKDOWN=1, on SQLite: wall µs per response inside better-sqlite3 calls, its commits and all else. */
  inSqlite?: SqliteTime
}

/** The dynamic request sequences of test/bench/load-generator.mjs. */
export type SignInStep = 'register' | 'login' | 'verify' | 'refresh'

/** What autocannon reported of a run, as the load generator passes it on. */
interface RunResult { '2xx': number, non2xx: number, errors: number, timeouts: number, duration: number, latency: { p50: number, p99: number } }

const EMPTY: RunResult = { '2xx': 0, non2xx: 0, errors: 0, timeouts: 0, duration: 0, latency: { p50: NaN, p99: NaN } }

const generatorFile = fileURLToPath(new URL('./load-generator.mjs', import.meta.url))
let generator: ChildProcess | undefined
let nextId = 0

/**
 * Asks the load generator (forked on first use, plain Node: no TypeScript loader) and waits for its
 * answer. Its channel holds this process open only while a question is pending.
 */
function askGenerator<T> (message: Record<string, unknown>): Promise<T> {
  if (generator === undefined) {
    generator = fork(generatorFile, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    generator.unref()
  }
  const child = generator
  const id = ++nextId
  const channel = child.channel as unknown as { ref: () => void, unref: () => void }
  channel.ref()
  return new Promise<T>((resolve, reject) => {
    const onMessage = (answer: { id: number, type: string, error?: string }) => {
      if (answer.id !== id) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      channel.unref()
      if (answer.type === 'error') reject(new Error(`load generator: ${answer.error}`))
      else resolve(answer as T)
    }
    const onExit = () => { channel.unref(); reject(new Error('the load generator exited')) }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send({ ...message, id })
  })
}

/** Gives a sign-in step its inputs (numbers to log in, codes to verify, refresh tokens) and starts its count afresh. */
export async function setStep (name: SignInStep, inputs: unknown[]): Promise<void> {
  await askGenerator({ type: 'step', name, inputs })
}

/** How many inputs a step was given and has used, and what it collected (registered numbers, refresh tokens). */
export async function stepState<T> (name: SignInStep): Promise<{ inputs: number, used: number, outputs: T[] }> {
  return await askGenerator({ type: 'state', name })
}

async function once (options: LoadOptions, duration: number, amount: number | undefined): Promise<RunResult> {
  // autocannon refuses an amount below the connection count: too few inputs means no run.
  if (amount !== undefined && amount < options.connections) return EMPTY
  const { result } = await askGenerator<{ result: RunResult }>({
    type: 'run',
    options: {
      url: `http://${HOST}:${options.port}${options.path}`,
      method: options.method ?? 'GET',
      connections: options.connections,
      pipelining: PIPELINING,
      duration,
      amount,
      timeout: 10,
      headers: options.headers,
      body: options.body,
      step: options.step,
    },
  })
  return result
}

/**
 * A warm-up run (discarded) then the measured run. Throughput is 2xx responses divided by the
 * measured run's real length, so a run that stops early on `amount` is still right.
 */
export async function load (options: LoadOptions): Promise<LoadResult> {
  const duration = options.duration ?? DURATION
  if (WARMUP > 0 && options.noWarmup !== true) await once(options, WARMUP, options.amount?.(WARMUP))
  await options.beforeMeasure?.()
  const profileFile = PROFILE_DIR === undefined || options.server === undefined || options.profile === undefined ? undefined : join(PROFILE_DIR, `${options.profile}.${PROFILE_KIND}`)
  if (profileFile !== undefined) await options.server!.ask('profile-start')
  const before = await options.server?.ask<ServerCpu>('cpu')
  const result = await once(options, duration, options.amount?.(duration))
  const after = await options.server?.ask<ServerCpu>('cpu')
  if (profileFile !== undefined) await options.server!.ask('profile-stop', { file: profileFile })
  const ok = result['2xx']
  const bad = result.non2xx + result.errors + result.timeouts
  const responses = ok + result.non2xx
  const cpu = before === undefined || after === undefined || responses === 0 ? undefined : (after.micros - before.micros) / responses
  const timedSqlite = before?.inSqlite !== undefined && after?.inSqlite !== undefined && after.inSqlite.calls > 0 && responses > 0
  const inSqlite = !timedSqlite
    ? undefined
    : {
        statements: (after.inSqlite!.statements - before.inSqlite!.statements) / responses,
        commits: (after.inSqlite!.commits - before.inSqlite!.commits) / responses,
        calls: (after.inSqlite!.calls - before.inSqlite!.calls) / responses,
      }
  const mainThread = before?.mainThreadMicros === undefined || after?.mainThreadMicros === undefined || responses === 0 ? undefined : (after.mainThreadMicros - before.mainThreadMicros) / responses
  return { rps: result.duration === 0 ? 0 : ok / result.duration, p50: result.latency.p50, p99: result.latency.p99, ok, bad, seconds: result.duration, cpu, mainThread, inSqlite }
}

/**
 * Measures `count` cases in ROUNDS interleaved rounds, the starting case rotating each round, so
 * that drift in the machine's other load hits every case alike: `measure(i, round)` runs case `i`
 * once. Answers each case's runs, in case order.
 */
export async function interleavedRounds (count: number, measure: (i: number, round: number) => Promise<LoadResult>): Promise<LoadResult[][]> {
  const runs = Array.from({ length: count }, () => [] as LoadResult[])
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < count; k++) {
      const i = (k + round) % count
      runs[i]!.push(await measure(i, round))
    }
  }
  return runs
}

/** A case's figures over its rounds: the median of each, and every round's bad answers. */
export function medianOfRuns (runs: readonly LoadResult[]): Pick<Row, 'rps' | 'p50' | 'p99' | 'cpu' | 'bad'> {
  const cpu = median(runs.map((run) => run.cpu ?? NaN))
  return {
    rps: median(runs.map((run) => run.rps)),
    p50: median(runs.map((run) => run.p50)),
    p99: median(runs.map((run) => run.p99)),
    cpu: Number.isNaN(cpu) ? undefined : cpu,
    bad: runs.reduce((sum, run) => sum + run.bad, 0),
  }
}

/** A bench server's answer to 'cpu': its CPU time so far, and with BENCH_BREAKDOWN=1 its main thread's and its time inside better-sqlite3 (µs). */
interface ServerCpu { micros: number, mainThreadMicros?: number, inSqlite?: SqliteTime }

export function loadNote (): string {
  const [one, five] = loadavg()
  return `load average ${one!.toFixed(2)} (1 min) / ${five!.toFixed(2)} (5 min)`
}

/** Prints rows as a Markdown table with each row's ratio to `baseline` req/s. */
export function formatTable (rows: Row[], baseline: number | undefined): string {
  const head = ['group', 'case', 'req/s', 'vs bare', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'non-2xx/err', 'note']
  const lines = rows.map((row) => {
    const ratio = row.ratio ?? (baseline === undefined || baseline === 0 ? undefined : row.rps / baseline)
    return [
      row.group,
      row.name,
      Math.round(row.rps).toLocaleString('en-US'),
      ratio === undefined || Number.isNaN(ratio) ? '-' : `${ratio.toFixed(2)}x`,
      String(row.p50),
      String(row.p99),
      row.cpu === undefined ? '-' : row.cpu.toFixed(0),
      String(row.bad),
      row.note ?? '',
    ]
  })
  const numeric = (i: number) => i >= 2 && i <= 7
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`
  return [fmt(head), `|${widths.map((w, i) => (numeric(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`, ...lines.map(fmt)].join('\n')
}

/** True when run directly (`tsx test/bench/x.ts`) rather than imported by test/bench/run.ts. */
export function isMain (url: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(url) === process.argv[1]
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
