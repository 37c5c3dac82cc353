/**
 * The manifest, its WAL and shared memory, and its lock are 0600 whatever
 * the umask: under umask 022 SQLite would create them 0644 (readable by
 * every user: the manifest names datasets, snapshots and object keys).
 * A manifest an older zbk left 0644 is narrowed when it is opened.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Manifest } from '../../src/manifest/manifest.js';
import { acquireLock, lockPathFor } from '../../src/manifest/lock.js';

const modeOf = (p: string): string => (statSync(p).mode & 0o777).toString(8);

test('manifest files: database, -wal, -shm and lock are created 0600 under umask 022', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-modes-'));
  const oldUmask = process.umask(0o022);
  t.after(() => {
    process.umask(oldUmask);
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'manifest.db');
  const lock = await acquireLock(path, { wait: false, command: 'test' });
  const m = Manifest.open(path);
  try {
    m.initRepository({ storeUrl: 'file:///x', keyId: 'k1' });
    m.setValue('test', 1);
    for (const p of [path, `${path}-wal`, `${path}-shm`, lockPathFor(path)]) {
      assert.ok(existsSync(p), `${p} exists while open`);
      assert.equal(modeOf(p), '600', p);
    }
  } finally {
    m.close();
    lock.release();
  }
});

test('manifest files: a manifest left 0644 (with its -wal and -shm) is narrowed to 0600 when opened', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-modes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'manifest.db');
  Manifest.open(path).close();
  chmodSync(path, 0o644);
  const m = Manifest.open(path);
  try {
    m.setValue('test', 1);
    for (const p of [path, `${path}-wal`, `${path}-shm`]) assert.equal(modeOf(p), '600', p);
  } finally {
    m.close();
  }
  // Read-only opens narrow it too.
  chmodSync(path, 0o644);
  Manifest.open(path, { readonly: true }).close();
  assert.equal(modeOf(path), '600');
});
