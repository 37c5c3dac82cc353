/**
 * What is particular to btrfs datasets, through the CLI on a real
 * loop-mounted btrfs: a path with white space, a symlink, a directory that
 * is not a subvolume and a path not on btrfs each get one clear line and
 * exit 2, with nothing pushed; the dataset's path never reaches the store
 * in plaintext; status, cost, verify and verify --deep work on it; a
 * restore refuses a target that is not on btrfs or already holds something
 * (without --force), and restores identically with it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { jsonOf } from '../helpers/cli.js';
import { createTestBtrfs, mountAgain, requireBtrfs } from '../helpers/btrfs.js';
import type { PushResult } from '../../src/services/push.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { createTestRepo } from '../helpers/repo.js';
import { scratchSource, sourceRepo } from './source-fixture.js';

function filesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...filesBelow(p));
    else out.push(p);
  }
  return out;
}

test('[btrfs] a path with white space, a symlink, a non-subvolume and a non-btrfs path: one line each, exit 2, nothing pushed', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'photos' });
  const { fs, repo } = src;
  mkdirSync(join(fs!.mountpoint, 'plain'));
  symlinkSync(src.ds, join(fs!.mountpoint, 'link'));
  const elsewhere = join(tmpdir(), `zbk-not-btrfs-${process.pid}`);
  mkdirSync(elsewhere, { recursive: true });
  t.after(() => rmSync(elsewhere, { recursive: true, force: true }));
  const cases: Array<[string, RegExp]> = [
    [join(fs!.mountpoint, 'my photos'), /white space/],
    [join(fs!.mountpoint, 'link'), /symlink/],
    [join(fs!.mountpoint, 'plain'), /not a btrfs dataset: .*subvolume/i],
    [elsewhere, /not a btrfs dataset: .*not on btrfs/],
  ];
  for (const [path, why] of cases) {
    const r = await repo.zbk(['push', path]);
    assert.equal(r.code, 2, `${path}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, why, path);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${path}: ${r.stderr}`);
  }
  // The same names in the config: refused by init (white space), or by push as a usage error.
  const bad = await repo.zbk(['init', '--config', join(repo.dir, 'other.toml'), '--store', `file://${join(repo.dir, 'other')}`, '--dataset', join(fs!.mountpoint, 'my photos'), '--kdf', 'min']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /white space/);
  assert.equal(filesBelow(join(repo.dir, 'store')).filter((f) => f.includes('/data/')).length, 0, 'nothing pushed');
});

test('[btrfs] the dataset path never reaches the store in plaintext; status, cost, verify and verify --deep work; restore targets are checked', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'family-photos-2024' });
  const { ds, mnt, repo, fs } = src;
  writeRandomFiles(mnt, { files: 3, bytesEach: 2 * 1024 * 1024, seed: 'b1' });
  await src.snapshot('monday');
  assert.equal((await repo.zbk(['push'])).code, 0);
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 1024 * 1024, seed: 'b2' });
  await src.snapshot('tuesday');
  const pushed = await repo.zbk(['push', '--json']);
  assert.equal(pushed.code, 0, pushed.stderr);

  for (const f of filesBelow(join(repo.dir, 'store'))) {
    const bytes = readFileSync(f);
    for (const secret of ['family-photos-2024', 'monday', 'tuesday', fs!.mountpoint]) {
      assert.equal(bytes.includes(Buffer.from(secret)), false, `${f} holds "${secret}" in plaintext`);
    }
  }

  for (const args of [['status', '--json'], ['cost', '--json'], ['verify', '--json'], ['verify', '--deep', '--json']]) {
    const r = await repo.zbk(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const deep = jsonOf<{ outcome: string; comparedWithLocal: boolean; filesCompared: number }>(await repo.zbk(['verify', '--deep', '--json']));
  assert.equal(deep.outcome, 'verified');
  assert.equal(deep.comparedWithLocal, true);
  assert.ok(deep.filesCompared >= 4, `compared ${deep.filesCompared} files`);

  assert.equal((await repo.zbk(['restore', 'plan', ds])).code, 0);
  const notBtrfs = join(tmpdir(), `zbk-restore-elsewhere-${process.pid}`);
  t.after(() => rmSync(notBtrfs, { recursive: true, force: true }));
  let r = await repo.zbk(['restore', 'run', ds, '--target', notBtrfs]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not on btrfs/);
  const occupied = join(fs!.mountpoint, 'occupied');
  mkdirSync(occupied);
  writeFileSync(join(occupied, 'keep.txt'), 'mine\n');
  r = await repo.zbk(['restore', 'run', ds, '--target', occupied]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /already holds keep\.txt/);
  r = await repo.zbk(['restore', 'run', ds, '--target', occupied, '--force', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(occupied, 'keep.txt'), 'utf8'), 'mine\n', '--force deletes nothing that was there');
  assert.deepEqual(await hashTree(join(occupied, 'tuesday')), await hashTree(mnt));
  assert.deepEqual(readdirSync(occupied).sort(), ['keep.txt', 'monday', 'tuesday']);
});

test('[btrfs] the dataset moved to a new filesystem (its counters start again): the next push is full and says why, later ones incremental, and "latest" is the new one', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'photos' });
  const { ds, mnt, repo, fs } = src;
  writeRandomFiles(mnt, { files: 2, bytesEach: 512 * 1024, seed: 'old' });
  // Many transactions on the old filesystem: its generations run ahead of a new one's.
  for (let i = 0; i < 12; i++) await src.snapshot(`old${i}`);
  assert.equal((await repo.zbk(['push'])).code, 0);

  // A new disk at the same path: a fresh filesystem, the same subvolume name, new files.
  const fresh = createTestBtrfs(t);
  spawnSync('umount', [fs!.mountpoint]);
  mountAgain(fresh, fs!.mountpoint, 'rw');
  spawnSync('btrfs', ['subvolume', 'create', ds]);
  mkdirSync(join(fs!.mountpoint, 'snaps'));
  writeRandomFiles(mnt, { files: 2, bytesEach: 512 * 1024, seed: 'new' });
  await src.snapshot('new1');
  let r = await repo.zbk(['push', '--json']);
  assert.equal(r.code, 0, r.stderr);
  let res = jsonOf<PushResult>(r).results[0]!;
  assert.equal(res.kind, 'full', `${res.kind}: ${res.reason}`);
  assert.match(res.reason ?? '', /pin of the last pushed snapshot .* no longer exists locally/);
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 256 * 1024, seed: 'new2' });
  await src.snapshot('new2');
  r = await repo.zbk(['push', '--json']);
  res = jsonOf<PushResult>(r).results[0]!;
  assert.equal(res.kind, 'incremental', `${res.kind}: ${res.reason}`);
  const status = jsonOf<{ datasets: { latestPushed: string | null }[] }>(await repo.zbk(['status', '--json']));
  assert.equal(status.datasets[0]!.latestPushed, src.snap('new2'));
  assert.deepEqual(await src.restoredTree(), await src.tree());
});

test('[btrfs] one configured dataset that is not there (its disk not mounted) fails, is recorded and alerted, and the others are still pushed', async (t) => {
  if (!requireBtrfs(t)) return;
  const scratch = await scratchSource(t, 'btrfs');
  const a = await scratch.dataset('a');
  const c = await scratch.dataset('c');
  const unmounted = join(scratch.fs!.mountpoint, 'b');
  mkdirSync(unmounted); // what a mount point looks like without its disk: a plain directory
  const repo = await createTestRepo({ datasets: [a.ds, unmounted, c.ds] });
  t.after(() => repo.cleanup());
  for (const d of [a, c]) {
    writeRandomFiles(d.mnt, { files: 1, bytesEach: 128 * 1024, seed: d.ds });
    await scratch.snapshot(d.ds, `${d.ds.endsWith('/a') ? 'a' : 'c'}1`);
  }
  const r = await repo.zbk(['push', '--json']);
  assert.equal(r.code, 1, r.stderr);
  const res = jsonOf<PushResult>(r);
  assert.deepEqual(res.results.map((x) => [x.dataset, x.kind]), [[a.ds, 'full'], [c.ds, 'full']]);
  assert.deepEqual(res.failed.map((f) => [f.dataset, f.code]), [[unmounted, 'DATASET_UNAVAILABLE']]);
  assert.match(res.failed[0]!.message, /is its filesystem mounted/);
  const check = await repo.zbk(['check']);
  assert.equal(check.code, 2, `CRITICAL: ${check.stdout}`);
  assert.match(check.stdout, new RegExp(unmounted.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
});
