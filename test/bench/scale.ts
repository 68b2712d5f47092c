// `npm run bench -- --scale`: each sign-in step on an empty database and on one holding a large
// app's rows, side by side, and the housekeeping's cost at that size. A step whose cost grows with
// the tables (a statement that reads a whole one) shows here; test/query-plans.test.ts checks the
// plans themselves.
import { formatTable, peakRssNote, type Row } from './common.js'
import { postgresReachable, signinBench, signinSummary, type ScaleReport } from './signin.js'

function comparison (empty: Row[], large: Row[]): string {
  const lines = ['| step | empty: p50 ms | at scale: p50 ms | empty: CPU µs/req | at scale: CPU µs/req | CPU at scale / empty |', '|---|---:|---:|---:|---:|---:|']
  for (const row of empty) {
    const other = large.find((candidate) => candidate.name === row.name)
    const ratio = row.cpu === undefined || other?.cpu === undefined ? '-' : `${(other.cpu / row.cpu).toFixed(2)}x`
    lines.push(`| ${row.name} | ${row.p50} | ${other?.p50 ?? '-'} | ${row.cpu?.toFixed(0) ?? '-'} | ${other?.cpu?.toFixed(0) ?? '-'} | ${ratio} |`)
  }
  return lines.join('\n')
}

function housekeepingNote (report: ScaleReport): string {
  const purged = Object.entries(report.purged).map(([table, rows]) => `${rows.toLocaleString('en-US')} ${table}`).join(', ')
  return `seeded in ${(report.seedMs / 1000).toFixed(1)} s; revocation list: first read ${report.revokedRows.toLocaleString('en-US')} revoked sessions in ${report.revocationMs} ms, next read ${report.nextRevokedRows} in ${report.nextRevocationMs} ms; purge: ${purged} in ${report.purgeMs} ms`
}

export async function runScale (users: number): Promise<void> {
  const dialects: Array<'sqlite' | 'postgres'> = ['sqlite']
  if (await postgresReachable()) dialects.push('postgres')
  else console.log('PostgreSQL not reachable (or BENCH_PG=0): its sign-in steps are skipped.\n')
  const all: Row[] = []
  const notes: string[] = []
  for (const dialect of dialects) {
    const empty = await signinBench(dialect)
    let report: ScaleReport | undefined
    const large = await signinBench(dialect, { scale: users, onScale: (r) => { report = r } })
    all.push(...empty, ...large)
    notes.push(`${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${users.toLocaleString('en-US')} accounts:\n\n${comparison(empty, large)}\n\n${report === undefined ? '' : housekeepingNote(report)}`)
  }
  console.log(formatTable(all, undefined))
  console.log(`\n${signinSummary()}\n`)
  console.log(notes.join('\n\n'))
  console.log(`\nPeak server RSS (each server process, its whole life): ${peakRssNote()}.`)
  const broken = all.filter((row) => row.bad > 0 || !(row.rps > 0))
  if (broken.length > 0) {
    console.error(`bench --scale: ${broken.map((row) => `${row.group} ${row.name}: ${row.rps} req/s, ${row.bad} bad`).join('; ')}`)
    process.exitCode = 1
  }
}
