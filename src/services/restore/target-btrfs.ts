/**
 * A restore into a directory on btrfs. Each stream is `btrfs receive -C`d
 * into the target directory, where it appears under the name of what was
 * sent (zbk's pin, `base-<uuid>`); the received subvolume is checked — its
 * received UUID is the pushed identity (the pin's UUID), and an
 * incremental's parent is the snapshot this restore received for the stream
 * before (btrfs finds the parent by received UUID anywhere on the
 * filesystem, and anybody can give a subvolume of theirs any received UUID)
 * — and renamed to the snapshot's name ({@link restoredNames}).
 *
 * The target is fixed by the restore's first run: a new directory (its
 * parent on btrfs), or an empty one; one that holds anything else only with
 * --force, which never deletes what is there. It must be owned by the user
 * zbk runs as and writable by nobody else, checked on every run (zbk
 * renames and deletes subvolumes in it). A receive cut off by a kill leaves
 * a writable `base-<uuid>` subvolume, which the next run deletes before it
 * receives again — only a name that was not there when that receive began;
 * a finished receive whose rename was cut off is checked and renamed by the
 * next run.
 */
import { lstat, mkdir, readdir, realpath, rename } from 'node:fs/promises';
import { IntegrityError, UsageError } from '../../errors.js';
import { BtrfsError } from '../../btrfs/errors.js';
import { assertBtrfsName, assertBtrfsPath } from '../../btrfs/paths.js';
import type { Btrfs } from '../../btrfs/btrfs.js';
import type { ReceivedSnapshot } from '../../source/types.js';
import { idToUuid, uuidToId } from '../push/source.js';
import type { JobStream, RestoreJob } from './job.js';
import type { RestoreStep } from './step.js';
import type { RestoreTargetPort } from './target-port.js';

const RECEIVED_NAME = /^base-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function validName(name: string): boolean {
  try {
    assertBtrfsName(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * The name each stream's snapshot gets in the target: the last component of
 * its path (`snap1`, `zbk-20261202T101500Z`, `home.20240101T0300`) when
 * those are all different and valid names; otherwise (snapper's
 * `.snapshots/<n>/snapshot`, a name used twice over time, a name starting
 * with `-`), for every stream, the whole path with `/` as `_`, leading `-`
 * and `.` dropped, and `-` plus the first 8 hex digits of the pushed
 * identity appended (`snapshots_12_snapshot-1a2b3c4d`), which is always
 * unique. Each is one valid path component, so a rename never leaves the
 * target.
 */
export function restoredNames(job: Pick<RestoreJob, 'streams'>): Map<string, string> {
  const bases = job.streams.map((s) => basename(s.to.name));
  const plain = new Set(bases).size === bases.length && bases.every(validName);
  return new Map(
    job.streams.map((s) => {
      if (plain) return [s.to.guid, basename(s.to.name)];
      const stem = s.to.name.replaceAll('/', '_').replace(/^[-.]+/, '').replace(/\s/g, '_') || 'snapshot';
      return [s.to.guid, assertBtrfsName(`${stem.slice(0, 200)}-${idToUuid(s.to.guid).slice(0, 8)}`, 'restored snapshot name')];
    }),
  );
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
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

/**
 * The target is a directory of the user zbk runs as, writable by nobody
 * else, and its own real path (no symlink in it): zbk renames and deletes
 * subvolumes in it, so nobody else may put anything there or swap it.
 */
async function checkTarget(target: string): Promise<void> {
  const st = await lstat(target);
  const uid = process.geteuid?.() ?? st.uid;
  const real = await realpath(target);
  if (!st.isDirectory() || real !== target) throw new UsageError(`restore target ${target} is ${st.isSymbolicLink() || real !== target ? `reached through a symlink (it is ${real}): name the real directory` : 'not a directory'}`, 'TARGET_UNSAFE');
  if (st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new UsageError(
      `restore target ${target} is ${st.uid !== uid ? `owned by uid ${st.uid}` : 'writable by others'}: restore into a directory of your own that only you can write (zbk renames and deletes subvolumes in it)`,
      'TARGET_UNSAFE',
    );
  }
}

/** What the receives of this process created, by stream id (confirmed right after). */
const receivedNow = new WeakMap<RestoreStep, Map<string, ReceivedSnapshot>>();

/**
 * The local UUID of the snapshot this restore received for the stream
 * before `si` (the parent an incremental must have been received on), or
 * null when the target no longer holds it.
 */
async function parentUuidFor(step: RestoreStep, si: number): Promise<string | null> {
  const prev = step.job.streams[si - 1];
  if (!prev) return null;
  const want = idToUuid(prev.to.guid);
  const r = (await step.ctx.btrfs.listReceived(step.target)).find((x) => x.received && x.id === want);
  return r ? (await step.ctx.btrfs.show(r.ref)).uuid : null;
}

/** Why `got`, received for stream `si`, is not what this restore put there, or null. */
async function wrongReceive(step: RestoreStep, si: number, got: { ref: string; id: string; parentUuid?: string | null }): Promise<string | null> {
  const s = step.job.streams[si]!;
  if (got.id !== idToUuid(s.to.guid)) return `${got.ref} carries the identity ${got.id}, the pushed snapshot ${idToUuid(s.to.guid)}`;
  const parent = got.parentUuid === undefined ? (await step.ctx.btrfs.show(got.ref)).parentUuid : got.parentUuid;
  if (si === 0) return parent === null ? null : `${got.ref}, a full stream's snapshot, was made from another subvolume (${parent})`;
  const want = await parentUuidFor(step, si);
  if (want === null) return `the snapshot received before ${s.to.name} is no longer in ${step.target}, so the parent btrfs chose for it (${parent ?? 'none'}) cannot be checked: start the restore anew ("zbk restore plan ${step.job.dataset} --reset")`;
  if (parent === want) return null;
  return (await trustedCopy(step.ctx.btrfs, step.target, parent, s.from === null ? null : idToUuid(step.job.streams[si - 1]!.to.guid)))
    ? null
    : `btrfs received ${s.to.name} on top of ${parent ?? 'nothing'}, not on the snapshot this restore received before it (${want}): another subvolume on this filesystem carries that snapshot's received UUID, and it is not a read-only copy of zbk's user`;
}

/**
 * True when the subvolume `parent` btrfs chose as an incremental's parent is
 * an earlier copy of the same snapshot made by the user zbk runs as (an
 * earlier restore or drill on this filesystem: btrfs takes the oldest
 * subvolume with the received UUID): read-only, carrying `receivedUuid`, its
 * root owned by that user. A subvolume of anybody else's never is — anybody
 * can give their own subvolume any received UUID, but not a root directory
 * that is not theirs.
 */
export async function trustedCopy(btrfs: Btrfs, onPath: string, parent: string | null, receivedUuid: string | null): Promise<boolean> {
  if (parent === null || receivedUuid === null) return false;
  const found = await btrfs.findByUuid(onPath, parent).catch(() => null);
  const uid = process.geteuid?.() ?? -1;
  return found !== null && found.info.readOnly && found.info.receivedUuid === receivedUuid && found.uid === uid;
}

export const btrfsRestoreTarget: RestoreTargetPort = {
  restartReason: 'btrfs receive cannot continue a cut-off stream (what it had received was deleted)',

  async claim(step) {
    const btrfs = step.ctx.btrfs;
    const target = assertBtrfsPath(step.opts.target, 'restore target (a directory on btrfs)');
    if (await exists(target)) {
      await checkTarget(target);
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
    await checkTarget(target);
  },

  async receivedIds(step) {
    const btrfs = step.ctx.btrfs;
    const ids = new Set<string>();
    if (!(await exists(step.target))) return ids;
    await checkTarget(step.target);
    const names = restoredNames(step.job);
    const index = new Map(step.job.streams.map((s, i) => [s.to.guid, i]));
    for (const r of await btrfs.listReceived(step.target)) {
      if (!r.received) continue;
      const id = uuidToId(r.id).toString();
      const want = names.get(id);
      if (want !== undefined && r.name !== want && RECEIVED_NAME.test(r.name)) {
        // A finished receive whose check and rename were cut off: checked now, renamed, or deleted.
        if (await wrongReceive(step, index.get(id)!, r)) {
          step.ctx.log.warn(`deleting ${r.ref}: received by an interrupted run, and not what this restore expects`);
          await btrfs.deleteSubvolume(r.ref);
          continue;
        }
        if (await exists(`${step.target}/${want}`)) continue;
        await rename(r.ref, `${step.target}/${want}`);
      }
      ids.add(id);
    }
    return ids;
  },

  async prepare(step, si) {
    const btrfs = step.ctx.btrfs;
    if (!(await exists(step.target))) await mkdir(step.target, { mode: 0o755 });
    await checkTarget(step.target);
    const s = step.job.streams[si]!;
    // What this stream's interrupted receive left (a name that was not there when it began): deleted.
    if (s.receiveBefore) {
      const before = new Set(s.receiveBefore);
      for (const n of await readdir(step.target)) {
        if (before.has(n) || !RECEIVED_NAME.test(n)) continue;
        const path = `${step.target}/${n}`;
        const info = await btrfs.show(path).catch(() => null);
        if (info && !(info.readOnly && info.receivedUuid !== null)) {
          step.ctx.log.info(`deleting ${path}, left by an interrupted receive`);
          await btrfs.deleteSubvolume(path, { subvolumeId: info.subvolumeId });
        }
      }
    }
    // Every name the chain will take must be free (checked before the first stream, so a
    // collision does not show up after hours of receiving), or already this restore's.
    const names = restoredNames(step.job);
    const ours = new Set((await btrfs.listReceived(step.target)).filter((r) => r.received && names.get(uuidToId(r.id).toString()) === r.name).map((r) => r.name));
    for (const x of step.job.streams.slice(si)) {
      const final = `${step.target}/${names.get(x.to.guid)!}`;
      if (!ours.has(names.get(x.to.guid)!) && (await exists(final))) {
        throw new UsageError(`${final} exists and is not a snapshot this restore received: move it away, then run the restore again`, 'TARGET_EXISTS');
      }
    }
    s.receiveBefore = await readdir(step.target);
    return { force: false };
  },

  async receive(step, si, input, _plan, onWritten) {
    const got = await step.ctx.btrfs.receive(step.target, input, onWritten ? { onWritten } : {});
    const map = receivedNow.get(step) ?? new Map<string, ReceivedSnapshot>();
    map.set(step.job.streams[si]!.streamId, got);
    receivedNow.set(step, map);
  },

  explainFailure(_step, err) {
    return err;
  },

  async confirm(step, s: JobStream) {
    const si = step.job.streams.indexOf(s);
    const got = receivedNow.get(step)?.get(s.streamId);
    if (!got) throw new IntegrityError(`btrfs receive of ${s.to.name} into ${step.target} finished, but zbk did not see what it created`, 'RECEIVE_MISMATCH');
    const wrong = await wrongReceive(step, si, got);
    if (wrong) {
      await step.ctx.btrfs.deleteSubvolume(got.ref, got.subvolumeId !== undefined ? { subvolumeId: got.subvolumeId } : {});
      throw new IntegrityError(`${wrong}; the received subvolume was deleted`, 'RECEIVE_MISMATCH');
    }
    const final = `${step.target}/${restoredNames(step.job).get(s.to.guid)!}`;
    if (got.ref !== final) await rename(got.ref, final);
  },

  async finish(step) {
    const last = step.job.streams.at(-1);
    if (last) step.ctx.log.info(`restored ${step.job.dataset} snapshot ${last.to.name} as ${step.target}/${restoredNames(step.job).get(last.to.guid)} (read-only; "btrfs subvolume snapshot" it to get a writable copy)`);
  },
};
