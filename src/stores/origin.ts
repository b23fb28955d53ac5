/**
 * The origin of `url` (scheme://host:port), the only part of an endpoint a store may record:
 * RPC providers put API keys in the userinfo, path and query. Throws on what is not a URL.
 */
export function originOf(url: string): string {
  return new URL(url).origin
}
