/**
 * What `zbk key passwd` and `zbk key import` accept for a new slot: `--kdf
 * min` only with ZBK_TEST_ALLOW_WEAK_KDF=1 (WEAK_KDF, exit 2); a new
 * passphrase the zxcvbn-ts estimator scores below 3 only with
 * --allow-weak-passphrase (WEAK_PASSPHRASE, exit 2, the estimator's warning
 * named, never the passphrase). Refusals change nothing in the store.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KeyWriteResult } from '../../src/services/key.js';
import { createRepo, type TestRepo } from './helpers.js';

interface JsonError {
  error: { code: string; message: string; exitCode: number };
}

describe('new key slots: Argon2id cost and passphrase strength', () => {
  let repo: TestRepo;
  let paper: string;
  let strong: string;
  const keyFile = (): Buffer => readFileSync(join(repo.storeDir, 'zbk.key'));
  before(async () => {
    repo = await createRepo();
    const exp = await repo.run(['key', 'export']);
    assert.equal(exp.code, 0, exp.stderr);
    paper = join(repo.dir, 'paper.txt');
    writeFileSync(paper, exp.stdout, { mode: 0o600 });
    strong = join(repo.dir, 'strong');
    writeFileSync(strong, 'marble orchard beneath tin clouds 4\n', { mode: 0o600 });
  });
  after(() => repo.cleanup());

  it('--kdf min is refused by passwd and import without ZBK_TEST_ALLOW_WEAK_KDF=1', async () => {
    const before = keyFile();
    for (const args of [
      ['key', 'passwd', '--new-passphrase-file', strong, '--kdf', 'min'],
      ['key', 'import', '--file', paper, '--new-passphrase-file', strong, '--kdf', 'min'],
    ]) {
      const r = await repo.runJson<JsonError>(args, { ZBK_TEST_ALLOW_WEAK_KDF: '0' });
      assert.equal(r.code, 2, `${args.join(' ')}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'WEAK_KDF');
      assert.deepEqual(keyFile(), before);
    }
    // interactive is not a test-only cost.
    const ok = await repo.runJson<KeyWriteResult>(['key', 'import', '--file', paper, '--new-passphrase-file', strong, '--kdf', 'interactive'], { ZBK_TEST_ALLOW_WEAK_KDF: '0' });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('a weak new passphrase is refused by passwd and import (the warning named, the passphrase never); --allow-weak-passphrase accepts it', async () => {
    const weak = 'password123456';
    const weakFile = join(repo.dir, 'weak');
    writeFileSync(weakFile, `${weak}\n`, { mode: 0o600 });
    const before = keyFile();
    for (const args of [
      ['key', 'passwd', '--new-passphrase-file', weakFile, '--kdf', 'min'],
      ['key', 'import', '--file', paper, '--new-passphrase-file', weakFile, '--kdf', 'min'],
    ]) {
      const r = await repo.runJson<JsonError>(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'WEAK_PASSPHRASE');
      assert.match(r.json.error.message, /zxcvbn score [0-2] of 4.*similar to a commonly used password/);
      assert.ok(!JSON.stringify(r.json).includes(weak) && !r.stderr.includes(weak), 'the passphrase never appears');
      const human = await repo.run(args);
      assert.equal(human.code, 2);
      assert.ok(!human.stderr.includes(weak) && !human.stdout.includes(weak));
      assert.deepEqual(keyFile(), before, 'nothing written');
    }
    const r = await repo.runJson<KeyWriteResult>(['key', 'passwd', '--new-passphrase-file', weakFile, '--kdf', 'min', '--allow-weak-passphrase']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.json.warnings.some((w) => /passphrase is weak .*--allow-weak-passphrase/.test(w)), r.json.warnings.join('\n'));
    assert.ok(!r.stderr.includes(weak) && !JSON.stringify(r.json).includes(weak));
    // Opening with a weak passphrase is never checked: only new ones are.
    const opened = await repo.run(['verify'], { ZBK_PASSPHRASE_FILE: weakFile });
    assert.equal(opened.code, 0, opened.stderr);
  });
});
