/**
 * Which stored objects no kept snapshot needs, and when each may be deleted
 * without an early-deletion charge. Derived from the manifest every time
 * (nothing to go stale): a superseded or pruned object is "scheduled" until
 * it is past its class's minimum storage duration, then "due".
 */
import { daysBetween, earlyDeletionCharge, minimumDeleteDate } from '../../cost/model.js';
import { STORAGE_CLASSES, type PriceTable, type StorageClass } from '../../cost/prices.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { UnneededObject } from '../../manifest/types.js';
import type { RetentionRules } from '../../planner/retention.js';
import { deletableObjects } from './retention.js';

export interface ScheduledDeletion {
  key: string;
  streamId: string;
  dataset: string;
  bytes: number;
  storageClass: StorageClass;
  uploadedAt: string | null;
  /** ISO instant from which deleting is free. */
  notBefore: string;
  /** Early-deletion charge if deleted now (0 when due). */
  earlyDeletionCharge: number;
}

export interface DeletionSchedule {
  /** Deletable now: past the minimum duration (or any age with allowEarly; see the charge). */
  due: ScheduledDeletion[];
  /** To delete on or after `notBefore` (by a later `zbk consolidate --apply`). */
  later: ScheduledDeletion[];
}

/** A manifest class string as a cost-model class; unknown classes are costed as Deep Archive (the longest minimum: never deleted too early). */
export function costClass(s: string): StorageClass {
  return STORAGE_CLASSES.find((c) => c === s) ?? 'DEEP_ARCHIVE';
}

function scheduled(o: UnneededObject, now: Date, prices: PriceTable): ScheduledDeletion {
  const cls = costClass(o.storageClass);
  const bytes = o.storedSize ?? 0;
  // Unknown upload time: assume "just now", so it is never judged old enough by mistake.
  const uploadedAt = o.uploadedAt ?? now;
  return {
    key: o.key,
    streamId: o.streamId,
    dataset: o.dataset,
    bytes,
    storageClass: cls,
    uploadedAt: o.uploadedAt?.toISOString() ?? null,
    notBefore: minimumDeleteDate({ uploadedAt, storageClass: cls }, prices).toISOString(),
    earlyDeletionCharge: earlyDeletionCharge({ bytes, storageClass: cls }, daysBetween(uploadedAt, now), prices),
  };
}

/**
 * The deletion schedule under retention `rules` at `now`, optionally for
 * one dataset. With `allowEarly`, everything unneeded is due (with its charge).
 * `deletable`: `deletableObjects(manifest, rules)` when the caller already
 * has it for this state of the manifest (a report over every dataset
 * computes it once, not once per dataset).
 */
export function deletionSchedule(
  manifest: Manifest,
  rules: RetentionRules,
  prices: PriceTable,
  now: Date,
  opts: { dataset?: string; allowEarly?: boolean; deletable?: readonly UnneededObject[] } = {},
): DeletionSchedule {
  const out: DeletionSchedule = { due: [], later: [] };
  for (const o of opts.deletable ?? deletableObjects(manifest, rules)) {
    if (opts.dataset !== undefined && o.dataset !== opts.dataset) continue;
    const s = scheduled(o, now, prices);
    if (opts.allowEarly || Date.parse(s.notBefore) <= now.getTime()) out.due.push(s);
    else out.later.push(s);
  }
  out.later.sort((a, b) => a.notBefore.localeCompare(b.notBefore) || a.key.localeCompare(b.key));
  return out;
}
