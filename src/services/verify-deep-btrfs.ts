/**
 * The restore drill of `zbk verify --deep` on btrfs: the chain is received
 * into a scratch directory next to zbk's pins (`<mount>/.zbk/<dataset
 * uuid>/verify-<tag>`, on the same filesystem, so nothing is written
 * anywhere else), the last received subvolume is checked by its received
 * UUID and its files are compared with zbk's pin of the snapshot (what was
 * sent), else with the user's snapshot. Every scratch subvolume and the
 * directory are deleted afterwards, whatever happens.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rmdir } from 'node:fs/promises';
import type { Keyring } from '../crypto/types.js';
import { IntegrityError, OperationError } from '../errors.js';
import type { ReceivedSnapshot } from '../source/types.js';
import type { StreamWithVolumes } from '../manifest/types.js';
import type { ServiceContext } from './context.js';
import { sourceListingFor } from './push/sources.js';
import { idToUuid } from './push/source.js';
import { pidAlive } from '../manifest/lock.js';
import { receiveChainFromStore } from './receive-chain.js';
import { trustedCopy } from './restore/target-btrfs.js';
import { downloadPacer } from './bandwidth.js';
import { compareTrees } from './tree-compare.js';
import type { DeepVerifyResult } from './verify-deep.js';

export interface DrillInput {
  ctx: ServiceContext;
  keyring: Keyring;
  dataset: string;
  chain: StreamWithVolumes[];
  last: StreamWithVolumes;
  /** The result so far (sizes, counts). */
  base: DeepVerifyResult;
  /** A receive failure as the drill reports it (damage in the store recorded). */
  damaged: (err: unknown) => unknown;
}

/** Name prefix of a drill's scratch directory (`verify-<pid>-<8 hex>`). */
const SCRATCH_PREFIX = 'verify-';

export async function drillBtrfs({ ctx, keyring, dataset, chain, last, base, damaged }: DrillInput): Promise<DeepVerifyResult> {
  const btrfs = ctx.btrfs;
  await removeStaleScratch(ctx, dataset);
  const scratch = await btrfs.workDirectory(dataset, `${SCRATCH_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  const made: ReceivedSnapshot[] = [];
  try {
    let received = '';
    try {
      await receiveChainFromStore(
        ctx.store,
        keyring,
        chain,
        async (plaintext) => {
          const r = await btrfs.receive(scratch, plaintext);
          made.push(r);
          // btrfs finds an incremental's parent by received UUID anywhere on the filesystem:
          // it must be the snapshot this drill received just before.
          const want = made.length > 1 ? made[made.length - 2]!.uuid : null;
          const prevId = made.length > 1 ? made[made.length - 2]!.id : null;
          if (r.parentUuid !== want && !(await trustedCopy(btrfs, scratch, r.parentUuid ?? null, prevId))) throw new IntegrityError(`btrfs received stream ${made.length} of the drill on top of ${r.parentUuid ?? 'nothing'}, not on the drill's previous snapshot ${want ?? '(none)'}: another subvolume on this filesystem carries its received UUID`, 'RECEIVE_MISMATCH');
          received = r.ref;
        },
        downloadPacer(ctx),
      );
    } catch (err) {
      throw damaged(err);
    }
    const got = (await btrfs.listReceived(scratch)).find((r) => r.ref === received);
    if (!got || got.id !== idToUuid(last.to.guid)) {
      throw new OperationError(`the restored snapshot carries the identity ${got?.id ?? '(none)'}, the manifest says ${idToUuid(last.to.guid)}`, 'GUID_MISMATCH');
    }
    const source = sourceListingFor(ctx, dataset);
    const local = (await source.resolveTarget(dataset, last.to)) ?? (await source.findLocal(dataset, last.to))?.name ?? null;
    if (local === null) {
      ctx.log.warn(`${dataset} snapshot ${last.to.name} no longer exists locally (nor zbk's pin of it): checked the restored snapshot's identity only`);
      return { ...base, ok: true, outcome: 'verified' };
    }
    // A nested subvolume is an empty directory in a snapshot (inode 2) that btrfs send leaves out.
    const diff = await compareTrees(local, received, 50, (st) => st.isDirectory() && st.ino === 2);
    const ok = diff.differences.length === 0;
    return { ...base, ok, outcome: ok ? 'verified' : 'different', filesCompared: diff.compared, differences: diff.differences, comparedWithLocal: true };
  } finally {
    await removeScratch(ctx, scratch, made);
  }
}

/** Delete the subvolumes this drill received (by id: nothing else), then its directory. */
async function removeScratch(ctx: ServiceContext, dir: string, made: readonly ReceivedSnapshot[]): Promise<void> {
  try {
    for (const r of [...made].reverse()) await ctx.btrfs.deleteSubvolume(r.ref, r.subvolumeId !== undefined ? { subvolumeId: r.subvolumeId } : {});
    // What a failed receive left was deleted by the receive itself; anything else stays, and rmdir says so.
    await rmdir(dir);
  } catch (err) {
    ctx.log.warn(`could not delete the drill's scratch directory ${dir}: ${err instanceof Error ? err.message : String(err)}; delete its subvolumes by hand ("btrfs subvolume delete")`);
  }
}

/**
 * The scratch directories of drills killed before they cleaned up
 * (`verify-<pid>-<hex>` whose process is gone): their subvolumes are zbk's
 * own (the directory is private to zbk, ensurePrivateDir), so they are
 * deleted with them.
 */
async function removeStaleScratch(ctx: ServiceContext, dataset: string): Promise<void> {
  const dir = await ctx.btrfs.pinDirectory(dataset);
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    const m = new RegExp(`^${SCRATCH_PREFIX}(\\d+)-[0-9a-f]{8}$`).exec(n);
    if (!m || pidAlive(Number(m[1]))) continue;
    const scratch = `${dir}/${n}`;
    try {
      await ctx.btrfs.ensurePrivateDir(scratch);
      for (const e of await readdir(scratch)) await ctx.btrfs.deleteSubvolume(`${scratch}/${e}`);
      await rmdir(scratch);
      ctx.log.info(`deleted ${scratch}, left by a drill that was killed`);
    } catch (err) {
      ctx.log.warn(`could not delete ${scratch}, left by a drill that was killed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

