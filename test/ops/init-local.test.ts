/**
 * `zbk init` checks everything local before it writes to the store: a
 * read-only or full state directory, a config that cannot be written, and
 * another repository's manifest in the state directory are each one line
 * naming the path (exit 3), with the store left untouched. Another
 * repository's manifest is never moved aside; this store's own is, by
 * `--force` only, as before.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { jsonOf, runZbk } from '../helpers/cli.js';
import { PASSPHRASE } from './helpers.js';
import { mountTmpfs, requireRoot, scratchDir } from './state-fs.js';

interface JsonError {
  error: { code: string; message: string; exitCode: number };
}

function scratch(t: TestContext): { dir: string; pass: string } {
  const dir = scratchDir(t, 'zbk-init-local-');
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  return { dir, pass };
}

function init(config: string, pass: string, store: string, stateDir: string, extra: string[] = []) {
  return runZbk(['init', '--store', `file://${store}`, '--state-dir', stateDir, '--kdf', 'min', '--json', ...extra], {
    ZBK_CONFIG: config,
    ZBK_PASSPHRASE_FILE: pass,
    ZBK_TEST_ALLOW_WEAK_KDF: '1',
  });
}

/** The store directory holds nothing (or does not exist). */
function assertUntouched(store: string): void {
  assert.deepEqual(existsSync(store) ? readdirSync(store) : [], [], `${store} is untouched`);
}

test('init: another repository in a shared state_dir is refused, never moved aside; its own manifest is replaced by --force only', async (t) => {
  const { dir, pass } = scratch(t);
  const state = join(dir, 'shared-state');
  const storeA = join(dir, 'store-a');
  const storeB = join(dir, 'store-b');
  let r = await init(join(dir, 'a.toml'), pass, storeA, state);
  assert.equal(r.code, 0, r.stderr);
  const manifest = join(state, 'manifest.db');
  const before = readFileSync(manifest);

  for (const extra of [[], ['--force']]) {
    r = await init(join(dir, 'b.toml'), pass, storeB, state, extra);
    assert.equal(r.code, 3, `init b ${extra.join(' ')}: ${r.stdout} ${r.stderr}`);
    const e = jsonOf<JsonError>(r).error;
    assert.equal(e.code, 'FOREIGN_MANIFEST');
    assert.ok(e.message.includes(manifest) && e.message.includes(`file://${storeA}`), e.message);
    assert.doesNotMatch(e.message, /\n/);
    assertUntouched(storeB);
    assert.equal(existsSync(join(dir, 'b.toml')), false, 'no config written');
    assert.deepEqual(readdirSync(state).filter((f) => f.includes('replaced')), [], 'nothing moved aside');
    assert.deepEqual(readFileSync(manifest), before);
  }

  // The same repository again without --force: refused, pointing at --force and --connect.
  rmSync(join(dir, 'a.toml'));
  rmSync(join(storeA, 'zbk.key'));
  r = await init(join(dir, 'a.toml'), pass, storeA, state);
  assert.equal(r.code, 3, r.stdout);
  assert.match(jsonOf<JsonError>(r).error.message, /earlier repository .* --force/);
  // With --force, a new repository: the old manifest is kept aside (with its WAL), as before.
  r = await init(join(dir, 'a.toml'), pass, storeA, state, ['--force']);
  assert.equal(r.code, 0, r.stdout);
  assert.equal(readdirSync(state).filter((f) => /^manifest\.db\.replaced-\d+$/.test(f)).length, 1);
});

test('init: a read-only state directory or config directory is refused before the store is touched', async (t) => {
  if (!requireRoot(t)) return;
  const { dir, pass } = scratch(t);
  const ro = mountTmpfs(join(dir, 'ro'), 'ro,size=1m').dir;
  const store = join(dir, 'store');

  let r = await init(join(dir, 'config.toml'), pass, store, join(ro, 'state'));
  assert.equal(r.code, 3, `${r.stdout} ${r.stderr}`);
  let e = jsonOf<JsonError>(r).error;
  assert.equal(e.code, 'STATE_DIR_READ_ONLY');
  assert.match(e.message, new RegExp(`${join(ro, 'state')}.*EROFS`));
  assertUntouched(store);
  assert.equal(existsSync(join(dir, 'config.toml')), false);

  r = await init(join(ro, 'config.toml'), pass, store, join(dir, 'state'));
  assert.equal(r.code, 3, `${r.stdout} ${r.stderr}`);
  e = jsonOf<JsonError>(r).error;
  assert.equal(e.code, 'CONFIG_NOT_WRITABLE');
  assert.match(e.message, new RegExp(`${join(ro, 'config.toml')}.*EROFS`));
  assertUntouched(store);

  // Human output: one line, the path and the cause.
  r = await runZbk(['init', '--store', `file://${store}`, '--state-dir', join(ro, 'state'), '--kdf', 'min'], {
    ZBK_CONFIG: join(dir, 'config.toml'),
    ZBK_PASSPHRASE_FILE: pass,
    ZBK_TEST_ALLOW_WEAK_KDF: '1',
  });
  assert.equal(r.code, 3);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^zbk: .*state.*not writable \(EROFS: read-only file system\)/);
});

test('init: a full state directory is refused before the store is touched', async (t) => {
  if (!requireRoot(t)) return;
  const { dir, pass } = scratch(t);
  const full = mountTmpfs(join(dir, 'full'), 'size=64k').dir;
  const store = join(dir, 'store');
  const r = await init(join(dir, 'config.toml'), pass, store, full);
  assert.equal(r.code, 3, `${r.stdout} ${r.stderr}`);
  const e = jsonOf<JsonError>(r).error;
  assert.equal(e.code, 'STATE_DIR_FULL');
  assert.ok(e.message.includes(full), e.message);
  assertUntouched(store);
  assert.deepEqual(readdirSync(full), [], 'nothing left in the state directory');
});
