// What the soak counts: every answer by step and by status, and the answers that should not happen
// (5xx, no answer, a status the step does not expect), with the first few kept as examples so a
// failure can be reproduced from the report.
import type { Answer, ApiRequest } from './soak-client.js'

export interface Example {
  step: string
  status: string
  request: ApiRequest
  answer: string
}

/** Examples kept per step and status, and in all: enough to reproduce, not a flood. */
const EXAMPLES_PER_KIND = 3
const KEPT_EXAMPLES = 20

/** `200`, `429`, … or `error` / `timeout` when no answer came. */
export function statusOf (answer: Answer): string {
  return answer.failure ?? String(answer.status)
}

export class Tally {
  requests = 0
  readonly byStatus = new Map<string, number>()
  readonly byStep = new Map<string, Map<string, number>>()
  /** 5xx answers, socket errors, timeouts, wrongly accepted requests and faults of the load itself: each fails the run. */
  failures = 0
  /** Of `failures`: a 2xx where the step must be refused (a revoked token accepted, a wrong code taken). */
  accepted = 0
  /** Other statuses a step does not expect (e.g. a 429 where the limits should allow the request): reported, not failed. */
  unexpected = 0
  readonly failureExamples: Example[] = []
  readonly unexpectedExamples: Example[] = []

  /**
   * Counts an answer. `mustRefuse`: the step is a request the server has to refuse whatever the
   * timing, so a 2xx is a failure rather than merely unexpected.
   */
  record (step: string, request: ApiRequest, answer: Answer, expected: readonly number[], mustRefuse = false): void {
    const status = statusOf(answer)
    this.requests += 1
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1)
    const steps = this.byStep.get(step) ?? new Map<string, number>()
    steps.set(status, (steps.get(status) ?? 0) + 1)
    this.byStep.set(step, steps)
    const example = { step, status, request: redact(request), answer: answer.text.slice(0, 300) }
    if (answer.failure !== undefined || answer.status >= 500) {
      this.failures += 1
      keep(this.failureExamples, example)
    } else if (mustRefuse && answer.status < 300) {
      this.failures += 1
      this.accepted += 1
      keep(this.failureExamples, example)
    } else if (!expected.includes(answer.status)) {
      this.unexpected += 1
      keep(this.unexpectedExamples, example)
    }
  }

  /** A fault of the load itself (an exception in a virtual user, a code that never arrived). */
  harnessFault (step: string, detail: string): void {
    this.failures += 1
    keep(this.failureExamples, { step, status: 'harness', request: { path: '-' }, answer: detail })
  }

  /** Answers with this status or these statuses, e.g. `count((s) => s.startsWith('5'))`. */
  count (match: (status: string) => boolean): number {
    let total = 0
    for (const [status, n] of this.byStatus) if (match(status)) total += n
    return total
  }

  /** Successful answers of one step. */
  ok (step: string): number {
    let total = 0
    for (const [status, n] of this.byStep.get(step) ?? []) if (status.startsWith('2')) total += n
    return total
  }
}

function keep (examples: Example[], example: Example): void {
  const sameKind = examples.filter((e) => e.step === example.step && e.status === example.status).length
  if (sameKind < EXAMPLES_PER_KIND && examples.length < KEPT_EXAMPLES) examples.push(example)
}

/** Tokens shortened: an example shows which kind of token went where, not a credential to replay. */
function redact (request: ApiRequest): ApiRequest {
  const short = (token: string) => `${token.slice(0, 12)}…`
  const body = request.body === undefined
    ? undefined
    : Object.fromEntries(Object.entries(request.body).map(([key, value]) => [key, key === 'refresh_token' && typeof value === 'string' ? short(value) : value]))
  return { ...request, body, token: request.token === undefined ? undefined : short(request.token) }
}
