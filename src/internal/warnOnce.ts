/** The warnings said in this process, by code and subject: each once. */
const said = new Set<string>()

/**
 * Says `message` once per process for each `code` and `subject`: a Node process warning
 * (`ViemMppWarning`, with `code`, which `--no-warnings` or a `warning` listener can take), else,
 * in a browser, `console.warn`.
 *
 * @example
 * ```ts
 * warnOnce('VIEM_MPP_PLAIN_HTTP', origin, `payment credentials go to ${origin} over plain http…`)
 * ```
 */
export function warnOnce(code: string, subject: string, message: string) {
  const key = `${code}\n${subject}`
  if (said.has(key)) return
  said.add(key)
  const { process } = globalThis as {
    process?: { emitWarning?: (message: string, options: object) => void }
  }
  if (process?.emitWarning) process.emitWarning(message, { type: 'ViemMppWarning', code })
  else console.warn(`viem-mpp: ${message}`)
}
