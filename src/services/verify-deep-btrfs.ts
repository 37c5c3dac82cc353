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
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import type { Keyring } from '../crypto/types.js';
import { OperationError } from '../errors.js';
import type { StreamWithVolumes } from '../manifest/types.js';
import type { ServiceContext } from './context.js';
import { pushSourceFor } from './push/sources.js';
import { idToUuid } from './push/source.js';
import { receiveChainFromStore } from './receive-chain.js';
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

export async function drillBtrfs({ ctx, keyring, dataset, chain, last, base, damaged }: DrillInput): Promise<DeepVerifyResult> {
  const btrfs = ctx.btrfs;
  const scratch = `${await btrfs.pinDirectory(dataset)}/verify-${randomBytes(4).toString('hex')}`;
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  try {
    let received = '';
    try {
      await receiveChainFromStore(
        ctx.store,
        keyring,
        chain,
        async (plaintext) => {
          received = (await btrfs.receive(scratch, plaintext)).ref;
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
    const source = pushSourceFor(ctx, dataset);
    const local = (await source.resolveTarget(dataset, last.to)) ?? (await source.findLocal(dataset, last.to))?.name ?? null;
    if (local === null) {
      ctx.log.warn(`${dataset} snapshot ${last.to.name} and zbk's pin of it no longer exist locally: checked the restored snapshot's identity only`);
      return { ...base, ok: true, outcome: 'verified' };
    }
    const diff = await compareTrees(local, received);
    const ok = diff.differences.length === 0;
    return { ...base, ok, outcome: ok ? 'verified' : 'different', filesCompared: diff.compared, differences: diff.differences, comparedWithLocal: true };
  } finally {
    await removeScratch(ctx, scratch);
  }
}

async function removeScratch(ctx: ServiceContext, dir: string): Promise<void> {
  try {
    for (const n of await readdir(dir)) await ctx.btrfs.deleteSubvolume(`${dir}/${n}`);
    await rmdir(dir);
  } catch (err) {
    ctx.log.warn(`could not delete the drill's scratch directory ${dir}: ${err instanceof Error ? err.message : String(err)}; delete its subvolumes by hand ("btrfs subvolume delete")`);
  }
}
