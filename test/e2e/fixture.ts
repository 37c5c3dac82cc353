/**
 * The setting of most push end-to-end tests: a scratch pool with one
 * dataset, its mountpoint, and a throwaway repository that pushes it; all
 * destroyed when the test ends.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { createTestPool, type TestPool } from '../helpers/pool.js';
import { createTestRepo, type TestRepo, type TestRepoOptions } from '../helpers/repo.js';

export async function mountOf(pool: TestPool, ds: string): Promise<string> {
  const m = await pool.zfs.mountpoint(ds);
  assert.ok(m, `${ds} has no mountpoint`);
  return m;
}

export interface DatasetRepo {
  pool: TestPool;
  /** `<pool>/<name>`, created and mounted. */
  ds: string;
  mnt: string;
  repo: TestRepo;
}

export async function datasetRepo(
  t: TestContext,
  opts: { sizeMiB?: number; name?: string; repo?: Omit<TestRepoOptions, 'datasets'> } = {},
): Promise<DatasetRepo> {
  const pool = await createTestPool({ sizeMiB: opts.sizeMiB ?? 512 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/${opts.name ?? 'data'}`;
  await pool.zfs.createDataset(ds);
  const mnt = await mountOf(pool, ds);
  const repo = await createTestRepo({ ...opts.repo, datasets: [ds] });
  t.after(() => repo.cleanup());
  return { pool, ds, mnt, repo };
}
