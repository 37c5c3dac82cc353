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
import { test, type TestContext } from 'node:test';
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
  const env = { ZBK_CONFIG: config, ZBK_PASSPHRASE_FILE: pass, ZBK_TEST_ALLOW_WEAK_KDF: '1' };
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
  const r = await runZbk(['init', '--store', `file://${store}`, '--state-dir', join(dir, 'state'), '--kdf', 'min', '--json'], { ZBK_CONFIG: join(dir, 'config.toml'), ZBK_PASSPHRASE_FILE: pass, ZBK_TEST_ALLOW_WEAK_KDF: '1' });
  assert.equal(r.code, 2, r.stdout);
  assert.equal((JSON.parse(r.stdout) as JsonError).error.code, 'WEAK_PASSPHRASE');
  assert.equal(existsSync(join(store, 'zbk.key')), false);
  assert.equal(existsSync(join(dir, 'config.toml')), false);
});

/** A temp dir (removed after the test) with a passphrase file holding `passphrase`, and where the store goes. */
function scratch(t: TestContext, passphrase: string): { dir: string; pass: string; store: string } {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, `${passphrase}\n`, { mode: 0o600 });
  return { dir, pass, store: join(dir, 'store') };
}

test('init: --kdf min is refused (exit 2, WEAK_KDF) unless ZBK_TEST_ALLOW_WEAK_KDF=1, before anything is written', async (t) => {
  const { dir, pass, store } = scratch(t, 'correct horse battery staple');
  const args = ['init', '--store', `file://${store}`, '--state-dir', join(dir, 'state'), '--kdf', 'min', '--json'];
  for (const allow of [undefined, '0', 'yes']) {
    const env: Record<string, string> = { ZBK_CONFIG: join(dir, 'config.toml'), ZBK_PASSPHRASE_FILE: pass };
    if (allow !== undefined) env.ZBK_TEST_ALLOW_WEAK_KDF = allow;
    const r = await runZbk(args, env);
    assert.equal(r.code, 2, `ZBK_TEST_ALLOW_WEAK_KDF=${allow}: ${r.stdout} ${r.stderr}`);
    const e = (JSON.parse(r.stdout) as JsonError).error as JsonError['error'] & { message: string };
    assert.equal(e.code, 'WEAK_KDF');
    assert.match(e.message, /--kdf min is for tests only.*ZBK_TEST_ALLOW_WEAK_KDF=1/);
    assert.equal(existsSync(join(store, 'zbk.key')), false);
    assert.equal(existsSync(join(dir, 'config.toml')), false);
  }
  const ok = await runZbk(args, { ZBK_CONFIG: join(dir, 'config.toml'), ZBK_PASSPHRASE_FILE: pass, ZBK_TEST_ALLOW_WEAK_KDF: '1' });
  assert.equal(ok.code, 0, ok.stderr);
});

test('init: a weak passphrase (by the zxcvbn-ts estimate, not its length) is refused with the estimator\'s warning, never the passphrase; --allow-weak-passphrase accepts it with a warning', async (t) => {
  const { dir, pass, store } = scratch(t, 'placeholder');
  const env = { ZBK_CONFIG: join(dir, 'config.toml'), ZBK_PASSPHRASE_FILE: pass, ZBK_TEST_ALLOW_WEAK_KDF: '1' };
  const init = (extra: string[] = []) => runZbk(['init', '--store', `file://${store}`, '--state-dir', join(dir, 'state'), '--kdf', 'min', '--json', ...extra], env);
  // Long enough for a length rule, and still among the most common passwords.
  for (const weak of ['password123456', 'qwertyuiop', 'Summer2024!']) {
    writeFileSync(env.ZBK_PASSPHRASE_FILE, `${weak}\n`, { mode: 0o600 });
    const r = await init();
    assert.equal(r.code, 2, `${weak}: ${r.stdout}`);
    const e = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, 'WEAK_PASSPHRASE');
    assert.match(e.message, /^the new passphrase is weak \(zxcvbn score [0-2] of 4, at least 3 needed: [A-Z][^)]+\): .*--allow-weak-passphrase$/);
    assert.ok(!r.stdout.includes(weak) && !r.stderr.includes(weak), 'the passphrase is never shown');
    assert.equal(existsSync(join(store, 'zbk.key')), false);
    assert.equal(existsSync(env.ZBK_CONFIG), false);
  }
  const r = await init(['--allow-weak-passphrase']);
  assert.equal(r.code, 0, r.stderr);
  const warnings = (JSON.parse(r.stdout) as { warnings: string[] }).warnings;
  assert.ok(warnings.some((w) => /passphrase is weak .*accepted because of --allow-weak-passphrase/.test(w)), warnings.join('\n'));
  assert.ok(!r.stdout.includes('Summer2024!') && !r.stderr.includes('Summer2024!'));
});
