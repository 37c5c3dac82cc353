import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPassphraseFile } from '../../src/services/passphrase.js';

test('a passphrase file: its first line, without line ending or an editor\'s byte-order mark', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-pass-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  assert.equal(readPassphraseFile(file('plain', 'correct horse\n')), 'correct horse');
  assert.equal(readPassphraseFile(file('crlf', 'correct horse\r\nsecond line\r\n')), 'correct horse');
  assert.equal(readPassphraseFile(file('bom', '\uFEFFcorrect horse\n')), 'correct horse');
  assert.equal(readPassphraseFile(file('inner', 'a\uFEFFb\n')), 'a\uFEFFb', 'only a leading mark is dropped');
  assert.throws(() => readPassphraseFile(file('empty', '\n')), /empty/);
});
