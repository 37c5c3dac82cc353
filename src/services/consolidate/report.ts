/**
 * The read-only half of `zbk consolidate`: per dataset, what retention
 * keeps, what the planner recommends, and what is already scheduled for
 * deletion. `--apply` acts on exactly this (see ./run.ts).
 */
import { sealedPartSize } from '../../crypto/index.js';
import type { PriceTable } from '../../cost/prices.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { UnneededObject } from '../../manifest/types.js';
import { parseVolumeKey } from '../../layout.js';
import { chainTo, planConsolidation, type ConsolidationPlan, type ConsolidationStream, type ConsolidationTiming } from '../../planner/consolidate-plan.js';
import type { ServiceContext } from '../context.js';
import { costClass, deletionSchedule, type DeletionSchedule } from './schedule.js';
import { retentionOf } from './retention.js';
import { sourceListingFor } from '../push/sources.js';

export interface KeptSnapshot {
  name: string;
  guid: string;
  reasons: string[];
}

export interface DatasetPlan {
  dataset: string;
  latest: { name: string; guid: string } | null;
  kept: KeptSnapshot[];
  /** Pushed snapshots no retention rule keeps (their objects go once nothing kept needs them). */
  dropped: string[];
  /** Null when nothing is pushed yet. */
  plan: ConsolidationPlan | null;
  /** Streams a recommended consolidation would mark superseded (every object of theirs is in the plan's delete lists). */
  supersedes: string[];
  /** Why a recommended consolidation cannot run now (push in flight, snapshot gone locally), else null. */
  blocked: string | null;
  /** Already unneeded objects: deletable now (`due`) or later. */
  schedule: DeletionSchedule;
}

export interface PlanOptions {
  allowEarlyDelete: boolean;
  horizonMonths?: number;
  /** When a paying consolidation is recommended (default: the cheapest interval). */
  timing?: ConsolidationTiming;
  prices: PriceTable;
  /** `deletableObjects` of the manifest as it is now, when the caller has it (a report over every dataset). */
  deletable?: readonly UnneededObject[];
}

/** Stored (sealed) bytes of `plain` plaintext bytes cut into `partSize` parts. */
export function sealedBytesOf(plain: number, partSize: number): number {
  const whole = Math.floor(plain / partSize);
  const rest = plain - whole * partSize;
  return whole * sealedPartSize(partSize) + (rest > 0 ? sealedPartSize(rest) : 0);
}

/** The dataset's complete streams as the planner sees them (guids as decimal strings). */
export function plannerStreams(manifest: Manifest, dataset: string): ConsolidationStream[] {
  const volumesOf = manifest.volumesByStream(dataset, ['complete']);
  return manifest
    .streams(dataset, ['complete'])
    .map((s) => {
      const vols = (volumesOf.get(s.streamId) ?? []).filter((v) => v.state === 'complete');
      return {
        streamId: s.streamId,
        kind: s.kind,
        fromGuid: s.from?.guid.toString() ?? null,
        toGuid: s.to.guid.toString(),
        storedBytes: s.storedSize ?? 0,
        storageClass: costClass(vols[0]?.storageClass ?? 'DEEP_ARCHIVE'),
        volumes: vols.map((v) => ({ key: v.key, bytes: v.storedSize ?? 0, uploadedAt: v.uploadedAt ?? s.completedAt ?? s.startedAt })),
      };
    });
}

/** Plan one dataset at `ctx.now()`. Reads the manifest and the source (its snapshots; the size of a new full, ./push/source.ts); writes nothing. */
export async function planDataset(ctx: ServiceContext, manifest: Manifest, dataset: string, opts: PlanOptions): Promise<DatasetPlan> {
  const now = ctx.now();
  const retention = retentionOf(manifest, dataset, ctx.config.retention);
  const schedule = deletionSchedule(manifest, ctx.config.retention, opts.prices, now, {
    dataset,
    allowEarly: opts.allowEarlyDelete,
    ...(opts.deletable ? { deletable: opts.deletable } : {}),
  });
  const last = manifest.lastPushedSnapshot(dataset);
  const base: DatasetPlan = {
    dataset,
    latest: last ? { name: last.name, guid: last.guid.toString() } : null,
    kept: retention.kept.map((k) => ({ name: k.name, guid: k.guid, reasons: k.reasons })),
    dropped: retention.dropped.map((d) => d.name),
    plan: null,
    supersedes: [],
    blocked: null,
    schedule,
  };
  if (!last) return base;

  let blocked: string | null = null;
  if (manifest.findInFlightStream(dataset)) blocked = 'a push of this dataset is in flight: run "zbk push" to finish it first';
  // The new full is sent from the local snapshot: it must still exist, with the same guid.
  const source = sourceListingFor(ctx, dataset);
  const local = await source.findLocal(dataset, last).catch(() => null);
  if (!local) blocked ??= `the latest pushed snapshot @${last.name} is not on this machine (a new full is sent from it)`;

  const streams = plannerStreams(manifest, dataset);
  const { partSize, volumeSize } = ctx.config.upload;
  // Without the local snapshot, the current chain's size stands in (the report stays meaningful).
  const chainBytes = (chainTo(last.guid.toString(), streams) ?? []).reduce((n, s) => n + s.storedBytes, 0);
  const newFullBytes = local ? sealedBytesOf(await source.fullStreamSize(local), partSize) : chainBytes;
  const plan = planConsolidation({
    dataset,
    streams,
    keptGuids: retention.keptGuids,
    latestGuid: last.guid.toString(),
    newFullBytes,
    now,
    horizonMonths: opts.horizonMonths,
    ...(opts.timing ? { timing: opts.timing } : {}),
    allowEarlyDelete: opts.allowEarlyDelete,
    prices: opts.prices,
    volumeBytes: sealedBytesOf(volumeSize, partSize),
    partBytes: sealedPartSize(partSize),
  });
  const supersedes = [...new Set([...plan.deleteNow, ...plan.deleteLater].map((d) => parseVolumeKey(d.key)?.streamId).filter((id): id is string => !!id))].sort();
  return { ...base, plan, supersedes, blocked: plan.recommend ? blocked : null };
}
