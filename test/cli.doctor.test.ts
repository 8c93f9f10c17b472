/** `pagegift doctor` through the real bin script. */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { fixtures } from './helpers.ts'

const bin = join(fixtures, '..', '..', 'bin', 'pagegift.js')

test('doctor reports every check and the path a same-user gift takes', () => {
  const out = execFileSync(process.execPath, [bin, 'doctor'], { encoding: 'utf8', timeout: 60_000 })
  for (const name of ['kernel', 'page size', 'memfd + seals', 'process_vm_readv', 'vmsplice', 'THP for shmem']) assert.match(out, new RegExp(`\\b${name.replace('+', '\\+')}\\b`))
  assert.match(out, /takes: move \(zero copies\)/)
})

test('doctor --json follows PAGEGIFT_DISABLE down the ladder', () => {
  const run = (disable: string): { path: string } => JSON.parse(execFileSync(process.execPath, [bin, 'doctor', '--json'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PAGEGIFT_DISABLE: disable } }))
  assert.equal(run('move').path, 'cma')
  assert.equal(run('move,cma').path, 'splice')
  assert.equal(run('move,cma,splice').path, 'copy')
})

test('unknown commands and arguments exit non-zero with usage', () => {
  const a = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(a.status, 2)
  assert.match(a.stderr, /unknown command 'frobnicate'/)
  const b = spawnSync(process.execPath, [bin, 'doctor', '--nope'], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(b.status, 2)
  assert.match(b.stderr, /usage: pagegift doctor/)
})
