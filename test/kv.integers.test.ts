/** Arguments read as integers follow Redis's string2ll: no '+', spaces or leading zeros, 64-bit range. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseInteger } from '../src/kv/commands/context.ts'

const parse = (text: string): bigint | null => { const b = Buffer.from(text, 'latin1'); return parseInteger(b, 0, b.length) }

test('parseInteger accepts what Redis accepts, at every length, and nothing else', () => {
  const good: Array<[string, bigint]> = [['0', 0n], ['7', 7n], ['-7', -7n], ['123456789012345', 123456789012345n], ['-123456789012345', -123456789012345n],
    ['1234567890123456', 1234567890123456n], ['9007199254740993', 9007199254740993n], ['9223372036854775807', 9223372036854775807n], ['-9223372036854775808', -9223372036854775808n]]
  for (const [text, want] of good) assert.equal(parse(text), want, text)
  for (const text of ['', '-', '+1', ' 1', '1 ', '01', '-0', '-01', '1.0', '1e3', 'x', '12345678901234x', '000000000000000001', '9223372036854775808', '-9223372036854775809', '123456789012345678901']) {
    assert.equal(parse(text), null, JSON.stringify(text))
  }
})
