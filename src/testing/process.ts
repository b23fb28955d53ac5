import type { ChildProcess } from 'node:child_process'

/**
 * Runs `$0 "$@"` (a server: anvil, redis-server) and kills it as soon as our end of the shell's
 * stdin closes: on `stop()`, and also when this Node process dies in any way (even SIGKILL), since
 * the OS closes the pipe. Exits with the server's status when it exits by itself (e.g. the port is
 * taken).
 */
export const tiedToParent =
  'exec 3<&0; "$0" "$@" 3<&- & pid=$!; (read -r _ <&3; kill $pid 2>/dev/null) & wait $pid'

/** Returns an idempotent stop function: closes the shell's stdin and waits for it to exit. */
export function stopper(child: ChildProcess) {
  let stopping: Promise<void> | undefined
  return () => {
    stopping ??= new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        child.stdin?.destroy()
        return resolve()
      }
      child.once('exit', () => resolve())
      child.stdin?.end()
    })
    return stopping
  }
}
