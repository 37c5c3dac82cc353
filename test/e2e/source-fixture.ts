/**
 * The end-to-end tests' snapshot source, parameterized: a scratch ZFS pool
 * (zfs-fuse, or OpenZFS in its lane) or a scratch loop-mounted btrfs, with
 * one dataset, the directory its files are written in, and a throwaway
 * repository that pushes it; all destroyed when the test ends. Tests written
 * against this run on every source in `sourcesUnderTest`.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createTestBtrfs, modesOf, requireBtrfs, type TestBtrfs } from '../helpers/btrfs.js';
import { createTestPool, requireZfs, zfsUnderTest, type TestPool } from '../helpers/pool.js';
import { createTestRepo, type TestRepo, type TestRepoOptions } from '../helpers/repo.js';
import { restoreLatestDirect, restoreLatestDirectBtrfs } from '../helpers/restore-direct.js';
import { hashTree } from '../helpers/tree-hash.js';
import { mountOf } from './fixture.js';

export type SourceUnderTest = 'zfs' | 'btrfs';

/** zfs-fuse lane: both sources; the OpenZFS lane: ZFS only (btrfs does not depend on the ZFS under test). */
export const sourcesUnderTest: SourceUnderTest[] = zfsUnderTest === 'openzfs' ? ['zfs'] : ['zfs', 'btrfs'];

/** What a file tree looks like for "restored identically": contents and symlink targets, and modes. */
export interface TreeFacts {
  files: Map<string, string>;
  modes: Map<string, string>;
}

export interface SourceRepo {
  kind: SourceUnderTest;
  /** The dataset as the config names it: `pool/name`, or the subvolume's absolute path. */
  ds: string;
  /** Where its files are written. */
  mnt: string;
  repo: TestRepo;
  pool: TestPool | null;
  fs: TestBtrfs | null;
  /** Take a read-only snapshot called `name` (btrfs: at `<mount>/snaps/<name>`). */
  snapshot(name: string): Promise<void>;
  /** The name zbk records and reports for snapshot `name` (btrfs: its path relative to the mount). */
  snap(name: string): string;
  /** Delete snapshot `name` as a snapshot pruner would (ZFS: zbk's base hold released first, as a user overriding zbk must). */
  prune(name: string): Promise<void>;
  /** Drop zbk's own protection of every snapshot too (ZFS bookmarks, btrfs pins): the next push has no base. */
  dropProtection(): Promise<void>;
  /** What zbk keeps to protect the base: ZFS bookmarks and held snapshots; btrfs pins (by the recorded snapshot name they stand for). */
  protection(): Promise<string[]>;
  /** The source's files now. */
  tree(): Promise<TreeFacts>;
  /** Restore the latest pushed snapshot straight from the store into a fresh target, and its files. */
  restoredTree(): Promise<TreeFacts>;
}

/** True when `kind` works here (under CI a missing system fails the test). */
export function requireSource(t: TestContext, kind: SourceUnderTest): boolean {
  return kind === 'btrfs' ? requireBtrfs(t) : requireZfs(t);
}

export async function facts(dir: string): Promise<TreeFacts> {
  return { files: await hashTree(dir), modes: modesOf(dir) };
}

let restores = 0;

/**
 * A scratch ZFS pool or btrfs filesystem, destroyed after the test, on which
 * datasets are made: what sourceRepo and the restore fixture build on.
 */
export interface ScratchSource {
  kind: SourceUnderTest;
  pool: TestPool | null;
  fs: TestBtrfs | null;
  /** A new dataset called `name`: its name for zbk, and where its files are written. */
  dataset(name: string): Promise<{ ds: string; mnt: string }>;
  /** Take a read-only snapshot of `ds` called `name` (btrfs: at `<mount>/snaps/<name>`). */
  snapshot(ds: string, name: string): Promise<void>;
  /** The name zbk records and reports for snapshot `name` (btrfs: its path relative to the mount). */
  snap(name: string): string;
  /** A restore target called `name` that does not exist yet (ZFS `pool/name`; btrfs a directory on the scratch filesystem). */
  target(name: string): string;
  /** Where `zbk restore run` into `target` put the files of the recorded snapshot `snap`. */
  restoredPath(target: string, snap: string): Promise<string>;
}

async function run(args: string[]): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
}

export async function scratchSource(t: TestContext, kind: SourceUnderTest, opts: { sizeMiB?: number } = {}): Promise<ScratchSource> {
  if (kind === 'btrfs') {
    const fs = createTestBtrfs(t, { sizeMiB: opts.sizeMiB ?? 512 });
    mkdirSync(join(fs.mountpoint, 'snaps'));
    return {
      kind,
      pool: null,
      fs,
      dataset: async (name) => {
        const ds = fs.subvolume(name);
        return { ds, mnt: ds };
      },
      snapshot: async (ds, n) => void fs.snapshot(ds, `snaps/${n}`),
      snap: (n) => `snaps/${n}`,
      target: (name) => join(fs.mountpoint, name),
      restoredPath: async (target, snap) => join(target, snap.slice(snap.lastIndexOf('/') + 1)),
    };
  }
  const pool = await createTestPool({ sizeMiB: opts.sizeMiB ?? 512 });
  t.after(() => pool.destroy());
  return {
    kind,
    pool,
    fs: null,
    dataset: async (name) => {
      const ds = `${pool.name}/${name}`;
      await pool.zfs.createDataset(ds);
      return { ds, mnt: await mountOf(pool, ds) };
    },
    snapshot: (ds, n) => pool.zfs.snapshot(`${ds}@${n}`),
    snap: (n) => n,
    target: (name) => `${pool.name}/${name}`,
    restoredPath: async (target) => pool.zfs.mount(target).catch(() => mountOf(pool, target)),
  };
}

export async function sourceRepo(
  t: TestContext,
  kind: SourceUnderTest,
  opts: { sizeMiB?: number; name?: string; repo?: Omit<TestRepoOptions, 'datasets'> } = {},
): Promise<SourceRepo> {
  const scratch = await scratchSource(t, kind, opts);
  const { ds, mnt } = await scratch.dataset(opts.name ?? 'data');
  const repo = await createTestRepo({ ...opts.repo, datasets: [ds] });
  t.after(() => repo.cleanup());
  const common = { kind, ds, mnt, repo, pool: scratch.pool, fs: scratch.fs, snapshot: (n: string) => scratch.snapshot(ds, n), snap: scratch.snap, tree: () => facts(mnt) };
  if (scratch.fs) {
    const fs = scratch.fs;
    const pins = () => fs.btrfs.listPins(ds);
    return {
      ...common,
      prune: (n) => run(['btrfs', 'subvolume', 'delete', join(fs.mountpoint, 'snaps', n)]),
      dropProtection: async () => {
        for (const p of await pins()) await run(['btrfs', 'subvolume', 'delete', p.ref]);
      },
      protection: async () => (await pins()).map((p) => p.snapshot.name ?? `(pruned ${p.snapshot.id})`),
      restoredTree: async () => {
        const target = join(fs.mountpoint, `restored-${++restores}`);
        mkdirSync(target);
        const last = await restoreLatestDirectBtrfs(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, fs.btrfs);
        return facts(last);
      },
    };
  }
  const pool = scratch.pool!;
  const zfs = pool.zfs;
  return {
    ...common,
    prune: async (n) => {
      if ((await zfs.userRefs(`${ds}@${n}`)) > 0) await zfs.release('zbk', `${ds}@${n}`);
      await zfs.destroy(`${ds}@${n}`);
    },
    dropProtection: async () => {
      if (!(await zfs.capabilities()).bookmarks) return;
      for (const b of await zfs.listBookmarks(ds)) if (b.shortName.startsWith('zbk-')) await zfs.destroyBookmark(b.name);
    },
    protection: async () => {
      const out: string[] = [];
      if ((await zfs.capabilities()).bookmarks) out.push(...(await zfs.listBookmarks(ds)).map((b) => `#${b.shortName}`));
      for (const s of await zfs.listSnapshots(ds)) if ((await zfs.userRefs(s.name)) > 0) out.push(`held @${s.shortName}`);
      return out;
    },
    restoredTree: async () => {
      const target = `${pool.name}/restored-${++restores}`;
      await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, zfs);
      return facts(await zfs.mount(target).catch(() => mountOf(pool, target)));
    },
  };
}

/** The ZFS protection `protection()` reports for the base `name` in force on this ZFS (bookmark where it has them, else the hold). */
export async function expectedProtection(src: SourceRepo, name: string): Promise<string[]> {
  if (src.kind === 'btrfs') return [src.snap(name)];
  return (await src.pool!.zfs.capabilities()).bookmarks ? [`#zbk-${name}`] : [`held @${name}`];
}
