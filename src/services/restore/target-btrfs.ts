/**
 * A restore into a directory on btrfs. Each stream is `btrfs receive`d into
 * the target directory, where it appears under the name of what was sent
 * (zbk's pin, `base-<uuid>`); the received subvolume is checked by its
 * received UUID (the pushed identity: the pin's UUID) and renamed to the
 * snapshot's own name: the last component of its path on the source
 * (`snap1`, `zbk-20261202T101500Z`), or, when two snapshots of the chain
 * share it (snapper's `.snapshots/<n>/snapshot`), the whole relative path
 * with `/` as `_` (`.snapshots_12_snapshot`). Incrementals find their parent
 * by received UUID, so renaming does not break the chain.
 *
 * The target is fixed by the restore's first run: a new directory (its
 * parent on btrfs), or an empty one; one that holds anything else only with
 * --force, which never deletes what is there. A receive cut off by a kill
 * leaves a writable `base-<uuid>` subvolume, which the next run deletes
 * before it receives again; a finished receive whose rename was cut off is
 * renamed by the next run.
 */
import { mkdir, readdir, rename, stat } from 'node:fs/promises';
import { IntegrityError, UsageError } from '../../errors.js';
import { BtrfsError } from '../../btrfs/errors.js';
import { assertBtrfsName, assertBtrfsPath } from '../../btrfs/paths.js';
import type { Btrfs } from '../../btrfs/btrfs.js';
import { idToUuid, uuidToId } from '../push/source.js';
import type { JobStream, RestoreJob } from './job.js';
import type { RestoreTargetPort } from './target-port.js';

const RECEIVED_NAME = /^base-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * The name each stream's snapshot gets in the target (see the module
 * comment). Each is one valid path component (never `.`, `..`, empty or
 * with `/`), so a rename never leaves the target whatever the names.
 */
export function restoredNames(job: Pick<RestoreJob, 'streams'>): Map<string, string> {
  const names = job.streams.map((s) => s.to.name);
  const unique = new Set(names.map(basename)).size === new Set(names).size;
  return new Map(job.streams.map((s) => [s.to.guid, assertBtrfsName(unique ? basename(s.to.name) : s.to.name.replaceAll('/', '_'), 'restored snapshot name')]));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
}

/** The mount `dir` is on, as a usage error (exit 2) when it is not btrfs. */
async function requireBtrfs(btrfs: Btrfs, dir: string, what: string): Promise<void> {
  try {
    await btrfs.mountOf(dir);
  } catch (err) {
    if (err instanceof BtrfsError && err.code === 'BTRFS_NOT_BTRFS') {
      throw new UsageError(`${what} ${dir} is not on btrfs: a btrfs backup is restored into a directory on a btrfs filesystem`, 'TARGET_NOT_BTRFS');
    }
    throw err;
  }
}

export const btrfsRestoreTarget: RestoreTargetPort = {
  restartReason: 'btrfs receive cannot continue a cut-off stream (what it had received was deleted)',

  async claim(step) {
    const btrfs = step.ctx.btrfs;
    const target = assertBtrfsPath(step.opts.target, 'restore target (a directory on btrfs)');
    if (await exists(target)) {
      const real = await btrfs.realPath(target, 'restore target');
      if (real !== target) throw new UsageError(`restore target ${target} is reached through a symlink (it is ${real}): name the real directory`, 'TARGET_SYMLINK');
      if (!(await stat(target)).isDirectory()) throw new UsageError(`restore target ${target} is not a directory`, 'TARGET_EXISTS');
      await requireBtrfs(btrfs, target, 'restore target');
      const there = await readdir(target);
      if (there.length > 0) {
        if (!step.opts.force) {
          throw new UsageError(
            `restore target ${target} already holds ${there.slice(0, 3).join(', ')}${there.length > 3 ? ', …' : ''}: choose a new or empty directory, or pass --force to receive next to what is there (nothing there is deleted)`,
            'TARGET_EXISTS',
          );
        }
        step.job.force = true;
      }
      return;
    }
    const parent = parentOf(target);
    if (!(await exists(parent))) throw new UsageError(`the parent directory ${parent} of restore target ${target} does not exist`, 'TARGET_EXISTS');
    await requireBtrfs(btrfs, await btrfs.realPath(parent, 'restore target parent'), 'the parent of restore target');
    await mkdir(target, { mode: 0o755 });
  },

  async receivedIds(step) {
    const btrfs = step.ctx.btrfs;
    const ids = new Set<string>();
    if (!(await exists(step.target))) return ids;
    const names = restoredNames(step.job);
    for (const r of await btrfs.listReceived(step.target)) {
      if (!r.received) continue;
      const id = uuidToId(r.id).toString();
      ids.add(id);
      const want = names.get(id);
      // A finished receive whose rename into place was cut off.
      if (want !== undefined && r.name !== want && RECEIVED_NAME.test(r.name) && !(await exists(`${step.target}/${want}`))) {
        await rename(r.ref, `${step.target}/${want}`);
      }
    }
    return ids;
  },

  async prepare(step, si) {
    const btrfs = step.ctx.btrfs;
    if (!(await exists(step.target))) await mkdir(step.target, { mode: 0o755 });
    // What a receive cut off by a kill left: writable, or without its received UUID.
    for (const n of await readdir(step.target)) {
      if (!RECEIVED_NAME.test(n)) continue;
      const info = await btrfs.show(`${step.target}/${n}`).catch(() => null);
      if (info && !(info.readOnly && info.receivedUuid !== null)) {
        step.ctx.log.info(`deleting ${step.target}/${n}, left by an interrupted receive`);
        await btrfs.deleteSubvolume(`${step.target}/${n}`);
      }
    }
    const s = step.job.streams[si]!;
    const final = `${step.target}/${restoredNames(step.job).get(s.to.guid)!}`;
    if (await exists(final)) {
      throw new UsageError(`${final} exists and is not the snapshot this restore receives: move it away, then run the restore again`, 'TARGET_EXISTS');
    }
    return { force: false };
  },

  async receive(step, input, _plan, onWritten) {
    await step.ctx.btrfs.receive(step.target, input, onWritten ? { onWritten } : {});
  },

  explainFailure(_step, err) {
    return err;
  },

  async confirm(step, s: JobStream) {
    const uuid = idToUuid(s.to.guid);
    const got = (await step.ctx.btrfs.listReceived(step.target)).find((r) => r.received && r.id === uuid);
    if (!got) throw new IntegrityError(`btrfs receive into ${step.target} finished, but no subvolume there carries the pushed snapshot's identity ${uuid}`, 'RECEIVE_MISMATCH');
    const final = `${step.target}/${restoredNames(step.job).get(s.to.guid)!}`;
    if (got.ref !== final) await rename(got.ref, final);
  },

  async finish(step) {
    const last = step.job.streams.at(-1);
    if (last) step.ctx.log.info(`restored ${step.job.dataset} snapshot ${last.to.name} as ${step.target}/${restoredNames(step.job).get(last.to.guid)} (read-only; "btrfs subvolume snapshot" it to get a writable copy)`);
  },
};
