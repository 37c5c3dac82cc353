/**
 * Deterministic long-run cost simulation of consolidation policies, for
 * docs/COSTS.md (`node scripts/simulate-costs.mjs`).
 *
 * Pure. Workload: a library of `initialGB` growing `growthGBPerMonth` with
 * `churnPerMonth` of it rewritten every month, pushed daily. Daily pushes
 * are aggregated per 30-day month into one stream of `pushesPerMonth`
 * volumes (one object per daily push, the same object count and 40 KB
 * overheads as real daily pushes; all dated at the month's start, which
 * shifts ages by < 30 days). Policies act once per month, after the push.
 * Retention keeps only the latest snapshot (zbk's default `keep_last = 1`).
 */
import { addDays, earlyDeletionCharge, objectMonthlyCost, uploadCost } from '../cost/model.js';
import { BYTES_PER_GB, DAYS_PER_MONTH, MS_PER_DAY, type PriceTable, type StorageClass } from '../cost/prices.js';
import { chainTo, planConsolidation, type ConsolidationStream, type ConsolidationTiming } from './consolidate-plan.js';
import { planRestore, type RestorePlan, type RestoreVolume } from './restore-plan.js';

/** GB of each month's free egress left for other use by the simulated restore (the planner's default). */
const RESTORE_RESERVE_GB = 10;
/**
 * Month ends over which the restore is also averaged (every third of the
 * last 24): a restore can come at any point of a chain's life, and the one
 * at the very end falls wherever the policy's cycle happens to be (just
 * after a full or just before one).
 */
export const RESTORE_SAMPLE_MONTHS = 24;
const RESTORE_SAMPLE_STEP = 3;

export interface Workload {
  months: number;
  initialGB: number;
  growthGBPerMonth: number;
  /** Fraction of the library rewritten per month (appears in incrementals, never shrinks the library). */
  churnPerMonth: number;
  pushesPerMonth: number;
  volumeBytes: number;
  partBytes: number;
  storageClass: StorageClass;
}

export const DEFAULT_WORKLOAD: Workload = {
  months: 120,
  initialGB: 500,
  growthGBPerMonth: 10,
  churnPerMonth: 0.01,
  pushesPerMonth: 30,
  volumeBytes: 4 * 1024 ** 3,
  partBytes: 64 * 1024 ** 2,
  storageClass: 'DEEP_ARCHIVE',
};

export type Policy =
  | { kind: 'never' }
  /** A new full every `n` incremental pushes, old chain deleted at once (zfs_uploader-like). */
  | { kind: 'every-n'; n: number }
  /** A new full when the last is `months` old, old chain deleted at once (zfsbackup-go-like). */
  | { kind: 'max-age'; months: number }
  /** zbk: consolidate when the planner recommends (its default interval timing, or `payback`); never delete early. */
  | { kind: 'zbk'; horizonMonths: number; timing?: ConsolidationTiming };

export interface SimulationResult {
  policy: string;
  storage: number;
  requests: number;
  earlyDeletion: number;
  /** storage + requests + earlyDeletion over the whole run, USD. */
  total: number;
  fulls: number;
  storedGBAtEnd: number;
  objectsAtEnd: number;
  /** Restore of the latest snapshot at the end (free mode, Bulk; in one month where the provider has no free egress). */
  restoreGB: number;
  restoreMonths: number;
  restoreCost: number;
  /** Cost of the same restore in one month (asap). */
  restoreAsapCost: number;
  /** Mean cost of the free-mode restore of the latest snapshot at every third of the last RESTORE_SAMPLE_MONTHS month ends. */
  restoreCostMean: number;
}

export function policyName(p: Policy): string {
  switch (p.kind) {
    case 'never':
      return 'never consolidate';
    case 'every-n':
      return `new full every ${p.n} incrementals`;
    case 'max-age':
      return `new full when last is ${p.months} months old`;
    case 'zbk':
      return p.timing === 'payback' ? `zbk planner at first payback (horizon ${p.horizonMonths} months)` : `zbk planner (horizon ${p.horizonMonths} months)`;
  }
}

/** Run one policy over the workload. `start` fixes the calendar (deterministic). */
export function simulate(w: Workload, policy: Policy, prices: PriceTable, start: Date): SimulationResult {
  const cls = w.storageClass;
  let streams: ConsolidationStream[] = [];
  const pending = new Map<string, Date>(); // zbk: key → notBefore
  let storage = 0;
  let requests = 0;
  let earlyDeletion = 0;
  let fulls = 0;
  let lastFullMonth = 0;
  let incSinceFull = 0;

  const guid = (m: number): string => `g${m}`;
  const partsOf = (bytes: number): number => Math.max(1, Math.ceil(bytes / w.partBytes));

  const pushFull = (m: number, at: Date, bytes: number): void => {
    const volumes = [];
    for (let left = bytes, i = 0; left > 0; left -= w.volumeBytes, i++) {
      volumes.push({ key: `full${m}/${i}`, bytes: Math.min(left, w.volumeBytes), uploadedAt: at });
    }
    const parts = volumes.reduce((a, v) => a + partsOf(v.bytes), 0);
    requests += uploadCost({ volumes: volumes.length, parts, storageClass: cls }, prices).total;
    streams.push({ streamId: `full${m}`, kind: 'full', fromGuid: null, toGuid: guid(m), storedBytes: bytes, volumes, storageClass: cls });
    fulls++;
    lastFullMonth = m;
    incSinceFull = 0;
  };

  const deleteKeys = (keys: Set<string>, at: Date, chargeEarly: boolean): void => {
    streams = streams
      .map((s) => {
        const gone = s.volumes.filter((v) => keys.has(v.key));
        if (chargeEarly) {
          for (const v of gone) earlyDeletion += earlyDeletionCharge({ bytes: v.bytes, storageClass: cls }, (at.getTime() - v.uploadedAt.getTime()) / MS_PER_DAY, prices);
        }
        return gone.length === 0 ? s : { ...s, volumes: s.volumes.filter((v) => !keys.has(v.key)) };
      })
      .filter((s) => s.volumes.length > 0);
  };

  // The restore of the snapshot of month `m` as the store holds it at `at`: in one month (asap), and the cheapest.
  const restoreOf = (m: number, at: Date): { free: () => RestorePlan; asap: () => RestorePlan } => {
    const chain = chainTo(guid(m), streams) ?? [];
    const volumes: RestoreVolume[] = chain.flatMap((s, si) =>
      s.volumes.map((v, vi) => ({ key: v.key, streamId: s.streamId, streamIndex: si, volumeIndex: vi, bytes: v.bytes, plaintextBytes: v.bytes })),
    );
    const asap = (): RestorePlan => planRestore(volumes, at, { mode: 'asap' }, prices);
    // A provider with no free egress beyond the reserve (GCS, B2): the cheapest restore is the one-month one.
    const free = (): RestorePlan => (prices.freeEgressGBPerMonth > RESTORE_RESERVE_GB ? planRestore(volumes, at, { mode: 'free', reserveGB: RESTORE_RESERVE_GB }, prices) : asap());
    return { free, asap };
  };
  const sampledRestoreCosts: number[] = [];
  // A stream's monthly storage, worked out once per version of it (deleteKeys makes a new object when its volumes change).
  const monthly = new WeakMap<ConsolidationStream, number>();
  const monthlyOf = (s: ConsolidationStream): number => {
    let c = monthly.get(s);
    if (c === undefined) {
      c = s.volumes.reduce((n, v) => n + objectMonthlyCost({ bytes: v.bytes, storageClass: cls }, prices).total, 0);
      monthly.set(s, c);
    }
    return c;
  };

  let libraryGB = w.initialGB;
  for (let m = 0; m < w.months; m++) {
    const at = addDays(start, DAYS_PER_MONTH * m);
    // Deletions that have become free.
    const due = new Set([...pending].filter(([, d]) => d.getTime() <= at.getTime()).map(([k]) => k));
    if (due.size > 0) {
      deleteKeys(due, at, true);
      for (const k of due) pending.delete(k);
    }

    if (m === 0) {
      pushFull(0, at, Math.round(libraryGB * BYTES_PER_GB));
    } else {
      const incGB = w.growthGBPerMonth + w.churnPerMonth * libraryGB;
      libraryGB += w.growthGBPerMonth;
      const perPush = Math.round((incGB * BYTES_PER_GB) / w.pushesPerMonth);
      const volumes = Array.from({ length: w.pushesPerMonth }, (_, i) => ({ key: `inc${m}/${i}`, bytes: perPush, uploadedAt: at }));
      // One push a day: its volume's multipart requests and its 2 metadata PUTs.
      requests += uploadCost({ volumes: w.pushesPerMonth, parts: w.pushesPerMonth * partsOf(perPush), storageClass: cls, metadataPuts: 2 * w.pushesPerMonth }, prices).total;
      streams.push({ streamId: `inc${m}`, kind: 'incremental', fromGuid: guid(m - 1), toGuid: guid(m), storedBytes: perPush * w.pushesPerMonth, volumes, storageClass: cls });
      incSinceFull += w.pushesPerMonth;

      const fullBytes = Math.round(libraryGB * BYTES_PER_GB);
      const naive = (policy.kind === 'every-n' && incSinceFull >= policy.n) || (policy.kind === 'max-age' && m - lastFullMonth >= policy.months);
      if (naive) {
        pushFull(m, at, fullBytes);
        const keep = new Set(streams.filter((s) => s.streamId === `full${m}`).flatMap((s) => s.volumes.map((v) => v.key)));
        const drop = new Set(streams.flatMap((s) => s.volumes.map((v) => v.key)).filter((k) => !keep.has(k)));
        deleteKeys(drop, at, true);
      } else if (policy.kind === 'zbk') {
        const live = streams.map((s) => ({ ...s, volumes: s.volumes.filter((v) => !pending.has(v.key)) })).filter((s) => s.volumes.length > 0);
        const plan = planConsolidation({
          dataset: 'sim',
          streams: live,
          keptGuids: [guid(m)],
          latestGuid: guid(m),
          newFullBytes: fullBytes,
          now: at,
          horizonMonths: policy.horizonMonths,
          ...(policy.timing ? { timing: policy.timing } : {}),
          prices,
          volumeBytes: w.volumeBytes,
          partBytes: w.partBytes,
        });
        const now = new Set(plan.prune.deleteNow.map((d) => d.key));
        for (const d of plan.prune.deleteLater) pending.set(d.key, new Date(d.notBefore));
        if (plan.recommend) {
          pushFull(m, at, fullBytes);
          for (const d of plan.deleteNow) now.add(d.key);
          for (const d of plan.deleteLater) pending.set(d.key, new Date(d.notBefore));
        }
        if (now.size > 0) deleteKeys(now, at, true);
      }
    }
    for (const s of streams) storage += monthlyOf(s);
    if (m >= w.months - RESTORE_SAMPLE_MONTHS && (w.months - 1 - m) % RESTORE_SAMPLE_STEP === 0) sampledRestoreCosts.push(restoreOf(m, addDays(at, DAYS_PER_MONTH)).free().totalCost);
  }

  const last = restoreOf(w.months - 1, addDays(start, DAYS_PER_MONTH * w.months));
  const free = last.free();
  const asap = last.asap();
  const stored = streams.flatMap((s) => s.volumes);
  return {
    policy: policyName(policy),
    storage,
    requests,
    earlyDeletion,
    total: storage + requests + earlyDeletion,
    fulls,
    storedGBAtEnd: stored.reduce((a, v) => a + v.bytes, 0) / BYTES_PER_GB,
    objectsAtEnd: stored.length,
    restoreGB: free.totalBytes / BYTES_PER_GB,
    restoreMonths: free.months.length,
    restoreCost: free.totalCost,
    restoreAsapCost: asap.totalCost,
    restoreCostMean: sampledRestoreCosts.reduce((a, b) => a + b, 0) / sampledRestoreCosts.length,
  };
}

/** The policies compared in docs/COSTS.md. */
export const DEFAULT_POLICIES: Policy[] = [
  { kind: 'never' },
  { kind: 'every-n', n: 30 },
  { kind: 'every-n', n: 90 },
  { kind: 'max-age', months: 6 },
  { kind: 'zbk', horizonMonths: 24 },
];

/**
 * Every fixed policy the zbk planner is measured against in docs/COSTS.md:
 * never, a new full every 1, 2 or 3 months of daily pushes, and a new full
 * when the last is 2 … 24 months old.
 */
export const FIXED_POLICY_GRID: Policy[] = [
  { kind: 'never' },
  ...[30, 60, 90].map((n): Policy => ({ kind: 'every-n', n })),
  ...Array.from({ length: 23 }, (_, k): Policy => ({ kind: 'max-age', months: k + 2 })),
];

/** Markdown table of results. */
export function simulationTable(results: readonly SimulationResult[]): string {
  const head = `| policy | fulls | storage | requests | early del. | 10-y total | stored at end | restore size | restore months (free) | restore $ (free) | restore $ (asap) | total + free restore | restore $ (free, mean over the last ${RESTORE_SAMPLE_MONTHS} months) |`;
  const sep = '|' + ' --- |'.repeat(13);
  const $ = (x: number): string => `$${x.toFixed(2)}`;
  const rows = results.map(
    (r) =>
      `| ${r.policy} | ${r.fulls} | ${$(r.storage)} | ${$(r.requests)} | ${$(r.earlyDeletion)} | ${$(r.total)} | ${r.storedGBAtEnd.toFixed(0)} GB / ${r.objectsAtEnd} obj | ${r.restoreGB.toFixed(0)} GB | ${r.restoreMonths} | ${$(r.restoreCost)} | ${$(r.restoreAsapCost)} | ${$(r.total + r.restoreCost)} | ${$(r.restoreCostMean)} |`,
  );
  return [head, sep, ...rows].join('\n');
}
