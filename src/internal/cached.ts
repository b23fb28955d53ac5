/**
 * The value of `key` in `cache`, made by `make` the first time it is asked for.
 *
 * @example
 * ```ts
 * const sender = cached(senders, `${chainId}:${timeout}`, () => createSender(chainId, timeout))
 * ```
 */
export function cached<key, value>(
  cache: { get(key: key): value | undefined; set(key: key, value: value): unknown },
  key: key,
  make: () => value,
): value {
  const found = cache.get(key)
  if (found !== undefined) return found
  const made = make()
  cache.set(key, made)
  return made
}
