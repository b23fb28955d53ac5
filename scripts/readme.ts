/**
 * The fenced code blocks of a markdown file (the README), with the `<!-- check: … -->` marker
 * that may stand on the line just before a block's opening fence. Markers name what a block is
 * to the checks that read it:
 *
 * - `<!-- check: install -->` before a `sh` block: the install commands, which
 *   `scripts/consumer-check.ts` runs in a fresh project;
 * - `<!-- check: quickstart -->` before a `ts` block: the quick start, which it type-checks and
 *   runs there;
 * - `<!-- check: output -->` before a `text` block: what the quick start prints, exactly.
 *
 * Every `ts` block, marked or not, is type-checked by `scripts/snippets.ts`.
 */

export type Block = {
  /** The fence's info string's first word (`ts`, `sh`, …), lower-cased; `''` for none. */
  lang: string
  /** The block's content, without its fences, ending in a newline. */
  code: string
  /** Line number (1-based) of the block's first content line in the markdown file. */
  line: number
  /** The name of the `<!-- check: name -->` marker on the line before the fence, if any. */
  marker: string | undefined
}

const fence = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/
const markerLine = /^\s*<!--\s*check:\s*([\w-]+)\s*-->\s*$/

/** The fenced code blocks of `markdown`, in order. */
export function readmeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let index = 0; index < lines.length; index++) {
    const open = fence.exec(lines[index] ?? '')
    if (!open) continue
    const [, indent = '', marks = '', info = ''] = open
    const start = index + 1
    let end = start
    // A block ends at a fence of the same kind at least as long, or at the end of the file.
    while (end < lines.length && !isClosing(lines[end] ?? '', marks)) end++
    const content = lines.slice(start, end).map((line) => stripIndent(line, indent.length))
    blocks.push({
      lang: info.toLowerCase(),
      code: content.length ? `${content.join('\n')}\n` : '',
      line: start + 1,
      marker: markerLine.exec(lines[index - 1] ?? '')?.[1],
    })
    index = end
  }
  return blocks
}

/**
 * The one block that carries `marker`. Throws when there is none, or more than one: a check
 * that silently read nothing would pass.
 */
export function markedBlock(blocks: readonly Block[], marker: string, lang: string): Block {
  const found = blocks.filter((block) => block.marker === marker)
  const [block] = found
  if (found.length !== 1 || !block)
    throw new Error(
      `README.md must have exactly one \`<!-- check: ${marker} -->\` block (found ${found.length}).`,
    )
  if (block.lang !== lang)
    throw new Error(
      `The \`<!-- check: ${marker} -->\` block (line ${block.line}) must be a \`${lang}\` block, not \`${block.lang}\`.`,
    )
  return block
}

/** The commands of a `sh` block: its lines, less comments (`#` to the end) and blank lines. */
export function commandsOf(block: Block): string[] {
  return block.code
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean)
}

function isClosing(line: string, marks: string) {
  const trimmed = line.trim()
  return trimmed.startsWith(marks) && /^(`+|~+)$/.test(trimmed) && trimmed[0] === marks[0]
}

function stripIndent(line: string, width: number) {
  let cut = 0
  while (cut < width && line[cut] === ' ') cut++
  return line.slice(cut)
}
