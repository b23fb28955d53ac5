import { createServer, type IncomingMessage } from 'node:http'
import { Credential } from 'mppx'
import { listening } from './fakeServer.js'

/** What a paid request's credential carries (a session's action and amount, for instance). */
export type PaidPayload = { action?: string; cumulativeAmount?: string } & Record<string, unknown>

/**
 * What the proxy does with a request carrying a Payment credential: `forward()` sends it on and
 * gives the answer; return that answer (or another) to pass it back, or `'drop'` to destroy the
 * connection without answering, as a network failure would after the server has processed it.
 */
export type PaidHook = (
  payload: PaidPayload,
  forward: () => Promise<Response>,
) => Promise<Response | 'drop'>

/** The body of `req`, read whole. */
export async function bodyOf(req: IncomingMessage) {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** The headers of `req` that a proxy sends on: all but those of this hop. */
function forwardedHeaders(req: IncomingMessage) {
  const headers = new Headers()
  for (const [name, value] of Object.entries(req.headers))
    if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name))
      headers.set(name, value)
  return headers
}

/** `req`, with `body` and `headers`, sent on to the same path at `target`. */
export const forwardTo = (
  target: string,
  req: IncomingMessage,
  body: Buffer<ArrayBuffer>,
  headers = forwardedHeaders(req),
) =>
  fetch(new URL(req.url ?? '/', target), {
    method: req.method ?? 'POST',
    headers,
    ...(body.length ? { body } : {}),
  })

/** The headers of `answer` that a proxy passes back: its type, challenges and receipt. */
export function passedBack(answer: Response) {
  const passed: Record<string, string> = {}
  for (const name of ['content-type', 'www-authenticate', 'payment-receipt']) {
    const value = answer.headers.get(name)
    if (value) passed[name] = value
  }
  return passed
}

/**
 * A loopback proxy in front of `target` that lets a test delay or drop paid requests. With
 * `snapshots: false` it keeps the `Payment-Session` request header from the server, which then
 * answers as a server that sends no session snapshots.
 */
export async function startProxy(
  target: string,
  onPaid: PaidHook,
  { snapshots = true }: { snapshots?: boolean } = {},
) {
  const server = createServer(async (req, res) => {
    const body = await bodyOf(req)
    const headers = forwardedHeaders(req)
    if (!snapshots) headers.delete('payment-session')
    const forward = () => forwardTo(target, req, body, headers)
    const authorization = req.headers.authorization
    const answer = authorization?.startsWith('Payment ')
      ? await onPaid(Credential.deserialize(authorization).payload as PaidPayload, forward)
      : await forward()
    if (answer === 'drop') {
      req.socket.destroy()
      return
    }
    const text = await answer.text()
    res.writeHead(answer.status, passedBack(answer)).end(text)
  })
  return listening(server)
}

/** What a paid request carried, as `action cumulativeAmount`: the sequence a proxy saw, at a glance. */
export const paidLabel = ({ action, cumulativeAmount }: PaidPayload) =>
  `${action} ${cumulativeAmount}`

/** A proxy in front of `target` that forwards everything and records each paid request's payload. */
export async function recordingProxy(target: string, options?: { snapshots?: boolean }) {
  const paid: PaidPayload[] = []
  const proxy = await startProxy(
    target,
    async (payload, forward) => {
      paid.push(payload)
      return forward()
    },
    options,
  )
  return { ...proxy, paid }
}

/** A problem-details answer of `status`, as a server refusing a payment gives it. */
export const problemAnswer = (
  status: number,
  problem: { type: string } & Record<string, unknown>,
) => Response.json(problem, { status, headers: { 'content-type': 'application/problem+json' } })

/** What a server without snapshots answers a voucher at or below the highest it accepted. */
export const staleVoucherAnswer = () =>
  problemAnswer(402, {
    type: 'https://paymentauth.org/problems/verification-failed',
    detail: 'voucher cumulativeAmount must be strictly greater than highest accepted voucher',
  })

/**
 * A proxy in front of `target` that answers every paid request of `action` with `answer()`, never
 * forwarding it, and records the cumulative amount each carried (`refused`); the rest pass.
 */
export async function refusingProxy(
  target: string,
  action: string,
  answer: () => Response,
  options?: { snapshots?: boolean },
) {
  const refused: string[] = []
  const proxy = await startProxy(
    target,
    async (payload, forward) => {
      if (payload.action !== action) return forward()
      refused.push(payload.cumulativeAmount ?? '')
      return answer()
    },
    options,
  )
  return { ...proxy, refused }
}
