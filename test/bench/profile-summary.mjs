// Where a bench server's CPU went during one measured run: reads the .cpuprofile files that
// BENCH_PROFILE=dir made (test/bench/common.ts) and prints, for each, the share of samples by
// where the code lives (the plugin's own files, each dependency, Node itself, GC, idle) and the
// functions with the most self time; and for the .heapprofile files of BENCH_HEAP_PROFILE=1, the
// bytes allocated, by place and by function.
//   npx tsx test/bench/profile-summary.mjs /tmp/prof/*.cpuprofile [--top 25]
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

const args = process.argv.slice(2)
const topAt = args.indexOf('--top')
const TOP = topAt === -1 ? 25 : Number(args.splice(topAt, 2)[1])

/** Where a frame's code lives: `lib/otp.js`, `better-sqlite3`, `node:internal`, `(garbage collector)`… */
function placeOf ({ url, functionName }) {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const dependency = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (dependency !== null) return dependency[1]
  const ours = url.match(/\/((?:lib|schemas)\/.*)$/)
  if (ours !== null) return ours[1]
  if (url.startsWith('node:')) return 'node'
  return basename(url)
}

function summary (file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const samples = new Map()
  for (const id of profile.samples) samples.set(id, (samples.get(id) ?? 0) + 1)
  const total = profile.samples.length
  const busy = total - (samples.get(profile.nodes.find((node) => node.callFrame.functionName === '(idle)')?.id) ?? 0)
  const byPlace = new Map()
  const byFunction = new Map()
  for (const [id, count] of samples) {
    const { callFrame } = byId.get(id)
    const place = placeOf(callFrame)
    byPlace.set(place, (byPlace.get(place) ?? 0) + count)
    const name = `${callFrame.functionName || '(anonymous)'} ${place}${callFrame.url === '' ? '' : `:${callFrame.lineNumber + 1}`}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + count)
  }
  const share = (count) => `${(100 * count / busy).toFixed(1).padStart(5)} %`
  console.log(`\n${basename(file)}: ${total} samples, ${busy} not idle (shares below are of those)`)
  console.log('  by place:')
  for (const [place, count] of [...byPlace].sort((a, b) => b[1] - a[1])) {
    if (place !== '(idle)' && count / busy >= 0.005) console.log(`    ${share(count)}  ${place}`)
  }
  console.log(`  top ${TOP} functions by self time:`)
  for (const [name, count] of [...byFunction].sort((a, b) => b[1] - a[1]).filter(([name]) => !name.startsWith('(idle)')).slice(0, TOP)) {
    console.log(`    ${share(count)}  ${name}`)
  }
}

/**
 * A .heapprofile (BENCH_HEAP_PROFILE=1): the bytes allocated during the measured run, by where the
 * allocating code lives and by function (sampled: each sample stands for about its interval's bytes).
 */
function heapSummary (file) {
  const { head } = JSON.parse(readFileSync(file, 'utf8'))
  const byPlace = new Map()
  const byFunction = new Map()
  let total = 0
  const visit = (node) => {
    if (node.selfSize > 0) {
      const place = placeOf(node.callFrame)
      const name = `${node.callFrame.functionName || '(anonymous)'} ${place}${node.callFrame.url === '' ? '' : `:${node.callFrame.lineNumber + 1}`}`
      byPlace.set(place, (byPlace.get(place) ?? 0) + node.selfSize)
      byFunction.set(name, (byFunction.get(name) ?? 0) + node.selfSize)
      total += node.selfSize
    }
    for (const child of node.children) visit(child)
  }
  visit(head)
  const share = (bytes) => `${(100 * bytes / total).toFixed(1).padStart(5)} %`
  console.log(`\n${basename(file)}: ${(total / 2 ** 20).toFixed(0)} MB allocated (sampled)`)
  console.log('  by place:')
  for (const [place, bytes] of [...byPlace].sort((a, b) => b[1] - a[1])) {
    if (bytes / total >= 0.005) console.log(`    ${share(bytes)}  ${place}`)
  }
  console.log(`  top ${TOP} functions by bytes allocated:`)
  for (const [name, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`    ${share(bytes)}  ${name}`)
}

for (const file of args) file.endsWith('.heapprofile') ? heapSummary(file) : summary(file)
