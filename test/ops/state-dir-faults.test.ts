/**
 * A state directory that turned read-only or filled up under an existing
 * repository: one line naming the path and the cause, exit 3 (not SQLite's
 * "unable to open database file" / "database or disk is full", exit 1);
 * and `zbk doctor` warns when the restore staging directory has no room
 * for a volume.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { ZbkError } from '../../src/errors.js';
import { createContext, openManifest } from '../../src/services/context.js';
import { doctor } from '../../src/services/doctor.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { createRepo } from './helpers.js';
import { mountTmpfs, requireRoot, scratchDir } from './state-fs.js';

interface JsonError {
  error: { code: string; message: string; exitCode: number };
}

/** A repository whose state dir is a tmpfs of `size` under a scratch dir. */
async function repoOnTmpfs(t: Parameters<typeof scratchDir>[0], size: string) {
  const dir = scratchDir(t, 'zbk-state-faults-');
  const state = mountTmpfs(join(dir, 'state'), `size=${size}`);
  const repo = await createRepo({ init: false });
  t.after(() => repo.cleanup());
  const r = await repo.run(['init', '--store', `file://${repo.storeDir}`, '--state-dir', state.dir, '--kdf', 'min', '--part-size', '5MiB', '--volume-size', '5MiB']);
  assert.equal(r.code, 0, r.stderr);
  return { repo, state };
}

/** Fill the filesystem of `dir` until a write fails (ENOSPC). */
function fill(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
}

test('state dir read-only under an existing manifest: status fails with one line naming it and EROFS, exit 3', async (t) => {
  if (!requireRoot(t)) return;
  const { repo, state } = await repoOnTmpfs(t, '2m');
  state.remount('ro');
  const r = await repo.run(['status']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^zbk: cannot write ${join(state.dir, 'manifest.db')}: the state directory ${state.dir} is not writable \\(EROFS: read-only file system\\)`));
  const json = await repo.runJson<JsonError>(['status']);
  assert.equal(json.json.error.code, 'STATE_DIR_READ_ONLY');
});

test('state dir read-only: commands that take the manifest lock first (consolidate --apply, manifest rebuild) fail with the same one line, exit 3', async (t) => {
  if (!requireRoot(t)) return;
  const { repo, state } = await repoOnTmpfs(t, '2m');
  state.remount('ro');
  for (const args of [['consolidate', '--apply'], ['manifest', 'rebuild', '--force']]) {
    const r = await repo.runJson<JsonError>(args);
    assert.equal(r.code, 3, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'STATE_DIR_READ_ONLY', `${args.join(' ')}: ${r.json.error.message}`);
    assert.match(r.json.error.message, new RegExp(`the state directory ${state.dir} is not writable \\(EROFS`));
  }
});

test('state dir full while the manifest is written: STATE_DIR_FULL naming the path, exit 3', async (t) => {
  if (!requireRoot(t)) return;
  const { repo, state } = await repoOnTmpfs(t, '2m');
  const ctx = createContext(loadConfig(repo.configPath), passphraseSource(repo.passphraseFile));
  const m = openManifest(ctx, null);
  try {
    fill(state.dir);
    assert.throws(
      () => m.setValue('big', 'x'.repeat(256 * 1024)),
      (e: unknown) =>
        e instanceof ZbkError &&
        e.code === 'STATE_DIR_FULL' &&
        e.exitCode === 3 &&
        e.message.includes(join(state.dir, 'manifest.db')) &&
        /is full \((ENOSPC|SQLITE_FULL)/.test(e.message),
    );
    assert.equal(m.repository()?.storeUrl, `file://${repo.storeDir}`, 'reads still work');
  } finally {
    m.close();
  }
});

test('doctor: "restore staging space" warns when the staging directory cannot hold a volume', async (t) => {
  if (!requireRoot(t)) return;
  const dir = scratchDir(t, 'zbk-staging-');
  const small = mountTmpfs(join(dir, 'small'), 'size=1m').dir;
  const repo = await createRepo();
  t.after(() => repo.cleanup());
  const config = loadConfig(repo.configPath);
  const rowOf = async (stagingDir: string) => {
    const ctx = createContext({ ...config, restore: { ...config.restore, stagingDir } }, passphraseSource(repo.passphraseFile));
    const row = (await doctor(ctx)).checks.find((c) => c.name === 'restore staging space');
    assert.ok(row, 'doctor has a restore staging space row');
    return row;
  };
  // 1 MB free, volumes of 5 MiB: a warning naming both and the fix.
  const warned = await rowOf(join(small, 'restore'));
  assert.equal(warned.status, 'warn', warned.detail);
  assert.match(warned.detail, new RegExp(`free in ${join(small, 'restore')} \\(on the filesystem of ${small}\\); a restore stages whole volumes there and needs at least 5\\.\\d+ MB`));
  assert.match(warned.fix ?? '', /staging_dir/);
  // The default staging directory (on the temp dir's filesystem) has room.
  const ok = await rowOf(config.restore.stagingDir);
  assert.equal(ok.status, 'ok', ok.detail);
});
