// What a commit costs on SQLite, apart from the statements it commits: the same counter upsert the
// rate limits run, each in its own transaction (as the sign-in steps run them) and five to a
// transaction (as one unit of work per request would), on a WAL file, under each `synchronous`.
// Tells how much folding a request's write transactions into one could save. Run alone:
// npx tsx test/bench/sqlite-commits.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { median } from './common.js'

const ROWS = 10_000
const UPSERTS = 20_000

function measure (synchronous: 'FULL' | 'NORMAL' | 'OFF'): { own: number, fiveToOne: number } {
  const dir = mkdtempSync(join(tmpdir(), 'securelogin-commits-'))
  const db = new Database(join(dir, 'bench.db'))
  try {
    db.pragma('journal_mode = WAL')
    db.pragma(`synchronous = ${synchronous}`)
    db.exec('CREATE TABLE counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, window_start INTEGER NOT NULL)')
    const insert = db.prepare('INSERT INTO counters VALUES (?, 0, 0)')
    db.transaction(() => { for (let i = 0; i < ROWS; i++) insert.run(`k${i}`) })()
    const upsert = db.prepare('INSERT INTO counters VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count')
    const fiveInOne = db.transaction((i: number) => { for (let j = 0; j < 5; j++) upsert.all(`k${(i * 5 + j) % ROWS}`, i) })
    let start = process.hrtime.bigint()
    for (let i = 0; i < UPSERTS; i++) upsert.all(`k${i % ROWS}`, i)
    const own = Number(process.hrtime.bigint() - start) / UPSERTS / 1000
    start = process.hrtime.bigint()
    for (let i = 0; i < UPSERTS / 5; i++) fiveInOne(i)
    const fiveToOne = Number(process.hrtime.bigint() - start) / UPSERTS / 1000
    return { own, fiveToOne }
  } finally {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

console.log('| synchronous | µs per upsert, own transaction | µs per upsert, five to a transaction | µs a commit adds |')
console.log('|---|---:|---:|---:|')
for (const synchronous of ['FULL', 'NORMAL', 'OFF'] as const) {
  const runs = Array.from({ length: 5 }, () => measure(synchronous))
  const own = median(runs.map((run) => run.own))
  const fiveToOne = median(runs.map((run) => run.fiveToOne))
  console.log(`| ${synchronous} | ${own.toFixed(1)} | ${fiveToOne.toFixed(1)} | ${((own - fiveToOne) * 5 / 4).toFixed(1)} |`)
}
