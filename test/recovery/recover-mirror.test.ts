/**
 * zbk-recover.py's `manifest` command against a bucket someone else could
 * write to: it takes the newest mirror whose name matches the key and
 * sequence sealed inside it, so an old mirror copied under a newer name is
 * skipped (docs/FORMAT.md section 14).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createTestRepo } from '../helpers/repo.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dirname, '../../../recovery/zbk-recover.py');

test('zbk-recover.py manifest: the newest mirror by sealed sequence; a copy under a newer name is skipped', async (t) => {
  const nacl = spawnSync(PYTHON, ['-c', 'import nacl.bindings'], { encoding: 'utf8' });
  if (nacl.status !== 0) {
    if (process.env.CI) assert.fail(`${PYTHON} with PyNaCl is needed (apt-get install python3-nacl)`);
    t.skip('no PyNaCl');
    return;
  }
  const repo = await createTestRepo();
  t.after(() => repo.cleanup());
  const store = join(repo.dir, 'store');
  const manifestDir = join(store, 'manifest');
  const real = readdirSync(manifestDir).filter((n) => n.endsWith('.zbkm'));
  assert.equal(real.length, 1, real.join(', '));
  assert.match(real[0]!, /^s000000000001-/);
  // An attacker's replay: the same sealed bytes under a name claiming sequence 9.
  const replay = real[0]!.replace(/^s000000000001-/, 's000000000009-');
  copyFileSync(join(manifestDir, real[0]!), join(manifestDir, replay));

  const out = join(repo.dir, 'recovered.db');
  const r = spawnSync(PYTHON, [SCRIPT, store, 'manifest', out], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ZBK_PASSPHRASE_FILE: repo.env.ZBK_PASSPHRASE_FILE! } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^manifest/${real[0]!.replace(/[.]/g, '\\.')} -> `, 'm'), 'the genuine mirror, not the replay');
  assert.ok(existsSync(out) && !existsSync(`${out}.part`));
  const db = new Database(out, { readonly: true });
  try {
    assert.equal(JSON.parse((db.prepare("SELECT value FROM kv WHERE key = 'mirror.seq'").get() as { value: string }).value), 1);
  } finally {
    db.close();
  }
});
