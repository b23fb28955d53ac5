import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import type { DappConfig } from './config.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const src = (path: string) => fileURLToPath(new URL(`../../src/${path}`, import.meta.url))

/**
 * Builds the page with Vite into `outDir`. `viem-mpp` resolves to this repository's source, as an
 * installed package would resolve to its build.
 */
export async function buildDapp(outDir: string) {
  await build({
    root: here,
    // Node built-ins reached through the localnet chain's module are never called in the page.
    logLevel: 'error',
    resolve: { alias: [{ find: /^viem-mpp$/, replacement: src('index.ts') }] },
    build: { outDir, emptyOutDir: true, target: 'es2022' },
  })
}

export type DappServer = {
  /** The page's URL (its origin: allow it in the paid endpoint's CORS). */
  url: string
  /** Chain RPC requests the page made through the proxy. */
  chainRequests: number
  stop(): Promise<void>
}

/**
 * Serves the built page from `dist` on loopback, with `/config.json` (what `config()` returns)
 * and `/chain`, a proxy to the chain's own RPC (which sends no CORS headers of its own).
 */
export async function serveDapp({
  dist,
  chainRpcUrl,
  config,
  port = 0,
}: {
  dist: string
  chainRpcUrl: string
  config: () => DappConfig
  port?: number | undefined
}): Promise<DappServer> {
  const types: Record<string, string> = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript',
    '.css': 'text/css',
    '.svg': 'image/svg+xml',
  }
  const state = { chainRequests: 0 }
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname
      if (path === '/config.json') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        return res.end(JSON.stringify(config()))
      }
      if (path === config().chainRpcPath && req.method === 'POST') {
        state.chainRequests++
        const chunks: Buffer[] = []
        for await (const chunk of req) chunks.push(chunk as Buffer)
        const answer = await fetch(chainRpcUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: Buffer.concat(chunks),
        })
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        return res.end(Buffer.from(await answer.arrayBuffer()))
      }
      const file = normalize(join(dist, path === '/' ? 'index.html' : path))
      if (!file.startsWith(normalize(dist))) return res.writeHead(404).end()
      const body = await readFile(file)
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' })
      res.end(body)
    } catch {
      if (!res.headersSent) res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const { port: bound } = server.address() as AddressInfo
  let stopping: Promise<void> | undefined
  return {
    url: `http://127.0.0.1:${bound}`,
    get chainRequests() {
      return state.chainRequests
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopping
    },
  }
}
