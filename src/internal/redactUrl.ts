/**
 * The part of a URL that is safe to show in errors and logs: its origin. Userinfo, path and query
 * are dropped because RPC providers put API keys in all three.
 */
export function redactUrl(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '<invalid URL>'
  }
}
