// The soak's HTTP client: keep-alive sockets to the server, at most one per virtual user (each
// sends one request at a time), JSON in and out. A socket error or a timeout is an answer with
// status 0, so that the caller counts it instead of losing a virtual user to a rejection.
import { Agent, request as httpRequest } from 'node:http'
import { HOST } from './common.js'

export const REQUEST_TIMEOUT_MS = 10_000

export interface ApiRequest {
  method?: 'GET' | 'POST'
  /** Under the server's root, e.g. `/api/auth/login`. */
  path: string
  /** Sent as JSON; leave out to send no body at all. */
  body?: object
  /** Sent as `Authorization: Bearer …`. */
  token?: string
}

export interface Answer {
  /** The HTTP status, or 0 when no answer came (see `failure`). */
  status: number
  /** The parsed JSON answer (undefined when it was not JSON). */
  body: Record<string, unknown> | undefined
  text: string
  failure?: 'error' | 'timeout'
}

export interface Client {
  send: (request: ApiRequest) => Promise<Answer>
  close: () => void
}

export function createClient (port: number, connections: number): Client {
  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  const send = (request: ApiRequest) => new Promise<Answer>((resolve) => {
    const payload = request.body === undefined ? undefined : JSON.stringify(request.body)
    const headers: Record<string, string> = {}
    if (payload !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(payload))
    }
    if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`
    let timedOut = false
    const req = httpRequest({ host: HOST, port, agent, method: request.method ?? 'POST', path: request.path, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: parseObject(text), text })
      })
      res.on('error', (error) => resolve({ status: 0, body: undefined, text: error.message, failure: 'error' }))
    })
    req.on('timeout', () => { timedOut = true; req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)) })
    req.on('error', (error) => resolve({ status: 0, body: undefined, text: error.message, failure: timedOut ? 'timeout' : 'error' }))
    req.end(payload)
  })
  return { send, close: () => agent.destroy() }
}

function parseObject (text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** A string field of an answer, or '' (the next request then fails visibly instead of throwing here). */
export function field (answer: Answer, name: string): string {
  const value = answer.body?.[name]
  return typeof value === 'string' ? value : ''
}
