/**
 * Retention applied to what the manifest records: which pushed snapshots of
 * a dataset must stay restorable. Shared by `zbk consolidate` (what may go)
 * and `zbk cost` (what is scheduled to go).
 */
import { applyRetention, type PushedSnapshot, type RetentionResult, type RetentionRules } from '../../planner/retention.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { UnneededObject } from '../../manifest/types.js';
import { listJobs } from '../restore/job.js';

/**
 * Snapshots of `dataset` that some restorable stream ends at
 * (`Manifest.restorableStreams`: complete streams, and superseded streams
 * still wholly in the store — they can still restore an older snapshot, so
 * retention must be able to keep it, and `chainFor` resolves through them).
 * One entry per guid.
 */
export function pushedSnapshots(manifest: Manifest, dataset: string): PushedSnapshot[] {
  const byGuid = new Map<string, PushedSnapshot>();
  for (const s of manifest.restorableStreams(dataset)) {
    const guid = s.to.guid.toString();
    if (!byGuid.has(guid)) byGuid.set(guid, { guid, name: s.to.name, creation: new Date(s.to.creation * 1000) });
  }
  return [...byGuid.values()];
}

/** Retention of one dataset under `rules`; the latest pushed snapshot is always kept. */
export function retentionOf(manifest: Manifest, dataset: string, rules: RetentionRules): RetentionResult {
  const result = applyRetention(pushedSnapshots(manifest, dataset), rules);
  // "Latest" for zbk is the highest createtxg a complete stream ends at (what
  // the next incremental builds on), which creation time normally agrees with;
  // keep it whatever the clocks said.
  const last = manifest.lastPushedSnapshot(dataset);
  if (last && !result.keptGuids.has(last.guid.toString())) {
    const guid = last.guid.toString();
    result.kept.unshift({ guid, name: last.name, creation: new Date(last.creation * 1000), reasons: ['latest pushed'] });
    result.keptGuids.add(guid);
    result.dropped = result.dropped.filter((d) => d.guid !== guid);
  }
  return result;
}

/**
 * Kept guids of every dataset, for `Manifest.unneededObjects`, WITHOUT each
 * dataset's latest pushed snapshot: unneededObjects always keeps the latest
 * itself, through its chain of complete streams (after consolidation: the
 * new full), exactly as `Manifest.chainFor` resolves it.
 */
export function keptGuidsForDeletion(manifest: Manifest, rules: RetentionRules): Set<string> {
  const out = new Set<string>();
  for (const d of manifest.datasets()) {
    const latest = manifest.lastPushedSnapshot(d.name)?.guid.toString();
    for (const g of retentionOf(manifest, d.name, rules).keptGuids) if (g !== latest) out.add(g);
  }
  return out;
}

/**
 * Objects no snapshot kept under `rules` needs and no unfinished restore
 * plans to download: what consolidation may delete. A restore job fixes the
 * volume keys of its chain when it is planned and may run for months; a
 * consolidation in between must not delete them (its paid thaws and
 * downloads would be lost and the restore would have to start over).
 */
export function deletableObjects(manifest: Manifest, rules: RetentionRules): UnneededObject[] {
  const held = new Set(listJobs(manifest).filter((j) => j.finishedAt === null).flatMap((j) => j.volumes.map((v) => v.key)));
  return manifest.unneededObjects(keptGuidsForDeletion(manifest, rules)).filter((o) => !held.has(o.key));
}
