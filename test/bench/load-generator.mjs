// The load generator of the benchmarks: a plain-JS process (no TypeScript loader, nothing else in
// it), forked by test/bench/common.ts, so that what it costs is autocannon's alone and it never
// shares an event loop with the server or the code that prints the tables.
//
// Messages (IPC): { type: 'run', id, options } runs autocannon once and answers
// { type: 'result', id, result }; { type: 'step', id, name, inputs } sets the inputs of a sign-in
// step, and { type: 'state', id, name } answers what the step used and collected. A step keeps its
// state across its warm-up and measured runs.
import autocannon from 'autocannon'

const JSON_HEADERS = { 'content-type': 'application/json' }

/** @type {Map<string, { inputs: unknown[], used: number, outputs: unknown[] }>} */
const steps = new Map()

function stateOf (name) {
  let state = steps.get(name)
  if (state === undefined) steps.set(name, state = { inputs: [], used: 0, outputs: [] })
  return state
}

/** Distinct numbers that libphonenumber accepts (+1 212 200-0000 and up). */
function phoneAt (i) {
  return `+1212${2_000_000 + i}`
}

/** The dynamic requests of each sign-in step; each feeds the next (see test/bench/signin.ts). */
const STEPS = {
  // A new number per request; the ones registered are collected for login.
  register: (state) => [{
    method: 'POST',
    path: '/api/auth/register',
    headers: JSON_HEADERS,
    setupRequest: (request, context) => {
      context.phone = phoneAt(state.used++)
      return { ...request, body: JSON.stringify({ phone: context.phone }) }
    },
    onResponse: (status, _body, context) => { if (status === 201) state.outputs.push(context.phone) },
  }],
  // Each registered number once, so that every request opens a challenge and sends a code.
  login: (state) => [{
    method: 'POST',
    path: '/api/auth/login',
    headers: JSON_HEADERS,
    setupRequest: (request) => ({ ...request, body: JSON.stringify({ phone: state.inputs[state.used++ % state.inputs.length] }) }),
  }],
  // The codes login sent; the refresh tokens issued are collected for refresh.
  verify: (state) => [{
    method: 'POST',
    path: '/api/auth/verify_sms',
    headers: JSON_HEADERS,
    setupRequest: (request) => {
      const entry = state.inputs[state.used++ % state.inputs.length]
      return { ...request, body: JSON.stringify({ phone: entry.phone, token: entry.code }) }
    },
    onResponse: (status, body) => { if (status === 200) state.outputs.push(JSON.parse(body).refresh_token) },
  }],
  // A pool of refresh tokens, each used once and replaced by the one its response carries.
  refresh: (state) => [{
    method: 'POST',
    path: '/api/auth/refresh',
    setupRequest: (request) => {
      state.used++
      return { ...request, headers: { authorization: `Bearer ${state.inputs.shift()}` } }
    },
    onResponse: (status, body) => { if (status === 200) state.inputs.push(JSON.parse(body).refresh_token) },
  }],
}

function run (options) {
  const { step, ...rest } = options
  const requests = step === undefined ? undefined : STEPS[step](stateOf(step))
  return new Promise((resolve, reject) => {
    autocannon({ ...rest, requests }, (error, result) => {
      if (error) return reject(error)
      resolve({
        '2xx': result['2xx'], non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts,
        duration: result.duration, latency: { p50: result.latency.p50, p99: result.latency.p99 },
      })
    })
  })
}

process.on('message', async (message) => {
  try {
    if (message.type === 'run') {
      process.send({ type: 'result', id: message.id, result: await run(message.options) })
    } else if (message.type === 'step') {
      steps.set(message.name, { inputs: [...message.inputs], used: 0, outputs: [] })
      process.send({ type: 'step', id: message.id })
    } else if (message.type === 'state') {
      const { inputs, used, outputs } = stateOf(message.name)
      process.send({ type: 'state', id: message.id, inputs: inputs.length, used, outputs })
    }
  } catch (error) {
    process.send({ type: 'error', id: message.id, error: String(error?.stack ?? error) })
  }
})
// The benchmark process ended (or was killed): nothing is left to drive.
process.on('disconnect', () => process.exit(0))
