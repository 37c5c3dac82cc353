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

async function facts(dir: string): Promise<TreeFacts> {
  return { files: await hashTree(dir), modes: modesOf(dir) };
}

let restores = 0;

export async function sourceRepo(
  t: TestContext,
  kind: SourceUnderTest,
  opts: { sizeMiB?: number; name?: string; repo?: Omit<TestRepoOptions, 'datasets'> } = {},
): Promise<SourceRepo> {
  const name = opts.name ?? 'data';
  if (kind === 'btrfs') {
    const fs = createTestBtrfs(t, { sizeMiB: opts.sizeMiB ?? 512 });
    const ds = fs.subvolume(name);
    mkdirSync(join(fs.mountpoint, 'snaps'));
    const repo = await createTestRepo({ ...opts.repo, datasets: [ds] });
    t.after(() => repo.cleanup());
    const sh = async (args: string[]): Promise<void> => {
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    };
    const pins = () => fs.btrfs.listPins(ds);
    return {
      kind,
      ds,
      mnt: ds,
      repo,
      pool: null,
      fs,
      snapshot: async (n) => void fs.snapshot(ds, `snaps/${n}`),
      snap: (n) => `snaps/${n}`,
      prune: (n) => sh(['btrfs', 'subvolume', 'delete', join(fs.mountpoint, 'snaps', n)]),
      dropProtection: async () => {
        for (const p of await pins()) await sh(['btrfs', 'subvolume', 'delete', p.ref]);
      },
      protection: async () => (await pins()).map((p) => p.snapshot.name ?? `(pruned ${p.snapshot.id})`),
      tree: () => facts(ds),
      restoredTree: async () => {
        const target = join(fs.mountpoint, `restored-${++restores}`);
        mkdirSync(target);
        const last = await restoreLatestDirectBtrfs(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, fs.btrfs);
        return facts(last);
      },
    };
  }
  const pool = await createTestPool({ sizeMiB: opts.sizeMiB ?? 512 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/${name}`;
  await pool.zfs.createDataset(ds);
  const mnt = await mountOf(pool, ds);
  const repo = await createTestRepo({ ...opts.repo, datasets: [ds] });
  t.after(() => repo.cleanup());
  const zfs = pool.zfs;
  return {
    kind,
    ds,
    mnt,
    repo,
    pool,
    fs: null,
    snapshot: (n) => zfs.snapshot(`${ds}@${n}`),
    snap: (n) => n,
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
    tree: () => facts(mnt),
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
