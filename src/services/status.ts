/**
 * `zbk status`: per dataset the pushed chain, the last push, in-flight
 * uploads (bytes so far and their staging cost) and orphan uploads, and the
 * estimated monthly cost. Reads the local manifest
 * and lists multipart uploads; needs no passphrase.
 */
import { configPriceTable } from '../cost/providers/index.js';
import { monthlyStorageCost, type CostObject } from '../cost/model.js';
import { type StorageClass } from '../cost/prices.js';
import type { Manifest } from '../manifest/manifest.js';
import { chainHealth, type ChainHealth } from './chain-health.js';
import { openManifest, type ServiceContext } from './context.js';
import { assertKnownDataset } from './known-dataset.js';
import { FOREIGN_GRACE_MS, findOrphanUploads } from './orphans.js';
import { totalStaging, uploadStaging } from './staging.js';

export interface ChainEntry {
  streamId: string;
  kind: 'full' | 'incremental';
  from: string | null;
  to: string;
  /** Snapshot creation time (ISO). */
  snapshotCreated: string;
  plaintextBytes: number;
  storedBytes: number;
  objects: number;
  pushedAt: string | null;
  /** Keys of this stream's volumes found damaged (by verify or a restore); a non-empty list breaks the chain. */
  damaged: string[];
}

export interface DatasetStatus {
  dataset: string;
  latestPushed: string | null;
  lastPushAt: string | null;
  chain: ChainEntry[];
  /** `ok`: the newest pushed snapshot is restorable; `broken`: its chain includes a damaged object; `none`: nothing pushed. */
  health: 'ok' | 'broken' | 'none';
  /** Damage recorded by verify or restores, what is still restorable, and what to do. */
  integrity: ChainHealth;
  storedBytes: number;
  objects: number;
  monthlyCost: number;
  /** ISO time of the last `zbk verify` that checked this dataset (run for it alone or for every dataset), or null when none did. */
  lastVerifiedAt: string | null;
  /** ISO upload time of the oldest of `objects` uploaded after `lastVerifiedAt` (so no `zbk verify` has checked it yet), or null when there is none. */
  oldestUnverifiedAt: string | null;
}

export interface UploadStatus {
  key: string;
  /** Only the first characters: upload ids are long and not secret, but noisy. */
  uploadId: string;
  dataset: string | null;
  initiated: string | null;
  /** Orphans only: `ours` (aborted by the next push) or `foreign` (another machine's, aborted once 48 h old). */
  owner?: 'ours' | 'foreign';
  /** Orphans only: whether the next push aborts it, and from when a push may (ours: at once). */
  abortable?: boolean;
  abortableFrom?: string;
}

/**
 * An upload of a stream being pushed: what it has uploaded so far, and what
 * those parts cost while it stays unfinished (multipart staging, billed at
 * S3 Standard storage rates until the upload completes).
 */
export interface InFlightStatus extends UploadStatus {
  /** Parts acknowledged so far. */
  parts: number;
  /** Their sealed bytes (as stored). */
  bytesUploaded: number;
  /** USD per month (30 days) and per day while they stay unfinished. */
  stagingCostPerMonth: number;
  stagingCostPerDay: number;
}

export interface StatusResult {
  store: string;
  datasets: DatasetStatus[];
  inFlight: InFlightStatus[];
  /** The in-flight uploads together: parts, bytes, and their staging cost per month and day (not in `monthlyCost`). */
  staging: { parts: number; bytes: number; monthly: number; daily: number };
  /** Multipart uploads in the store the manifest does not know (billed until aborted; `zbk push` aborts them). */
  orphans: UploadStatus[];
  monthlyCost: number;
  priceTableDate: string;
  /** The provider profile the costs are priced with (`[store] provider`). */
  provider: string;
}

export function costObjectsOf(manifest: Manifest, dataset?: string): CostObject[] {
  const objects: CostObject[] = [];
  for (const v of manifest.storedVolumes(dataset, ['complete', 'superseded'])) {
    objects.push({ bytes: v.storedSize, storageClass: v.storageClass as StorageClass, ...(v.uploadedAt ? { uploadedAt: v.uploadedAt } : {}) });
  }
  return objects;
}

export async function status(ctx: ServiceContext, dataset?: string): Promise<StatusResult> {
  const manifest = openManifest(ctx, null);
  try {
    if (dataset !== undefined) assertKnownDataset(ctx, manifest, dataset);
    const prices = configPriceTable(ctx.config.store, ctx.config.prices);
    // `zbk verify` logs a `verified` event for its dataset, or null for all (src/services/verify.ts).
    const verifies = manifest.eventsOfKind('verified', 10_000);
    const names = dataset ? [dataset] : manifest.datasets().map((d) => d.name);
    const datasets: DatasetStatus[] = names.map((name) => {
      let chain: ChainEntry[] = [];
      const integrity = chainHealth(manifest, name);
      const damagedKeys = new Set(integrity.damaged.map((o) => o.key));
      try {
        // A broken chain is shown as it is, its damaged objects marked.
        chain = manifest.chainFor(name, undefined, { includeDamaged: !integrity.ok }).map((s) => ({
          streamId: s.streamId,
          kind: s.kind,
          from: s.from?.name ?? null,
          to: s.to.name,
          snapshotCreated: new Date(s.to.creation * 1000).toISOString(),
          plaintextBytes: s.plaintextSize ?? 0,
          storedBytes: s.storedSize ?? 0,
          objects: s.volumes.length,
          pushedAt: s.completedAt?.toISOString() ?? null,
          damaged: s.volumes.filter((v) => damagedKeys.has(v.key)).map((v) => v.key),
        }));
      } catch {
        chain = [];
      }
      const last = chain[chain.length - 1];
      const objs = costObjectsOf(manifest, name);
      const verifiedAt = verifies.find((e) => e.dataset === null || e.dataset === name)?.at ?? null;
      const oldestUnverified = objs.reduce<Date | null>(
        (acc, o) => (o.uploadedAt && (verifiedAt === null || o.uploadedAt > verifiedAt) && (acc === null || o.uploadedAt < acc) ? o.uploadedAt : acc),
        null,
      );
      return {
        dataset: name,
        latestPushed: last?.to ?? null,
        lastPushAt: last?.pushedAt ?? null,
        chain,
        health: !integrity.ok ? 'broken' : last ? 'ok' : 'none',
        integrity,
        storedBytes: objs.reduce((n, o) => n + o.bytes, 0),
        objects: objs.length,
        monthlyCost: monthlyStorageCost(objs, prices).total,
        lastVerifiedAt: verifiedAt?.toISOString() ?? null,
        oldestUnverifiedAt: oldestUnverified?.toISOString() ?? null,
      };
    });
    // Uploads of abandoned streams are never resumed: the orphan check lists them.
    const known = manifest.inFlightUploads().filter((u) => u.streamState === 'uploading');
    const staged = known.map((u) => uploadStaging(manifest, u, prices));
    const inFlight: InFlightStatus[] = known.map((u, i) => ({
      key: u.key,
      uploadId: u.uploadId.slice(0, 16),
      dataset: u.dataset,
      initiated: u.startedAt.toISOString(),
      parts: staged[i]!.parts,
      bytesUploaded: staged[i]!.bytes,
      stagingCostPerMonth: staged[i]!.monthly,
      stagingCostPerDay: staged[i]!.daily,
    }));
    const stagingTotal = totalStaging(staged);
    const orphans: UploadStatus[] = (await findOrphanUploads(ctx.store, manifest, ctx.now())).map((u) => ({
      key: u.key,
      uploadId: u.uploadId.slice(0, 16),
      dataset: null,
      initiated: u.initiated.toISOString(),
      owner: u.owner,
      abortable: u.abortable,
      abortableFrom: u.owner === 'ours' ? u.initiated.toISOString() : new Date(u.initiated.getTime() + FOREIGN_GRACE_MS).toISOString(),
    }));
    return {
      store: ctx.store.url,
      datasets,
      inFlight,
      staging: { parts: stagingTotal.parts, bytes: stagingTotal.bytes, monthly: stagingTotal.monthly, daily: stagingTotal.daily },
      orphans,
      monthlyCost: monthlyStorageCost(costObjectsOf(manifest), prices).total,
      priceTableDate: prices.asOf,
      provider: prices.provider,
    };
  } finally {
    manifest.close();
  }
}
