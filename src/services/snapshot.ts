/**
 * `zbk snapshot`: take a read-only snapshot of each dataset, named by zbk,
 * for users without a snapshot tool, so that `zbk snapshot && zbk push`
 * works from a timer (issue #19).
 *
 * - Which datasets: those named, else every configured `[[dataset]]`. A
 *   named dataset need not be configured.
 * - Name: `zbk-YYYYMMDDTHHMMSSZ` (UTC, from the context's clock), or the
 *   one given (`--name`), checked by the rules of the dataset's source: a
 *   ZFS short snapshot name (src/zfs/names.ts), one btrfs path component
 *   (src/btrfs/paths.ts). A name that is already taken is refused (exit 2)
 *   and nothing is changed.
 * - ZFS: `zfs snapshot pool/ds@NAME`. btrfs: a read-only snapshot at
 *   `<mount point>/.zbk/<dataset UUID>/snapshots/NAME` (Btrfs.takeSnapshot),
 *   which `zbk push` then lists as the dataset's newest snapshot.
 *
 * Command-line mistakes (a dataset or a name that is not valid for its
 * source, no dataset at all) are refused before any snapshot is taken.
 * Otherwise each dataset is snapshotted on its own: one that fails does not
 * keep the others from being taken; its error is in `failed` (and when none
 * was taken, the first error is thrown, as for a single dataset).
 */
import { BtrfsError } from '../btrfs/errors.js';
import { assertBtrfsName } from '../btrfs/paths.js';
import { UsageError, ZbkError, exitCodeOf } from '../errors.js';
import { ZfsExistsError } from '../zfs/errors.js';
import { assertShortSnapshotName, assertSnapshotName } from '../zfs/names.js';
import type { ServiceContext } from './context.js';
import { resolveBtrfsDataset } from './push/btrfs-source.js';
import { assertSourceDatasetName, sourceKindOf } from './push/source.js';

export interface SnapshotOptions {
  /** Datasets to snapshot; empty: every configured `[[dataset]]`. */
  datasets: string[];
  /** The snapshot name instead of `zbk-<UTC time>`. */
  name?: string;
}

export interface TakenSnapshot {
  dataset: string;
  /** What `zbk push --snapshot` takes and the manifest records: ZFS the short name (`zbk-…`); btrfs the path relative to the mount (`.zbk/<uuid>/snapshots/zbk-…`). */
  name: string;
  /** ZFS `pool/ds@zbk-…`; btrfs the snapshot's absolute path. */
  ref: string;
}

export interface FailedSnapshot {
  dataset: string;
  code: string;
  message: string;
  exitCode: number;
}

export interface SnapshotResult {
  snapshots: TakenSnapshot[];
  /** Datasets whose snapshot failed, in order (the others were still taken). */
  failed: FailedSnapshot[];
}

/** `zbk-YYYYMMDDTHHMMSSZ` for the instant `at` (UTC, whole seconds). */
export function defaultSnapshotName(at: Date): string {
  return `zbk-${at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '')}`;
}

/** UsageError unless `name` is a valid snapshot name for `dataset`'s source. */
function checkName(dataset: string, name: string): void {
  if (sourceKindOf(dataset) === 'btrfs') assertBtrfsName(name, 'snapshot name');
  else {
    assertShortSnapshotName(name);
    assertSnapshotName(`${dataset}@${name}`);
  }
}

function exists(dataset: string, ref: string): UsageError {
  return new UsageError(`${dataset} already has a snapshot ${ref}: choose another --name (nothing was changed)`, 'SNAPSHOT_EXISTS');
}

function noSuchDataset(dataset: string): UsageError {
  return new UsageError(`dataset ${dataset} does not exist and is not configured (a typo?)`, 'NO_SUCH_DATASET');
}

async function snapshotZfs(ctx: ServiceContext, dataset: string, name: string, configured: boolean): Promise<TakenSnapshot> {
  const ref = `${dataset}@${name}`;
  if (!configured && !(await ctx.zfs.exists(dataset))) throw noSuchDataset(dataset);
  if (await ctx.zfs.exists(ref)) throw exists(dataset, ref);
  try {
    await ctx.zfs.snapshot(ref);
  } catch (err) {
    if (err instanceof ZfsExistsError) throw exists(dataset, ref);
    throw err;
  }
  return { dataset, name, ref };
}

async function snapshotBtrfs(ctx: ServiceContext, dataset: string, name: string, configured: boolean): Promise<TakenSnapshot> {
  try {
    await resolveBtrfsDataset(ctx.btrfs, dataset);
  } catch (err) {
    if (!configured && err instanceof BtrfsError && err.code === 'BTRFS_NOT_FOUND') throw noSuchDataset(dataset);
    throw err;
  }
  try {
    const taken = await ctx.btrfs.takeSnapshot(dataset, name);
    return { dataset, ...taken };
  } catch (err) {
    if (err instanceof BtrfsError && err.code === 'BTRFS_EXISTS') {
      const dir = await ctx.btrfs.pinDirectory(dataset).catch(() => null);
      throw exists(dataset, dir === null ? name : `${dir}/snapshots/${name}`);
    }
    throw err;
  }
}

/**
 * Snapshot each dataset (see the module comment). Throws a UsageError for
 * a command-line mistake, before anything is taken, and the first
 * dataset's error when no snapshot could be taken at all; otherwise
 * resolves, with every failure in `failed`.
 */
export async function snapshot(ctx: ServiceContext, opts: SnapshotOptions): Promise<SnapshotResult> {
  const configured = new Set(ctx.config.datasets.map((d) => d.name));
  const datasets = [...new Set(opts.datasets.length > 0 ? opts.datasets : ctx.config.datasets.map((d) => d.name))];
  if (datasets.length === 0) throw new UsageError('no dataset given and none configured: zbk snapshot <dataset>', 'NO_DATASET');
  const name = opts.name ?? defaultSnapshotName(ctx.now());
  for (const dataset of datasets) {
    assertSourceDatasetName(dataset);
    checkName(dataset, name);
  }
  const result: SnapshotResult = { snapshots: [], failed: [] };
  let first: unknown = null;
  for (const dataset of datasets) {
    const take = sourceKindOf(dataset) === 'btrfs' ? snapshotBtrfs : snapshotZfs;
    try {
      result.snapshots.push(await take(ctx, dataset, name, configured.has(dataset)));
    } catch (err) {
      first ??= err;
      const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
      result.failed.push({ dataset, code: err instanceof ZbkError ? err.code : 'INTERNAL', message, exitCode: exitCodeOf(err) });
    }
  }
  if (result.snapshots.length === 0 && first !== null) throw first;
  return result;
}
