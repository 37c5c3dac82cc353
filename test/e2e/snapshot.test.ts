/**
 * `zbk snapshot` through the CLI on real ZFS (zfs-fuse) and real btrfs: it
 * takes a read-only snapshot with a zbk name on each source, the next
 * `zbk push` sends exactly that snapshot, a name that is taken is refused
 * (exit 2) without changing anything, a btrfs path that is not a subvolume
 * is refused (exit 2), and one dataset that fails does not keep another
 * from being snapshotted.
 */
import assert from 'node:assert/strict';
import { mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { jsonOf, runZbk } from '../helpers/cli.js';
import { createTestBtrfs, requireBtrfs, type TestBtrfs } from '../helpers/btrfs.js';
import { createTestPool, requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { createTestRepo, type TestRepo } from '../helpers/repo.js';
import type { PushResult } from '../../src/services/push.js';
import type { SnapshotResult } from '../../src/services/snapshot.js';

/** The instant the snapshot runs see (ZBK_NOW, the test clock of src/services/consolidate/clock.ts). */
const NOW = '2025-01-02T03:04:05.678Z';
const NAME = 'zbk-20250102T030405Z';

async function repoFor(t: TestContext, datasets: string[]): Promise<TestRepo> {
  const repo = await createTestRepo({ datasets });
  t.after(() => repo.cleanup());
  return repo;
}

function snapshotAt(repo: TestRepo, args: string[]): ReturnType<typeof runZbk> {
  return runZbk(['snapshot', ...args], { ...repo.env, ZBK_NOW: NOW });
}

/** Every subvolume of the filesystem, by path: what a refused command must leave as it was. */
async function subvolumes(fs: TestBtrfs): Promise<string[]> {
  return (await fs.btrfs.list(fs.mountpoint)).map((e) => `${e.path} ${e.uuid}`).sort();
}

test('zfs: zbk snapshot takes pool/ds@zbk-<UTC time>, and the next push sends it', async (t) => {
  if (!requireZfs(t)) return;
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  const mnt = (await pool.zfs.mountpoint(ds))!;
  writeRandomFiles(mnt, { files: 2, bytesEach: 256 * 1024, seed: 'zfs-snap' });
  const repo = await repoFor(t, [ds]);

  // No argument: every configured dataset.
  let r = await snapshotAt(repo, ['--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(jsonOf<SnapshotResult>(r).snapshots, [{ dataset: ds, name: NAME, ref: `${ds}@${NAME}` }]);
  assert.deepEqual((await pool.zfs.listSnapshots(ds)).map((s) => s.shortName), [NAME]);

  r = await repo.zbk(['push', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const pushed = jsonOf<PushResult>(r).results[0]!;
  assert.equal(pushed.kind, 'full');
  assert.equal(pushed.snapshot, NAME, 'push sends the snapshot zbk snapshot took');

  // The same name again (the same second, or --name): refused, nothing changed.
  const before = (await pool.zfs.listSnapshots(ds)).map((s) => `${s.shortName} ${s.guid}`);
  for (const args of [[], [ds, '--name', NAME]]) {
    r = await snapshotAt(repo, args);
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^zbk: ${ds} already has a snapshot ${ds}@${NAME}: choose another --name \\(nothing was changed\\)\\n$`));
  }
  r = await snapshotAt(repo, [ds, '--name', 'bad/name']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^zbk: invalid snapshot name "bad\/name"/);
  assert.deepEqual((await pool.zfs.listSnapshots(ds)).map((s) => `${s.shortName} ${s.guid}`), before);

  // --name, human output; then the incremental push sends it.
  writeFileSync(join(mnt, 'more.txt'), 'more\n');
  r = await repo.zbk(['snapshot', ds, '--name', 'manual-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `snapshot ${ds}: ${ds}@manual-1\n`);
  r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const second = jsonOf<PushResult>(r).results[0]!;
  assert.equal(second.kind, 'incremental');
  assert.equal(second.snapshot, 'manual-1');
  assert.equal(second.base, NAME);

  // A dataset that is neither configured nor in ZFS is a typo.
  r = await repo.zbk(['snapshot', `${pool.name}/nope`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /does not exist and is not configured/);
});

test('btrfs: zbk snapshot takes <mount>/.zbk/<uuid>/snapshots/zbk-<UTC time>, listed as the dataset\'s snapshot, and the next push sends it', async (t) => {
  if (!requireBtrfs(t)) return;
  const fs = createTestBtrfs(t);
  const ds = fs.subvolume('photos');
  writeRandomFiles(ds, { files: 2, bytesEach: 256 * 1024, seed: 'btrfs-snap' });
  const uuid = (await fs.btrfs.show(ds)).uuid;
  const repo = await repoFor(t, [ds]);
  const rel = `.zbk/${uuid}/snapshots/${NAME}`;
  const ref = `${fs.mountpoint}/${rel}`;

  let r = await snapshotAt(repo, ['--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(jsonOf<SnapshotResult>(r), { snapshots: [{ dataset: ds, name: rel, ref }], failed: [] });
  const info = await fs.btrfs.show(ref);
  assert.equal(info.readOnly, true);
  assert.equal(info.parentUuid, uuid, "a snapshot of the dataset: its parent UUID is the dataset's");
  assert.equal((await fs.btrfs.show(`${fs.mountpoint}/.zbk`)).parentUuid, null, '.zbk is a subvolume of its own');
  for (const dir of ['.zbk', `.zbk/${uuid}`, `.zbk/${uuid}/snapshots`]) {
    assert.equal(statSync(join(fs.mountpoint, dir)).mode & 0o777, 0o700, `${dir} is 0700`);
  }
  assert.deepEqual((await fs.btrfs.listSnapshots(ds)).map((s) => [s.name, s.ref]), [[rel, ref]]);

  r = await repo.zbk(['push', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const pushed = jsonOf<PushResult>(r).results[0]!;
  assert.equal(pushed.kind, 'full');
  assert.equal(pushed.snapshot, rel, 'push sends the snapshot zbk snapshot took');
  // zbk's pin of it (a snapshot of the snapshot) is not one of the dataset's snapshots.
  assert.equal((await fs.btrfs.listPins(ds)).length, 1);
  assert.deepEqual((await fs.btrfs.listSnapshots(ds)).map((s) => s.name), [rel]);

  // A taken name: refused, nothing changed.
  const before = await subvolumes(fs);
  r = await snapshotAt(repo, [ds, '--name', NAME]);
  assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
  assert.equal(r.stderr, `zbk: ${ds} already has a snapshot ${ref}: choose another --name (nothing was changed)\n`);
  r = await snapshotAt(repo, [ds, '--name', '-x']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^zbk: invalid snapshot name "-x": must not start with "-"/);
  assert.deepEqual(await subvolumes(fs), before);

  // --name, human output; then the incremental push sends it.
  writeFileSync(join(ds, 'more.txt'), 'more\n');
  r = await repo.zbk(['snapshot', ds, '--name', 'manual-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `snapshot ${ds}: ${fs.mountpoint}/.zbk/${uuid}/snapshots/manual-1\n`);
  r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const second = jsonOf<PushResult>(r).results[0]!;
  assert.equal(second.kind, 'incremental');
  assert.equal(second.snapshot, `.zbk/${uuid}/snapshots/manual-1`);
  assert.equal(second.base, rel);
});

test('btrfs: a directory that is not a subvolume, or a symlink to one, is refused (exit 2) and nothing is created', async (t) => {
  if (!requireBtrfs(t)) return;
  const fs = createTestBtrfs(t);
  const ds = fs.subvolume('photos');
  const plain = join(fs.mountpoint, 'plain');
  mkdirSync(plain);
  const link = join(fs.mountpoint, 'link');
  symlinkSync(ds, link);
  const repo = await repoFor(t, [ds]);
  const before = await subvolumes(fs);

  let r = await repo.zbk(['snapshot', plain]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^zbk: ${plain} is not a btrfs dataset: `));
  r = await repo.zbk(['snapshot', link, '--json']);
  assert.equal(r.code, 2, r.stdout);
  assert.equal(jsonOf<{ error: { code: string } }>(r).error.code, 'DATASET_SYMLINK');
  r = await repo.zbk(['snapshot', join(fs.mountpoint, 'nope')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /does not exist and is not configured/);
  assert.deepEqual(await subvolumes(fs), before);
  assert.throws(() => statSync(join(fs.mountpoint, '.zbk')), /ENOENT/);
});

test('one dataset that fails does not keep the others from being snapshotted; the exit code is the failure\'s', async (t) => {
  if (!requireZfs(t) || !requireBtrfs(t)) return;
  const pool = await createTestPool({ sizeMiB: 128 });
  t.after(() => pool.destroy());
  const zds = `${pool.name}/data`;
  await pool.zfs.createDataset(zds);
  const fs = createTestBtrfs(t);
  const bds = fs.subvolume('data');
  const plain = join(fs.mountpoint, 'plain');
  mkdirSync(plain);
  const repo = await repoFor(t, [plain, zds, bds]);

  const r = await snapshotAt(repo, ['--json']);
  assert.equal(r.code, 2, r.stdout);
  const out = jsonOf<SnapshotResult>(r);
  const uuid = (await fs.btrfs.show(bds)).uuid;
  assert.deepEqual(out.snapshots, [
    { dataset: zds, name: NAME, ref: `${zds}@${NAME}` },
    { dataset: bds, name: `.zbk/${uuid}/snapshots/${NAME}`, ref: `${fs.mountpoint}/.zbk/${uuid}/snapshots/${NAME}` },
  ]);
  assert.deepEqual(
    out.failed.map((f) => [f.dataset, f.code, f.exitCode]),
    [[plain, 'NOT_SUBVOLUME', 2]],
  );
  assert.deepEqual((await pool.zfs.listSnapshots(zds)).map((s) => s.shortName), [NAME]);
  assert.deepEqual((await fs.btrfs.listSnapshots(bds)).map((s) => s.name), [`.zbk/${uuid}/snapshots/${NAME}`]);

  // Without --json: a line per snapshot on stdout, the failure on stderr.
  const h = await repo.zbk(['snapshot', plain, zds, '--name', 'h1']);
  assert.equal(h.code, 2, h.stderr);
  assert.equal(h.stdout, `snapshot ${zds}: ${zds}@h1\n`);
  assert.match(h.stderr, new RegExp(`^zbk: snapshot of ${plain} failed: ${plain} is not a btrfs dataset: `));
});
