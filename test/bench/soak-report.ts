// The soak's report for one database, and the reasons it fails, if any.
import type { Example, Tally } from './soak-tally.js'

export interface ServerStats {
  rss: number
  heapUsed: number
  /** CPU time (user + system) of the server process so far, µs. */
  cpuMicros: number
  /** Rows in each of the plugin's tables. */
  rows?: Record<string, number>
  error?: string
}

/** The measured part in slices of `seconds`: requests answered in each, and the server's RSS (no GC) at its end. */
export interface Slices {
  seconds: number
  requests: number[]
  rss: number[]
}

export interface DatabaseRun {
  name: string
  /** Length of the measured part, after the warm-up. */
  seconds: number
  warmup: Tally
  measured: Tally
  slices: Slices
  /** Server memory after the warm-up and at the end. */
  start: ServerStats
  end: ServerStats
}

export interface ReportOptions {
  /** Whether RSS growth beyond `rssGrowthLimit` fails the run (it is printed either way). */
  checkRss: boolean
  rssGrowthLimit: number
}

const n = (value: number) => Math.round(value).toLocaleString('en-US')
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`
const percent = (ratio: number) => `${ratio >= 0 ? '+' : ''}${(ratio * 100).toFixed(1)} %`

/** `200 1,234 · 401 56`, statuses in order, `error` and `timeout` last. */
function statuses (counts: Map<string, number>): string {
  return [...counts].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([status, count]) => `${status} ${n(count)}`).join(' · ')
}

/** Failures of a tally, by kind. */
function failureCounts (tally: Tally) {
  const fiveXx = tally.count((s) => s.startsWith('5'))
  const errors = tally.count((s) => s === 'error')
  const timeouts = tally.count((s) => s === 'timeout')
  return { fiveXx, errors, timeouts, accepted: tally.accepted, harness: tally.failures - fiveXx - errors - timeouts - tally.accepted }
}

function stepTable (tally: Tally): string {
  const rows = [...tally.byStep].sort(([a], [b]) => a.localeCompare(b)).map(([step, counts]) => [step, n([...counts.values()].reduce((a, b) => a + b, 0)), statuses(counts)])
  const head = ['step', 'answers', 'by status']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i === 1 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`, ...rows.map(line)].join('\n')
}

function examples (title: string, list: Example[]): string[] {
  if (list.length === 0) return []
  return [title, ...list.map((e) => `  ${e.step}: ${e.status} for ${JSON.stringify(e.request)} → ${e.answer}`)]
}

export function formatReport (run: DatabaseRun, options: ReportOptions): { text: string, failures: string[] } {
  const { measured, warmup } = run
  const failures: string[] = []
  const lines = [`## ${run.name}`]
  lines.push(`${run.seconds.toFixed(1)} s measured: ${n(measured.requests)} requests, ${n(measured.requests / run.seconds)} req/s (warm-up before it: ${n(warmup.requests)} requests)`)
  const { slices } = run
  if (slices.requests.length > 0) {
    lines.push(`req/s by ${slices.seconds} s slice: ${slices.requests.map((count) => n(count / slices.seconds)).join(' ')}`)
    lines.push(`server RSS (MB, no GC) at the end of each slice: ${slices.rss.map((bytes) => (bytes / 2 ** 20).toFixed(0)).join(' ')}`)
  }
  lines.push(`answers by status: ${statuses(measured.byStatus)}`)

  const measuredFailures = failureCounts(measured)
  const warmupFailures = failureCounts(warmup)
  const total = (key: keyof typeof measuredFailures) => measuredFailures[key] + warmupFailures[key]
  lines.push(`5xx: ${n(total('fiveXx'))} · socket errors: ${n(total('errors'))} · timeouts: ${n(total('timeouts'))} · accepted what must be refused: ${n(total('accepted'))} · faults of the load: ${n(total('harness'))} (warm-up included) · other statuses a step did not expect: ${n(measured.unexpected + warmup.unexpected)} (reported only)`)
  if (total('fiveXx') > 0) failures.push(`${total('fiveXx')} answers with a 5xx status`)
  if (total('accepted') > 0) failures.push(`${total('accepted')} requests accepted that must be refused (see the examples)`)
  if (total('errors') + total('timeouts') > 0) failures.push(`${total('errors')} socket errors and ${total('timeouts')} timeouts`)
  if (total('harness') > 0) failures.push(`${total('harness')} faults of the load (see the examples)`)
  if (measured.ok('verify_sms') + warmup.ok('verify_sms') === 0) failures.push('no sign-in succeeded: the load tested nothing')

  if (run.start.error !== undefined || run.end.error !== undefined) {
    failures.push(`the server could not report its stats: ${run.start.error ?? run.end.error}`)
  } else {
    const cpu = run.end.cpuMicros - run.start.cpuMicros
    if (measured.requests > 0) lines.push(`server CPU: ${n(cpu / measured.requests)} µs per request, ${(cpu / 1e6 / run.seconds * 100).toFixed(0)} % of one core`)
    const growth = run.end.rss / run.start.rss - 1
    const over = growth > options.rssGrowthLimit
    const verdict = over ? `over the ${percent(options.rssGrowthLimit)} limit` : `within ${percent(options.rssGrowthLimit)}`
    lines.push(`server RSS: ${mb(run.start.rss)} after the warm-up → ${mb(run.end.rss)} at the end, ${percent(growth)}, ${verdict}${options.checkRss ? '' : ' (not checked: too short a run to tell)'}; heap used after GC ${mb(run.start.heapUsed)} → ${mb(run.end.heapUsed)}`)
    if (over && options.checkRss) failures.push(`server RSS grew ${percent(growth)}, more than ${percent(options.rssGrowthLimit)}`)
    const rows = Object.entries(run.end.rows ?? {}).map(([table, count]) => `${table} ${n(count)}`)
    lines.push(`rows left: ${rows.join(' · ')}`)
  }
  lines.push('', stepTable(measured))
  lines.push(...examples('failures (first ones):', [...warmup.failureExamples, ...measured.failureExamples]))
  lines.push(...examples('statuses a step did not expect (first ones):', [...warmup.unexpectedExamples, ...measured.unexpectedExamples]))
  return { text: lines.join('\n'), failures }
}
