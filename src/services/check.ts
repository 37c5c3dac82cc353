/**
 * `zbk check`: one-line health verdict for cron, Nagios-style monitors and
 * healthchecks.io. Reads only the local manifest: no passphrase, no store
 * access, so it stays cheap enough to run every few minutes and still says
 * something useful when the network is down.
 *
 * A dataset fails when its newest pushed snapshot was created longer ago
 * than `maxAge` (snapshot time, not push time: a push that keeps re-sending
 * an old snapshot is still a stale backup), when it has never been pushed,
 * or when its last push attempt failed after the last successful one.
 */
import ms from 'ms';
import { UsageError } from '../errors.js';
import type { Manifest } from '../manifest/manifest.js';
import { openManifest, type ServiceContext } from './context.js';
import { sendWebhook } from './hooks.js';

export interface CheckOptions {
  /** Maximum age of the newest pushed snapshot, in seconds. */
  maxAgeSeconds: number;
  /** Datasets to check; default: configured ones, else every dataset the manifest knows. */
  datasets?: string[];
  /** Also send the configured success/failure webhook with the line (for healthchecks.io and friends). */
  notify?: boolean;
}

export interface DatasetCheck {
  dataset: string;
  ok: boolean;
  /** Short name of the newest pushed snapshot, or null when never pushed. */
  latestPushed: string | null;
  /** ISO creation time of that snapshot. */
  snapshotCreated: string | null;
  ageSeconds: number | null;
  /** ISO time the newest complete stream finished uploading. */
  lastPushAt: string | null;
  /** The newest failed push after the last successful one. */
  lastFailure: { at: string; message: string } | null;
  /** Why the dataset fails, or null. */
  reason: string | null;
}

export interface CheckResult {
  ok: boolean;
  /** The one line to print (monitors show it as the status text). */
  line: string;
  maxAgeSeconds: number;
  datasets: DatasetCheck[];
  /** Outcome of the webhook (`notify`), without its URL; null when not sent. */
  webhook: { ok: boolean; what: string; detail?: string } | null;
}

/**
 * Parse "26h", "2d", "90m", "3600" (seconds) into seconds.
 * @throws UsageError for anything else or a non-positive duration.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  const millis = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : (ms(trimmed as ms.StringValue) as number | undefined);
  if (typeof millis !== 'number' || !Number.isFinite(millis) || millis <= 0) {
    throw new UsageError(`not a duration: ${JSON.stringify(text)} (use e.g. 26h, 2d, 90m)`, 'BAD_DURATION');
  }
  return Math.round(millis / 1000);
}

/** "1d 2h", "3h 5m", "42s": short, human, for the one-line output. */
export function formatAge(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${Math.max(0, Math.floor(seconds))}s`;
}

function eventMessage(detail: unknown): string {
  const m = (detail as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m.split('\n')[0]!.slice(0, 200) : 'unknown error';
}

/** Check one dataset against the manifest. Pure apart from reading `manifest`. */
export function checkDataset(manifest: Manifest, dataset: string, maxAgeSeconds: number, now: Date): DatasetCheck {
  const last = manifest.lastPushedSnapshot(dataset);
  const complete = manifest.streams(dataset).filter((s) => s.state === 'complete' && s.completedAt);
  const lastPushAt = complete.reduce<Date | null>((acc, s) => (acc === null || s.completedAt! > acc ? s.completedAt : acc), null);
  // events() is newest first; 1000 is plenty to find the newest failure of one dataset.
  const failure = manifest.events(1000).find((e) => e.kind === 'push-failed' && e.dataset === dataset);
  const lastFailure = failure && (lastPushAt === null || failure.at > lastPushAt) ? { at: failure.at.toISOString(), message: eventMessage(failure.detail) } : null;

  const base: DatasetCheck = {
    dataset,
    ok: true,
    latestPushed: last?.name ?? null,
    snapshotCreated: last ? new Date(last.creation * 1000).toISOString() : null,
    ageSeconds: last ? Math.max(0, Math.round(now.getTime() / 1000 - last.creation)) : null,
    lastPushAt: lastPushAt?.toISOString() ?? null,
    lastFailure,
    reason: null,
  };
  if (lastFailure) return { ...base, ok: false, reason: `${dataset}: last push failed at ${lastFailure.at}: ${lastFailure.message}` };
  if (!last) return { ...base, ok: false, reason: `${dataset}: never pushed` };
  if (base.ageSeconds! > maxAgeSeconds) {
    return { ...base, ok: false, reason: `${dataset}: newest pushed snapshot @${last.name} is ${formatAge(base.ageSeconds!)} old (limit ${formatAge(maxAgeSeconds)})` };
  }
  return base;
}

/** Run the check over the configured (or known) datasets. */
export async function check(ctx: ServiceContext, opts: CheckOptions): Promise<CheckResult> {
  const result = evaluate(ctx, opts);
  if (!opts.notify) return result;
  const w = await sendWebhook(ctx.config.hooks, result.ok, `zbk check: ${result.line}`);
  if (w && !w.ok) ctx.log.warn(`${w.what} failed (${w.detail ?? ''})`);
  return { ...result, webhook: w };
}

function evaluate(ctx: ServiceContext, opts: CheckOptions): CheckResult {
  const manifest = openManifest(ctx, null);
  try {
    const now = ctx.now();
    const names = opts.datasets?.length
      ? opts.datasets
      : ctx.config.datasets.length > 0
        ? ctx.config.datasets.map((d) => d.name)
        : manifest.datasets().map((d) => d.name);
    const datasets = names.map((n) => checkDataset(manifest, n, opts.maxAgeSeconds, now));
    const failed = datasets.filter((d) => !d.ok);
    let line: string;
    if (names.length === 0) line = 'CRITICAL: no datasets configured or pushed';
    else if (failed.length > 0) line = `CRITICAL: ${failed.map((d) => d.reason).join('; ')}`;
    else {
      const oldest = Math.max(...datasets.map((d) => d.ageSeconds ?? 0));
      line = `OK: ${datasets.length} dataset(s) backed up, oldest newest-snapshot ${formatAge(oldest)} old (limit ${formatAge(opts.maxAgeSeconds)})`;
    }
    return { ok: names.length > 0 && failed.length === 0, line, maxAgeSeconds: opts.maxAgeSeconds, datasets, webhook: null };
  } finally {
    manifest.close();
  }
}
