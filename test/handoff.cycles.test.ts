/** No import cycle anywhere under src/ (tools/import-cycles.ts), and the checker does find one when it is there. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { importCycles } from '../tools/import-cycles.ts'
import { root } from './fixtures/handoff-harness.ts'

test('src/ has no import cycle, type-only imports included', () => {
  assert.deepEqual(importCycles(join(root, 'src')), [])
})

test('the checker finds a cycle through a type-only import', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-cycles-'))
  try {
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.ts'\nexport const a = b\n")
    writeFileSync(join(dir, 'b.ts'), "import type {\n  A,\n} from './a.ts'\nexport const b = 1\nexport type B = A\n")
    const cycles = importCycles(dir)
    assert.equal(cycles.length, 1)
    assert.match(cycles[0].join(' -> '), /a\.ts -> .*b\.ts -> .*a\.ts$/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
