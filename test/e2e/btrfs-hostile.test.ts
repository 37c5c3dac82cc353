/**
 * btrfs against a hostile or untidy filesystem, through the CLI on a real
 * loop-mounted btrfs: a directory name that forges a line of `btrfs
 * subvolume list` does not become a snapshot; a symlink planted where zbk
 * keeps its pins is neither followed nor deleted through, and a symlinked
 * `.zbk` stops the push; `restore --force` deletes nothing that was in the
 * target; two restores on one filesystem both finish (btrfs picks the older
 * copy as the parent: an earlier copy of zbk's user is accepted); a
 * snapshot name used twice over time restores under unique names.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsonOf } from '../helpers/cli.js';
import { requireBtrfs } from '../helpers/btrfs.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import type { PushResult } from '../../src/services/push.js';
import { sourceRepo, type SourceRepo } from './source-fixture.js';

function sh(args: string[]): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function uuidOf(path: string): string {
  return /^\s*UUID:\s+(\S+)$/m.exec(sh(['btrfs', 'subvolume', 'show', path]))![1]!;
}

async function push(src: SourceRepo): Promise<PushResult['results'][number]> {
  const r = await src.repo.zbk(['push', src.ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return jsonOf<PushResult>(r).results[0]!;
}

test('[btrfs] a directory name forging a "subvolume list" line does not make a snapshot of the dataset', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'data' });
  const mnt = src.fs!.mountpoint;
  writeRandomFiles(src.mnt, { files: 1, bytesEach: 256 * 1024, seed: 'f1' });
  await src.snapshot('s1');
  assert.equal((await push(src)).kind, 'full');

  // Somebody else's subvolume and a read-only snapshot of it at pub/fake; then a directory whose
  // name holds a line claiming pub/fake is a very new snapshot of the dataset.
  mkdirSync(join(mnt, 'pub'));
  sh(['btrfs', 'subvolume', 'create', join(mnt, 'other')]);
  writeFileSync(join(mnt, 'other', 'f'), 'planted\n');
  sh(['btrfs', 'subvolume', 'snapshot', '-r', join(mnt, 'other'), join(mnt, 'pub', 'fake')]);
  const forged = `x\nID 999 gen 10 cgen 99999 top level 5 otime 2030-01-01 00:00:00 parent_uuid ${uuidOf(src.ds)} received_uuid - uuid ${uuidOf(join(mnt, 'pub', 'fake'))} path pub`;
  mkdirSync(join(mnt, forged));
  sh(['btrfs', 'subvolume', 'snapshot', '-r', join(mnt, 'other'), join(mnt, forged, 'fake')]);
  assert.match(sh(['btrfs', 'subvolume', 'list', '-a', '-s', '-r', '-u', '-q', '-R', '-c', '-g', mnt]), /cgen 99999/, 'the list shows the forged line');

  const names = (await src.fs!.btrfs.listSnapshots(src.ds)).map((s) => s.name);
  assert.deepEqual(names, [src.snap('s1')]);
  const again = await push(src);
  assert.equal(again.kind, 'none', `pushed ${again.snapshot}`);
});

test('[btrfs] a symlink planted as a pin is not followed; a symlinked .zbk stops the push (exit 7) and deletes nothing', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'data' });
  const mnt = src.fs!.mountpoint;
  writeRandomFiles(src.mnt, { files: 1, bytesEach: 256 * 1024, seed: 'p1' });
  await src.snapshot('s1');
  await push(src);
  const [pin] = await src.fs!.btrfs.listPins(src.ds);
  assert.ok(pin);
  // A victim snapshot zbk must never delete, and a symlink to it in place of the pin.
  sh(['btrfs', 'subvolume', 'create', join(mnt, 'victim')]);
  writeFileSync(join(mnt, 'victim', 'keep'), 'mine\n');
  sh(['btrfs', 'subvolume', 'snapshot', '-r', join(mnt, 'victim'), join(mnt, 'victim-snap')]);
  sh(['btrfs', 'subvolume', 'delete', pin.ref]);
  symlinkSync(join(mnt, 'victim-snap'), pin.ref);
  writeRandomFiles(join(src.mnt, 'more'), { files: 1, bytesEach: 256 * 1024, seed: 'p2' });
  await src.snapshot('s2');
  const r = await push(src);
  assert.equal(r.kind, 'full', 'the base pin is gone: a full stream');
  assert.ok(existsSync(join(mnt, 'victim-snap', 'keep')), 'the symlink target survived');

  // .zbk itself a symlink to somebody else's directory: refused before anything is made there.
  const zbkDir = join(mnt, '.zbk');
  for (const p of await src.fs!.btrfs.listPins(src.ds)) sh(['btrfs', 'subvolume', 'delete', p.ref]);
  rmSync(pin.ref); // the planted symlink (unlinked, not followed)
  rmSync(join(zbkDir, readdirSync(zbkDir)[0]!), { recursive: true });
  sh(['btrfs', 'subvolume', 'delete', zbkDir]);
  mkdirSync(join(mnt, 'elsewhere'));
  symlinkSync(join(mnt, 'elsewhere'), zbkDir);
  await src.snapshot('s3');
  const bad = await src.repo.zbk(['push', src.ds]);
  assert.equal(bad.code, 7, bad.stderr);
  assert.match(bad.stderr, /\.zbk' is a symlink/);
  assert.deepEqual(readdirSync(join(mnt, 'elsewhere')), [], 'nothing was made through the symlink');
  assert.ok(existsSync(join(mnt, 'victim-snap', 'keep')));
});

test('[btrfs] restore --force deletes nothing that was in the target; a second restore on the same filesystem finishes too; a name used twice restores under unique names', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = await sourceRepo(t, 'btrfs', { name: 'data' });
  const mnt = src.fs!.mountpoint;
  writeRandomFiles(src.mnt, { files: 2, bytesEach: 512 * 1024, seed: 'r1' });
  await src.snapshot('latest');
  await push(src);
  // A rolling name: the snapshot is deleted and made again (a newer one, the same name).
  writeRandomFiles(join(src.mnt, 'more'), { files: 1, bytesEach: 512 * 1024, seed: 'r2' });
  await src.snapshot('daily-1');
  await push(src);
  sh(['btrfs', 'subvolume', 'delete', join(mnt, 'snaps', 'latest')]);
  writeFileSync(join(src.mnt, 'notes.txt'), 'third\n');
  await src.snapshot('latest');
  assert.equal((await push(src)).kind, 'incremental');

  // The user's own writable subvolume with a name like the ones zbk receives, in the target.
  const target = join(mnt, 'restored');
  mkdirSync(target);
  const theirs = join(target, 'base-12345678-1234-1234-1234-123456789abc');
  sh(['btrfs', 'subvolume', 'create', theirs]);
  writeFileSync(join(theirs, 'important.txt'), 'do not delete\n');
  assert.equal((await src.repo.zbk(['restore', 'plan', src.ds])).code, 0);
  let r = await src.repo.zbk(['restore', 'run', src.ds, '--target', target, '--force', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(theirs, 'important.txt'), 'utf8'), 'do not delete\n');
  const restored = readdirSync(target).filter((n) => n !== 'base-12345678-1234-1234-1234-123456789abc').sort();
  assert.equal(restored.length, 3, `three snapshots under unique names: ${restored.join(', ')}`);
  assert.ok(restored.every((n) => /^snaps_(latest|daily-1)-[0-9a-f]{8}$/.test(n)), restored.join(', '));
  const newest = restored.find((n) => readdirSync(join(target, n)).includes('notes.txt'))!;
  assert.deepEqual(await hashTree(join(target, newest)), await hashTree(src.mnt));

  // Again into another directory of the same filesystem: btrfs takes the first copy's snapshots
  // as the incrementals' parents; they are zbk's user's own read-only copies, so accepted.
  assert.equal((await src.repo.zbk(['restore', 'plan', src.ds, '--reset'])).code, 0);
  const second = join(mnt, 'restored-again');
  r = await src.repo.zbk(['restore', 'run', src.ds, '--target', second, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await hashTree(join(second, newest)), await hashTree(src.mnt));
});
