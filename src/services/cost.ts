/**
 * `zbk cost`: the monthly bill as the manifest explains it, broken down by
 * dataset and storage class, plus a month-by-month projection.
 *
 * Reads the local manifest only (no passphrase, no store request — asking
 * what things cost must itself cost nothing). The projection assumes the
 * pushes of the last 90 days continue at the same rate, and that scheduled
 * deletions (superseded or pruned objects, see consolidate/schedule.ts) are
 * carried out by `zbk consolidate --apply` as soon as they are free.
 */
import { configPriceTable } from '../cost/providers/index.js';
import { addDays, gb, monthlyStorageCost, storageCostBetween, type CostObject } from '../cost/model.js';
import { DAYS_PER_MONTH, priceTableWarnings, storagePrice, type PriceTable } from '../cost/prices.js';
import type { Manifest } from '../manifest/manifest.js';
import { UsageError } from '../errors.js';
import { openManifest, type ServiceContext } from './context.js';
import { costClass, deletionSchedule } from './consolidate/schedule.js';
import { totalStaging, uploadStaging } from './staging.js';

export interface CostLine {
  /** Dataset name, or a storage class, depending on the breakdown. */
  name: string;
  objects: number;
  storedBytes: number;
  /** USD per month: data at the class rate. */
  data: number;
  /** USD per month: the 40 KB per-object archive overhead. */
  overhead: number;
  total: number;
}

export interface ProjectionMonth {
  /** 1-based month from now. */
  month: number;
  /** ISO start of the 30-day month. */
  from: string;
  /** Storage of what is stored now, less scheduled deletions, USD. */
  existing: number;
  /** Storage added by pushes continuing at the recent rate (data rate only), USD. */
  growth: number;
  total: number;
}

export interface CostResult {
  at: string;
  /** Current monthly run rate, USD. */
  monthly: number;
  byDataset: CostLine[];
  byClass: CostLine[];
  /** Parts of unfinished multipart uploads, billed at S3 Standard storage rates until completed or aborted: USD per month and per day. */
  staging: { parts: number; bytes: number; monthly: number; daily: number };
  /** Objects waiting for their minimum storage duration before deletion. */
  scheduledDeletions: { objects: number; bytes: number; monthlySaving: number; lastNotBefore: string | null };
  /** Stored bytes added per 30 days by the pushes of the last 90 days. */
  recentGrowthBytesPerMonth: number;
  /** Incremental volumes stored per 30 days by the pushes of the last 90 days (about one per push). */
  recentObjectsPerMonth: number;
  projection: ProjectionMonth[];
  projectionTotal: number;
  priceTable: { asOf: string; region: string; source: string; provider: string };
  warnings: string[];
}

export interface CostOptions {
  /** Months to project (default 12). */
  months?: number;
}

interface Tagged extends CostObject {
  dataset: string;
  key: string;
  /** Part of an incremental stream: new data, unlike a full (the first push, or a re-base by consolidation). */
  incremental: boolean;
}

function storedObjects(manifest: Manifest): Tagged[] {
  const out: Tagged[] = [];
  for (const v of manifest.storedVolumes(undefined, ['complete', 'superseded', 'abandoned'])) {
    out.push({ dataset: v.dataset, key: v.key, incremental: v.streamKind === 'incremental', bytes: v.storedSize, storageClass: costClass(v.storageClass), ...(v.uploadedAt ? { uploadedAt: v.uploadedAt } : {}) });
  }
  return out;
}

function lines(objs: readonly Tagged[], by: (o: Tagged) => string, prices: PriceTable): CostLine[] {
  const groups = new Map<string, Tagged[]>();
  for (const o of objs) {
    const g = groups.get(by(o));
    if (g) g.push(o);
    else groups.set(by(o), [o]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, g]) => {
      const c = monthlyStorageCost(g, prices);
      return { name, objects: g.length, storedBytes: g.reduce((n, o) => n + o.bytes, 0), data: c.data, overhead: c.overhead, total: c.total };
    });
}

/** Cost report at `ctx.now()`. */
export function costReport(ctx: ServiceContext, opts: CostOptions = {}): CostResult {
  const months = opts.months ?? 12;
  if (!Number.isInteger(months) || months < 1 || months > 1200) throw new UsageError(`--months must be an integer from 1 to 1200, got ${months}`);
  const now = ctx.now();
  const prices = configPriceTable(ctx.config.store, ctx.config.prices);
  const manifest = openManifest(ctx, null);
  try {
    const objs = storedObjects(manifest);
    const byDataset = lines(objs, (o) => o.dataset, prices);
    const byClass = lines(objs, (o) => o.storageClass, prices);

    const staged = totalStaging(manifest.inFlightUploads().map((u) => uploadStaging(manifest, u, prices)));
    const staging = { parts: staged.parts, bytes: staged.bytes, monthly: staged.monthly, daily: staged.daily };

    // Scheduled deletions end an object's storage at its notBefore.
    const schedule = deletionSchedule(manifest, ctx.config.retention, prices, now);
    const endsAt = new Map<string, Date>();
    for (const d of [...schedule.due, ...schedule.later]) endsAt.set(d.key, d.notBefore > now.toISOString() ? new Date(d.notBefore) : now);
    const projected: CostObject[] = objs.map((o) => ({ ...o, ...(endsAt.has(o.key) ? { deletedAt: endsAt.get(o.key)! } : {}) }));
    const scheduledObjs = objs.filter((o) => endsAt.has(o.key));

    const since = addDays(now, -90);
    // Growth is what incrementals added lately; a full (first push, re-base) re-stores data already there.
    const recent = objs.filter((o) => o.incremental && o.uploadedAt && o.uploadedAt.getTime() > since.getTime() && !endsAt.has(o.key));
    const recentGrowthBytesPerMonth = (recent.reduce((n, o) => n + o.bytes, 0) * DAYS_PER_MONTH) / 90;
    const recentObjectsPerMonth = (recent.length * DAYS_PER_MONTH) / 90;
    const cls = costClass(ctx.config.store.dataStorageClass);

    const projection: ProjectionMonth[] = [];
    for (let m = 1; m <= months; m++) {
      const from = addDays(now, DAYS_PER_MONTH * (m - 1));
      const to = addDays(now, DAYS_PER_MONTH * m);
      const existing = storageCostBetween(projected, prices, from, to);
      // Pushes at the recent rate add G bytes a month, spread over the month:
      // month m stores (m − ½)·G on average. Data rate only (per-object overhead is noise here).
      const growth = gb((m - 0.5) * recentGrowthBytesPerMonth) * storagePrice(prices, cls);
      projection.push({ month: m, from: from.toISOString(), existing, growth, total: existing + growth });
    }
    return {
      at: now.toISOString(),
      monthly: monthlyStorageCost(objs, prices).total + staging.monthly,
      byDataset,
      byClass,
      staging,
      scheduledDeletions: {
        objects: scheduledObjs.length,
        bytes: scheduledObjs.reduce((n, o) => n + o.bytes, 0),
        monthlySaving: monthlyStorageCost(scheduledObjs, prices).total,
        lastNotBefore: schedule.later[schedule.later.length - 1]?.notBefore ?? null,
      },
      recentGrowthBytesPerMonth,
      recentObjectsPerMonth,
      projection,
      projectionTotal: projection.reduce((n, p) => n + p.total, 0),
      priceTable: { asOf: prices.asOf, region: prices.region, source: prices.source, provider: prices.provider },
      warnings: priceTableWarnings(prices, now),
    };
  } finally {
    manifest.close();
  }
}
