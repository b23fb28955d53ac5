// Preloaded (`node --import`) by a child process that must reach a server on this machine under
// a hostname that is not a loopback name, as it would reach a remote node: the names listed in
// VIEM_MPP_TEST_HOSTS ("name=127.0.0.1,other=127.0.0.1") resolve to their loopback address, and
// nothing else resolves to one. Node's fetch resolves through dns.lookup.
import dns from 'node:dns'

const hosts = new Map(
  (process.env.VIEM_MPP_TEST_HOSTS ?? '')
    .split(',')
    .filter(Boolean)
    .map((entry) => entry.split('=')),
)
for (const [name, address] of hosts)
  if (!/^127\.\d+\.\d+\.\d+$/.test(address ?? ''))
    throw new Error(`VIEM_MPP_TEST_HOSTS: ${name} must resolve to a 127.x address`)

const lookup = dns.lookup
dns.lookup = (hostname, options, callback) => {
  const done = typeof options === 'function' ? options : callback
  const settings =
    typeof options === 'function'
      ? {}
      : typeof options === 'number'
        ? { family: options }
        : (options ?? {})
  const address = hosts.get(hostname)
  if (!address) return lookup(hostname, options, callback)
  process.nextTick(() =>
    settings.all ? done(null, [{ address, family: 4 }]) : done(null, address, 4),
  )
}
