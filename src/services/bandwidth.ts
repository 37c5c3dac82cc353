/**
 * The bandwidth limiters of a run: `[upload] limit` (or `--limit-upload`)
 * paces every part a push or consolidation sends, `[restore] limit` (or
 * `--limit-download`) every ranged GET of `restore run` and `verify --deep`.
 *
 * One limiter — one token bucket — per limit in force, shared by all the
 * parts in flight and by every stream, volume and `--wait` step of the run
 * (a push's context swapped for its lease-guarded copy keeps the same
 * config, hence the same limiter). The schedule is read by the context's
 * clock (`ctx.now`, local time of day); see src/pipeline/bandwidth.ts.
 */
import { describeBandwidth, formatRate, rateAt, type BandwidthLimit } from '../config/bandwidth.js';
import { limiterFor, systemLimiterClock, type BandwidthLimiter } from '../pipeline/bandwidth.js';
import type { ServiceContext } from './context.js';

const limiters = new WeakMap<BandwidthLimit, BandwidthLimiter>();

function limiterOf(ctx: ServiceContext, limit: BandwidthLimit | undefined, what: string): BandwidthLimiter | undefined {
  if (limit === undefined) return undefined;
  let l = limiters.get(limit);
  if (!l) {
    l = limiterFor(limit, systemLimiterClock(ctx.now));
    if (!l) return undefined;
    limiters.set(limit, l);
    const rate = rateAt(limit, ctx.now());
    const now = rate === null ? `${what} not limited now` : `${what} limited to ${formatRate(rate)}`;
    ctx.log.info(limit.windows.length > 1 ? `${now} (schedule: ${describeBandwidth(limit)}, local time)` : now);
  }
  return l;
}

/** The limiter of the sealed bytes this run sends, or undefined (no limit). */
export function uploadPacer(ctx: ServiceContext): BandwidthLimiter | undefined {
  return limiterOf(ctx, ctx.config.upload.limit, 'upload');
}

/** The limiter of the sealed bytes this run receives, or undefined (no limit). */
export function downloadPacer(ctx: ServiceContext): BandwidthLimiter | undefined {
  return limiterOf(ctx, ctx.config.restore.limit, 'download');
}
