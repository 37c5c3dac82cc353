/**
 * `zbk verify --deep`: a restore drill. The chain of a pushed snapshot is
 * read back from the store, opened part by part and received into a scratch
 * dataset; its files are compared with a clone of the local snapshot; both
 * scratch datasets are destroyed afterwards, whatever happens.
 *
 * Archived objects (Deep Archive) must be thawed first, which costs money:
 * the drill then stops with the cost, and only with `confirm` requests the
 * restores (run it again once they are done).
 */
import { configPriceTable } from '../cost/providers/index.js';
import { randomBytes } from 'node:crypto';
import { restoreCost } from '../cost/model.js';
import type { Keyring } from '../crypto/types.js';
import { IntegrityError, ObjectIntegrityError, OperationError, UsageError } from '../errors.js';
import type { Manifest } from '../manifest/manifest.js';
import type { StreamWithVolumes } from '../manifest/types.js';
import { chainHealth, remedyFor } from './chain-health.js';
import { receiveChainFromStore, zfsChainReceiver } from './receive-chain.js';
import { downloadPacer } from './bandwidth.js';
import { compareTrees, type TreeDifference } from './tree-compare.js';
import { openKeyring, openManifest, type ServiceContext } from './context.js';
import { sourceKindOf } from './push/source.js';
import { drillBtrfs, type DrillInput } from './verify-deep-btrfs.js';

export interface DeepVerifyOptions {
  dataset?: string;
  /** Short snapshot name (default: the latest pushed). */
  snapshot?: string;
  /** Spend money on thawing archived objects. */
  confirm?: boolean;
  /** Days a thawed copy stays readable. */
  restoreDays?: number;
}

export interface DeepVerifyResult {
  dataset: string;
  snapshot: string;
  /** `verified`: restored and identical; `different`: restored but files differ; `thawing`/`needs-confirmation`: archived objects first. */
  outcome: 'verified' | 'different' | 'thawing' | 'needs-confirmation';
  ok: boolean;
  streams: number;
  objects: number;
  bytes: number;
  /** Objects that must be thawed before the drill can read them. */
  archivedObjects: number;
  /** What thawing them costs (USD), shown before anything is spent. */
  thawCost: number;
  restoresRequested: number;
  filesCompared: number;
  differences: TreeDifference[];
  /** False when the local snapshot is gone: then only the received snapshot's guid is checked. */
  comparedWithLocal: boolean;
  /**
   * Why files were not compared although the drill received the chain, or
   * null. A raw stream of a natively encrypted dataset is received still
   * encrypted, and its key is the user's, not zbk's: then the drill proves
   * that every part authenticated, ZFS accepted the whole stream (its
   * checksums) and the snapshot's guid matches, but not the files.
   */
  filesNotCompared: string | null;
}

function chainOf(manifest: Manifest, dataset: string, snapshot: string | undefined): StreamWithVolumes[] {
  if (!snapshot) return manifest.chainFor(dataset);
  const snap = manifest.snapshots(dataset).find((s) => s.name === snapshot);
  if (!snap) throw new UsageError(`@${snapshot} of ${dataset} was never pushed`, 'NOT_PUSHED');
  return manifest.chainFor(dataset, snap.guid);
}

export async function verifyDeep(ctx: ServiceContext, opts: DeepVerifyOptions): Promise<DeepVerifyResult> {
  const keyring = await openKeyring(ctx);
  const manifest = openManifest(ctx, keyring);
  let chain: StreamWithVolumes[];
  let dataset: string;
  try {
    const pushed = manifest.datasets().map((d) => d.name);
    dataset = opts.dataset ?? (pushed.length === 1 ? pushed[0]! : '');
    if (!dataset) throw new UsageError(`name the dataset to drill with --dataset (pushed: ${pushed.join(', ') || 'none'})`);
    chain = chainOf(manifest, dataset, opts.snapshot);
  } finally {
    manifest.close();
  }
  const last = chain[chain.length - 1];
  if (!last) throw new UsageError(`${dataset} has no pushed snapshot to verify`, 'NOT_PUSHED');
  const volumes = chain.flatMap((s) => s.volumes);
  const bytes = volumes.reduce((n, v) => n + (v.storedSize ?? 0), 0);
  const base: DeepVerifyResult = {
    dataset,
    snapshot: last.to.name,
    outcome: 'verified',
    ok: false,
    streams: chain.length,
    objects: volumes.length,
    bytes,
    archivedObjects: 0,
    thawCost: 0,
    restoresRequested: 0,
    filesCompared: 0,
    differences: [],
    comparedWithLocal: false,
    filesNotCompared: null,
  };

  // 1. Readable now? HEAD is cheap and works on archived objects.
  const archived: string[] = [];
  let inProgress = 0;
  let archivedBytes = 0;
  for (const v of volumes) {
    const info = await ctx.store.head(v.key);
    if (info.restore.state === 'archived') {
      archived.push(v.key);
      archivedBytes += info.size;
    } else if (info.restore.state === 'in-progress') inProgress++;
  }
  if (archived.length > 0 || inProgress > 0) {
    const days = opts.restoreDays ?? 7;
    const prices = configPriceTable(ctx.config.store, ctx.config.prices);
    const cost = restoreCost({ bytes: archivedBytes, objects: archived.length, tier: ctx.config.restore.tier, days }, prices).total;
    const result = { ...base, archivedObjects: archived.length + inProgress, thawCost: cost };
    if (archived.length > 0 && !opts.confirm) return { ...result, outcome: 'needs-confirmation' };
    let requested = 0;
    for (const key of archived) {
      const o = await ctx.store.requestRestore(key, days, ctx.config.restore.tier);
      if (o === 'started') requested++;
    }
    return { ...result, outcome: 'thawing', restoresRequested: requested };
  }

  // 2. Receive the chain into scratch space beside the source, compare with the local snapshot.
  const drill = sourceKindOf(dataset) === 'btrfs' ? drillBtrfs : drillZfs;
  return drill({ ctx, keyring, dataset, chain, last, base, damaged: (err) => recordedDamage(ctx, keyring, dataset, volumes.map((v) => v.key), err) });
}

/** The ZFS drill: the chain received into a scratch dataset, compared with a clone of the local snapshot. */
async function drillZfs({ ctx, keyring, dataset, chain, last, base, damaged }: DrillInput): Promise<DeepVerifyResult> {
  const pool = dataset.split('/')[0]!;
  const tag = randomBytes(4).toString('hex');
  const scratch = `${pool}/zbk-verify-${tag}`;
  const clone = `${pool}/zbk-verify-src-${tag}`;
  const zfs = ctx.zfs;
  try {
    try {
      await receiveChainFromStore(ctx.store, keyring, chain, zfsChainReceiver(zfs, scratch), downloadPacer(ctx));
    } catch (err) {
      throw damaged(err);
    }
    const received = await zfs.getSnapshot(`${scratch}@${last.to.name}`);
    if (received.guid !== last.to.guid) {
      throw new OperationError(`the restored snapshot has guid ${received.guid}, the manifest says ${last.to.guid}`, 'GUID_MISMATCH');
    }
    if ((await zfs.isEncrypted(scratch)) && (await zfs.getProperties(scratch, ['keystatus'])).get('keystatus') !== 'available') {
      const why = `${dataset} is natively encrypted and was sent raw: the restored copy stays locked with the dataset's own key, so its files were not compared (guid and stream checked)`;
      ctx.log.warn(why);
      return { ...base, ok: true, outcome: 'verified', filesNotCompared: why };
    }
    // 3. Compare with the local snapshot, through a clone (the live dataset may have changed since).
    const local = (await zfs.listSnapshots(dataset)).find((s) => s.guid === last.to.guid);
    if (!local) {
      ctx.log.warn(`${dataset}@${last.to.name} no longer exists locally: checked the restored snapshot's guid only`);
      return { ...base, ok: true, outcome: 'verified' };
    }
    await zfs.clone(local.name, clone);
    const diff = await compareTrees(await zfs.mount(clone), await zfs.remount(scratch));
    const ok = diff.differences.length === 0;
    return { ...base, ok, outcome: ok ? 'verified' : 'different', filesCompared: diff.compared, differences: diff.differences, comparedWithLocal: true };
  } finally {
    for (const name of [clone, scratch]) await destroyScratch(ctx, name);
  }
}

/**
 * A volume of the drilled chain that failed authentication is damage in the
 * store (the drill reads it from there): recorded like `zbk verify`'s
 * findings, so `status` shows the chain broken, `check` goes CRITICAL and
 * restores skip it; the error then says what is still restorable and the
 * way out. Anything else is returned unchanged.
 */
function recordedDamage(ctx: ServiceContext, keyring: Keyring, dataset: string, keys: readonly string[], err: unknown): unknown {
  if (!(err instanceof ObjectIntegrityError) || !keys.includes(err.key)) return err;
  const manifest = openManifest(ctx, keyring);
  try {
    manifest.recordDamage({ key: err.key, problem: err.message, foundBy: 'verify', kind: 'bad', at: ctx.now() });
    const health = chainHealth(manifest, dataset);
    return new IntegrityError(
      `${err.message}; recorded as damaged (zbk status shows the chain broken, zbk check is CRITICAL); ${remedyFor(dataset, health.restorable)}`,
      'STORED_DATA_DAMAGED',
      { cause: err },
    );
  } finally {
    manifest.close();
  }
}

/**
 * Destroy a scratch dataset. zfs-fuse refuses to destroy a mounted dataset
 * and may report "busy" for a moment after unmounting it: unmount, then
 * retry a few times before giving up with a warning.
 */
async function destroyScratch(ctx: ServiceContext, name: string): Promise<void> {
  const zfs = ctx.zfs;
  let last: unknown = null;
  for (let attempt = 0; attempt < 10; attempt++) {
    if (!(await zfs.exists(name).catch(() => false))) return;
    await zfs.unmount(name).catch(() => undefined);
    try {
      await zfs.destroy(name, { recursive: true });
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  ctx.log.warn(`could not destroy the scratch dataset ${name}: ${last instanceof Error ? last.message : String(last)}; destroy it by hand`);
}
