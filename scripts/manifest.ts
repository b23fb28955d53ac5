/**
 * The package.json that is published: what a consumer's npm reads, without what only this
 * repository needs (its scripts — `prepack` among them, which npm would list as an install script
 * —, its devDependencies, and the `overrides` that pin mppx for this repository's own install).
 *
 *   tsx scripts/manifest.ts pack      # npm's prepack: keeps package.json aside, writes the clean one
 *   tsx scripts/manifest.ts restore   # npm's postpack: puts package.json back
 *
 * A pack that failed between the two leaves the kept copy: the next `pack` restores it first.
 */
import { existsSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const manifest = fileURLToPath(new URL('../package.json', import.meta.url))
const kept = fileURLToPath(new URL('../.package.json.repository', import.meta.url))

/** The fields of package.json that stay in this repository. */
const repositoryOnly = ['scripts', 'devDependencies', 'overrides'] as const

function publishedManifest(repository: Record<string, unknown>) {
  const published = { ...repository }
  for (const field of repositoryOnly) delete published[field]
  return published
}

async function restore() {
  if (existsSync(kept)) await rename(kept, manifest)
}

const [command] = process.argv.slice(2)
if (command === 'pack') {
  await restore()
  const repository = JSON.parse(await readFile(manifest, 'utf8')) as Record<string, unknown>
  await writeFile(kept, `${JSON.stringify(repository, null, 2)}\n`)
  await writeFile(manifest, `${JSON.stringify(publishedManifest(repository), null, 2)}\n`)
} else if (command === 'restore') await restore()
else if (command !== undefined) {
  console.error(`scripts/manifest.ts: unknown command ${command} (pack or restore)`)
  process.exit(64)
}
