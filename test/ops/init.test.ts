/**
 * `zbk init` never loses what is configured or stored by accident: an
 * existing config is refused (also with --connect, which would drop its
 * datasets, hooks and retention), --connect to a store without a repository
 * creates nothing, and --force over a repository keeps its key file aside.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runZbk } from '../helpers/cli.js';

interface JsonError {
  error: { code: string; exitCode: number };
}

test('init: an existing config or repository is never replaced by accident; --connect needs a repository', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'correct horse battery staple\n', { mode: 0o600 });
  const config = join(dir, 'config.toml');
  const store = join(dir, 'store');
  const env = { ZBK_CONFIG: config, ZBK_PASSPHRASE_FILE: pass };
  const init = (extra: string[], storeDir = store) =>
    runZbk(['init', '--store', `file://${storeDir}`, '--state-dir', join(dir, 'state'), '--kdf', 'min', '--json', ...extra], env);
  const errorOf = (r: { stdout: string }): JsonError['error'] => (JSON.parse(r.stdout) as JsonError).error;

  let r = await init(['--dataset', 'tank/photos']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((JSON.parse(r.stdout) as { warnings: string[] }).warnings.some((w) => /--kdf min .* meant for tests/.test(w)), 'the test-only KDF is called out');
  const keyId = (JSON.parse(r.stdout) as { keyId: string }).keyId;
  const configText = readFileSync(config, 'utf8');
  const keyFile = readFileSync(join(store, 'zbk.key'));

  // Again, and with --connect: refused, the config (its datasets) unchanged.
  for (const extra of [[], ['--connect']]) {
    r = await init(extra);
    assert.equal(r.code, 3, `init ${extra.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.equal(errorOf(r).code, 'CONFIG_EXISTS');
    assert.equal(readFileSync(config, 'utf8'), configText);
  }

  // --connect to a store that holds no repository (a typo in the path): nothing is created.
  const empty = join(dir, 'empty-store');
  r = await init(['--connect', '--force'], empty);
  assert.equal(r.code, 3, r.stdout);
  assert.equal(errorOf(r).code, 'NO_REPOSITORY');
  assert.equal(existsSync(join(empty, 'zbk.key')), false);
  assert.equal(readFileSync(config, 'utf8'), configText);

  // --connect --force replaces the config and keeps the repository.
  r = await init(['--connect', '--force', '--dataset', 'tank/photos']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { keyId: string }).keyId, keyId);
  assert.deepEqual(readFileSync(join(store, 'zbk.key')), keyFile);

  // --force alone starts a new repository; the old key file is kept aside, byte for byte.
  r = await init(['--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual((JSON.parse(r.stdout) as { keyId: string }).keyId, keyId);
  const aside = readdirSync(store).filter((f) => f.startsWith('zbk.key.replaced-') && !f.endsWith('.zbk-meta.json'));
  assert.equal(aside.length, 1);
  assert.deepEqual(readFileSync(join(store, aside[0]!)), keyFile);
});

test('init: a passphrase file with a too short passphrase is refused before anything is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'short\n', { mode: 0o600 });
  const store = join(dir, 'store');
  const r = await runZbk(['init', '--store', `file://${store}`, '--state-dir', join(dir, 'state'), '--kdf', 'min', '--json'], { ZBK_CONFIG: join(dir, 'config.toml'), ZBK_PASSPHRASE_FILE: pass });
  assert.equal(r.code, 2, r.stdout);
  assert.equal((JSON.parse(r.stdout) as JsonError).error.code, 'WEAK_PASSPHRASE');
  assert.equal(existsSync(join(store, 'zbk.key')), false);
  assert.equal(existsSync(join(dir, 'config.toml')), false);
});
