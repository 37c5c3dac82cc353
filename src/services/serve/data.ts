/**
 * What `zbk serve` shows: the results of `status()`, `costReport()`,
 * `restoreStatus()` and `costCompare()` exactly as their `--json` prints them (one source of
 * truth: the page renders these objects, it never recomputes a figure),
 * plus three things those results do not carry, each derived from the
 * manifest with the same functions the services use:
 *
 * - `history`: stored bytes and the monthly run rate at each push time
 *   (from the stored volumes' upload times, priced by `monthlyStorageCost`,
 *   the function `status` and `cost` price with). Volumes already deleted
 *   are not in the manifest's stored set, so the curve shows what is stored
 *   now, as it accumulated.
 * - `events`: recent pushes (the chains' push times), failed pushes and
 *   hook results (manifest events).
 * - `ages`: each dataset's last-push age and its colour against --max-age.
 *
 * Read-only: never `restorePlan` (it saves a job), nothing that takes a lock.
 */
import { configPriceTable } from '../../cost/providers/index.js';
import { monthlyStorageCost } from '../../cost/model.js';
import { ZbkError } from '../../errors.js';
import { costReport, type CostResult } from '../cost.js';
import { costCompare, type CostCompareResult } from '../cost-compare.js';
import { openManifest, type ServiceContext } from '../context.js';
import { restoreStatus, type RestoreStatusResult } from '../restore/status.js';
import { costObjectsOf, status, type StatusResult } from '../status.js';

export type AgeColour = 'green' | 'amber' | 'red';

export interface DatasetAge {
  dataset: string;
  /** Seconds since the last push, or null when there was none. */
  seconds: number | null;
  colour: AgeColour;
  /** Why it is not green, for the tooltip; null when green. */
  reason: string | null;
}

export interface HistoryPoint {
  /** ISO time (an upload time, and `now` last). */
  at: string;
  storedBytes: number;
  /** USD per month of what was stored at `at`. */
  monthlyCost: number;
}

export interface PageEvent {
  at: string;
  kind: string;
  dataset: string | null;
  detail: unknown;
}

export interface RecentPush {
  dataset: string;
  kind: 'full' | 'incremental';
  snapshot: string;
  pushedAt: string;
  storedBytes: number;
}

export interface PageData {
  generatedAt: string;
  maxAgeSeconds: number;
  /** null when the service failed; its message is in `errors`. */
  status: StatusResult | null;
  cost: CostResult | null;
  restore: RestoreStatusResult | null;
  /** `zbk cost compare --json`; null when nothing is stored yet (or it failed: see `errors`). */
  compare: CostCompareResult | null;
  ages: DatasetAge[];
  history: HistoryPoint[];
  pushes: RecentPush[];
  /** Failed pushes (`push-failed`) and hook results (`hook-result`), newest first. */
  failures: PageEvent[];
  hooks: PageEvent[];
  errors: Record<string, string>;
}

const EVENT_LIMIT = 50;

/** green below maxAge, amber up to 2×, red beyond, or when never pushed, the chain is broken or the last push failed. */
export function ageColour(d: { dataset: string; lastPushAt: string | null; health: string }, lastFailureAt: string | null, maxAgeSeconds: number, now: Date): DatasetAge {
  const seconds = d.lastPushAt === null ? null : Math.max(0, Math.round((now.getTime() - Date.parse(d.lastPushAt)) / 1000));
  const red = (reason: string): DatasetAge => ({ dataset: d.dataset, seconds, colour: 'red', reason });
  if (seconds === null) return red('never pushed');
  if (d.health === 'broken') return red('chain broken');
  if (lastFailureAt !== null && lastFailureAt > d.lastPushAt!) return red('the last push failed');
  if (seconds > 2 * maxAgeSeconds) return red('older than twice --max-age');
  if (seconds >= maxAgeSeconds) return { dataset: d.dataset, seconds, colour: 'amber', reason: 'older than --max-age' };
  return { dataset: d.dataset, seconds, colour: 'green', reason: null };
}

function event(e: { at: Date; kind: string; dataset: string | null; detail: unknown }): PageEvent {
  return { at: e.at.toISOString(), kind: e.kind, dataset: e.dataset, detail: e.detail };
}

/** Stored bytes and monthly cost at each upload time, then at `now`. */
function history(ctx: ServiceContext, now: Date): { history: HistoryPoint[]; failures: PageEvent[]; hooks: PageEvent[] } {
  const prices = configPriceTable(ctx.config.store, ctx.config.prices);
  const manifest = openManifest(ctx, null);
  try {
    const objs = costObjectsOf(manifest);
    const times = [...new Set(objs.map((o) => o.uploadedAt?.getTime()).filter((t): t is number => t !== undefined))].sort((a, b) => a - b);
    const points = [...times.filter((t) => t < now.getTime()), now.getTime()].map((t) => {
      const at = new Date(t);
      const stored = objs.filter((o) => !o.uploadedAt || o.uploadedAt.getTime() <= t);
      return { at: at.toISOString(), storedBytes: stored.reduce((n, o) => n + o.bytes, 0), monthlyCost: monthlyStorageCost(objs, prices, at).total };
    });
    return {
      history: points,
      failures: manifest.eventsOfKind('push-failed', EVENT_LIMIT).map(event),
      hooks: manifest.eventsOfKind('hook-result', EVENT_LIMIT).map(event),
    };
  } finally {
    manifest.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Everything the page shows, built fresh per request (the manifest is small and local). */
export async function pageData(ctx: ServiceContext, maxAgeSeconds: number): Promise<PageData> {
  const now = ctx.now();
  const errors: Record<string, string> = {};
  const attempt = async <T>(name: string, f: () => T | Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (err) {
      errors[name] = message(err);
      return null;
    }
  };
  const st = await attempt('status', () => status(ctx));
  const cost = await attempt('cost', () => costReport(ctx));
  const restore = await attempt('restore', () => restoreStatus(ctx));
  // An empty repository has nothing to compare: that is not an error on the page.
  const compare = await attempt('compare', () => {
    try {
      return costCompare(ctx);
    } catch (err) {
      if (err instanceof ZbkError && err.code === 'NOTHING_STORED') return null;
      throw err;
    }
  });
  const h = await attempt('history', () => history(ctx, now));
  const failures = h?.failures ?? [];
  const lastFailure = (ds: string): string | null => failures.find((e) => e.dataset === ds)?.at ?? null;
  const pushes: RecentPush[] = (st?.datasets ?? [])
    .flatMap((d) => d.chain.filter((c) => c.pushedAt !== null).map((c) => ({ dataset: d.dataset, kind: c.kind, snapshot: c.to, pushedAt: c.pushedAt!, storedBytes: c.storedBytes })))
    .sort((a, b) => (a.pushedAt < b.pushedAt ? 1 : a.pushedAt > b.pushedAt ? -1 : 0))
    .slice(0, EVENT_LIMIT);
  return {
    generatedAt: now.toISOString(),
    maxAgeSeconds,
    status: st,
    cost,
    restore,
    compare,
    ages: (st?.datasets ?? []).map((d) => ageColour(d, lastFailure(d.dataset), maxAgeSeconds, now)),
    history: h?.history ?? [],
    pushes,
    failures,
    hooks: h?.hooks ?? [],
    errors,
  };
}
