/**
 * `zbk check`: one-line health verdict for cron, Nagios/Icinga-style
 * monitors and healthchecks.io, in the monitoring-plugins convention:
 * exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and one line
 *
 *   ZBK <STATUS> - <text> | <perfdata>
 *
 * with perfdata items `label=value[UOM];[warn];[crit];[min];[max]`.
 * Reads the local manifest, the push status file of the state dir and the
 * source's snapshot list (zfs): no passphrase, no store access, so it stays
 * cheap enough to run every few minutes and still says something useful
 * when the network is down.
 *
 * Per dataset:
 * - CRITICAL: its last push failed after the last successful one (recorded
 *   in the state dir by every failed push, also one that failed before the
 *   upload; see ./push-status.ts — or a `push-failed` manifest event); it
 *   was never pushed; its newest pushed snapshot was created longer ago than
 *   `maxAge` (snapshot time, not push time: a push that keeps re-sending an
 *   old snapshot is still a stale backup); verify or a restore recorded
 *   damage in the chain of its newest pushed snapshot (./chain-health.ts),
 *   or the manifest cannot resolve that chain.
 * - WARNING: the newest pushed snapshot is older than `warnAge`; the newest
 *   snapshot on the source (matching the dataset's snapshot_pattern) is
 *   older than `maxSnapshotAge`, or there is none — the snapshot tool
 *   (sanoid, zfs-auto-snapshot, a timer) stopped, and pushes succeed with
 *   "nothing to push" until the backup goes stale.
 * - UNKNOWN: zfs could not list the source's snapshots (only when nothing
 *   worse was found) or the push status file is unreadable.
 * The verdict is the worst over the datasets, CRITICAL > WARNING > UNKNOWN
 * > OK (monitoring-plugins' max_state_alt), so an unavailable zfs never
 * masks a CRITICAL. A config that cannot be read is UNKNOWN (the command
 * layer, commands/check.ts); so is a manifest that cannot be read, unless
 * the push status file records a failed push: that is CRITICAL from the
 * file alone. A dataset named on the command line that is neither
 * configured nor pushed (a typo) is UNKNOWN (UNKNOWN_DATASET), not
 * "never pushed".
 */
import ms from 'ms';
import { UsageError } from '../errors.js';
import type { Manifest } from '../manifest/manifest.js';
import { chainHealth } from './chain-health.js';
import { assertKnownDataset } from './known-dataset.js';
import { openManifest, type ServiceContext } from './context.js';
import { sendWebhook } from './hooks.js';
import { datasetPushStatus, readPushStatus, type PushStatus } from './push-status.js';
import { sourceListingFor } from './push/sources.js';

export type CheckStatus = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';

/** monitoring-plugins exit codes. */
export const CHECK_EXIT: Record<CheckStatus, 0 | 1 | 2 | 3> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

const SEVERITY: Record<CheckStatus, number> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };

/** The worse of two states: CRITICAL > WARNING > UNKNOWN > OK. */
export function worstStatus(a: CheckStatus, b: CheckStatus): CheckStatus {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}

export interface CheckOptions {
  /** Maximum age of the newest pushed snapshot, in seconds (CRITICAL beyond). */
  maxAgeSeconds: number;
  /** WARNING beyond this age of the newest pushed snapshot; null: no warning level. */
  warnAgeSeconds?: number | null;
  /**
   * WARNING when the newest snapshot on the source is older than this, in
   * seconds; null: do not look at the source. Default: `maxAgeSeconds`.
   */
  maxSnapshotAgeSeconds?: number | null;
  /** Datasets to check; default: configured ones, else every dataset the manifest knows. */
  datasets?: string[];
  /** Also send the configured success/failure webhook with the line (for healthchecks.io and friends). */
  notify?: boolean;
}

/** One perfdata item: `label=value[uom];[warn];[crit];[min];[max]`. */
export interface PerfDatum {
  label: string;
  value: number;
  uom: '' | 's';
  warn: number | null;
  crit: number | null;
  min: number | null;
  max: number | null;
}

export interface CheckFinding {
  status: Exclude<CheckStatus, 'OK'>;
  text: string;
}

export interface SourceCheck {
  /** Short name of the newest snapshot on the source (matching snapshot_pattern), null when none or unknown. */
  newestSnapshot: string | null;
  /** Its ISO creation time. */
  created: string | null;
  ageSeconds: number | null;
  /** Why the source could not be looked at (zfs failed), or null. */
  error: string | null;
}

export interface DatasetCheck {
  dataset: string;
  status: CheckStatus;
  ok: boolean;
  /** Short name of the newest pushed snapshot, or null when never pushed. */
  latestPushed: string | null;
  /** ISO creation time of that snapshot. */
  snapshotCreated: string | null;
  ageSeconds: number | null;
  /** ISO time the newest complete stream finished uploading. */
  lastPushAt: string | null;
  /** ISO time of the last push that succeeded (also with nothing to push), as recorded. */
  lastSuccessAt: string | null;
  /** The newest failed push after the last successful one. */
  lastFailure: { at: string; message: string; code: string | null } | null;
  /** Can the newest pushed snapshot be restored, per the manifest (recorded damage, resolvable chain)? */
  chain: { ok: boolean; reason: string | null; remedy: string | null };
  /** The newest snapshot on the source; null when not looked at. */
  source: SourceCheck | null;
  /** What is wrong, worst first. */
  findings: CheckFinding[];
  /** The worst finding's text, or null. */
  reason: string | null;
}

export interface CheckResult {
  status: CheckStatus;
  /** Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
  code: 0 | 1 | 2 | 3;
  ok: boolean;
  /** The text between "ZBK <STATUS> - " and the perfdata. */
  message: string;
  perfdata: PerfDatum[];
  /** The one line to print (monitors show it as the status text): `ZBK <STATUS> - <message> | <perfdata>`. */
  line: string;
  maxAgeSeconds: number;
  warnAgeSeconds: number | null;
  maxSnapshotAgeSeconds: number | null;
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

/**
 * A perfdata label, quoted when it holds a space, `=` or `'` (a btrfs path
 * may hold `=` and `'`; ZFS names cannot): in single quotes, a `'` doubled,
 * as the monitoring-plugins guidelines say.
 */
function perfLabel(label: string): string {
  return /[\s='"]/.test(label) ? `'${label.replaceAll("'", "''")}'` : label;
}

/** `label=value[uom];[warn];[crit];[min];[max]`, trailing empty fields dropped. */
export function formatPerfDatum(p: PerfDatum): string {
  const fields = [p.warn, p.crit, p.min, p.max].map((v) => (v === null ? '' : String(v)));
  while (fields.length > 0 && fields[fields.length - 1] === '') fields.pop();
  return [`${perfLabel(p.label)}=${p.value}${p.uom}`, ...fields].join(';');
}

/** `ZBK <STATUS> - <message>[ | <perfdata>]`, one line. */
export function formatCheckLine(status: CheckStatus, message: string, perfdata: readonly PerfDatum[]): string {
  const text = message.replace(/\s*[\r\n|]+\s*/g, ' ');
  return `ZBK ${status} - ${text}${perfdata.length > 0 ? ` | ${perfdata.map(formatPerfDatum).join(' ')}` : ''}`;
}

function eventMessage(detail: unknown): string {
  const m = (detail as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m.split('\n')[0]!.slice(0, 200) : 'unknown error';
}

function eventCode(detail: unknown): string | null {
  const c = (detail as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : null;
}

export interface DatasetCheckInput {
  maxAgeSeconds: number;
  warnAgeSeconds?: number | null;
  /** The push status file's content (empty when none). */
  pushStatus?: PushStatus;
  /** The newest source snapshot; undefined: not looked at. */
  source?: SourceCheck;
  maxSnapshotAgeSeconds?: number | null;
}

/** Check one dataset against the manifest and what else was looked at. Pure apart from reading `manifest`. */
export function checkDataset(manifest: Manifest, dataset: string, input: DatasetCheckInput, now: Date): DatasetCheck {
  const { maxAgeSeconds } = input;
  const warnAge = input.warnAgeSeconds ?? null;
  const last = manifest.lastPushedSnapshot(dataset);
  const complete = manifest.streams(dataset).filter((s) => s.state === 'complete' && s.completedAt);
  const lastPushAt = complete.reduce<Date | null>((acc, s) => (acc === null || s.completedAt! > acc ? s.completedAt : acc), null);
  const recorded = datasetPushStatus(input.pushStatus ?? { v: 1, datasets: {} }, dataset);
  const lastSuccess = [lastPushAt, recorded.lastSuccess ? new Date(recorded.lastSuccess) : null].reduce<Date | null>(
    (acc, d) => (d && !Number.isNaN(d.getTime()) && (acc === null || d > acc) ? d : acc),
    null,
  );
  // events() is newest first; 1000 is plenty to find the newest failure of one dataset.
  const event = manifest.events(1000).find((e) => e.kind === 'push-failed' && e.dataset === dataset);
  const failures = [
    ...(event ? [{ at: event.at, message: eventMessage(event.detail), code: eventCode(event.detail) }] : []),
    ...(recorded.lastFailure ? [{ at: new Date(recorded.lastFailure.at), message: recorded.lastFailure.message, code: recorded.lastFailure.code }] : []),
  ].filter((f) => !Number.isNaN(f.at.getTime()));
  const newestFailure = failures.reduce<(typeof failures)[number] | null>((acc, f) => (acc === null || f.at > acc.at ? f : acc), null);
  const lastFailure =
    newestFailure && (lastSuccess === null || newestFailure.at > lastSuccess)
      ? { at: newestFailure.at.toISOString(), message: newestFailure.message, code: newestFailure.code }
      : null;
  const ageSeconds = last ? Math.max(0, Math.round(now.getTime() / 1000 - last.creation)) : null;

  const findings: CheckFinding[] = [];
  let chain: DatasetCheck['chain'] = { ok: true, reason: null, remedy: null };
  if (lastFailure) findings.push({ status: 'CRITICAL', text: `${dataset}: last push failed at ${lastFailure.at}: ${lastFailure.message}` });
  if (!last) findings.push({ status: 'CRITICAL', text: `${dataset}: never pushed` });
  else {
    if (ageSeconds! > maxAgeSeconds) {
      findings.push({ status: 'CRITICAL', text: `${dataset}: newest pushed snapshot @${last.name} is ${formatAge(ageSeconds!)} old (limit ${formatAge(maxAgeSeconds)})` });
    } else if (warnAge !== null && ageSeconds! > warnAge) {
      findings.push({ status: 'WARNING', text: `${dataset}: newest pushed snapshot @${last.name} is ${formatAge(ageSeconds!)} old (warning at ${formatAge(warnAge)})` });
    }
    // Damage verify or a restore recorded in the chain of the newest pushed snapshot (./chain-health.ts),
    // else a chain the manifest itself cannot resolve.
    const health = chainHealth(manifest, dataset);
    if (!health.ok) {
      chain = { ok: false, reason: health.reason, remedy: health.remedy };
      findings.push({ status: 'CRITICAL', text: health.reason ?? `${dataset}: the chain of @${last.name} is damaged` });
    } else {
      try {
        manifest.chainFor(dataset, last.guid);
      } catch (err) {
        const reason = `${dataset}: ${(err as Error).message.split('\n')[0]}`;
        chain = { ok: false, reason, remedy: null };
        findings.push({ status: 'CRITICAL', text: reason });
      }
    }
  }
  const source = input.source ?? null;
  const maxSnap = input.maxSnapshotAgeSeconds ?? null;
  if (source && maxSnap !== null) {
    if (source.error) findings.push({ status: 'UNKNOWN', text: `${dataset}: cannot look at the source's snapshots: ${source.error}` });
    else if (source.newestSnapshot === null) findings.push({ status: 'WARNING', text: `${dataset}: no snapshot on the source to push` });
    else if (source.ageSeconds! > maxSnap) {
      findings.push({
        status: 'WARNING',
        text: `${dataset}: newest snapshot on the source @${source.newestSnapshot} is ${formatAge(source.ageSeconds!)} old (limit ${formatAge(maxSnap)}): is the snapshot tool still running?`,
      });
    }
  }
  findings.sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status]);
  const status = findings.reduce<CheckStatus>((acc, f) => worstStatus(acc, f.status), 'OK');
  return {
    dataset,
    status,
    ok: status === 'OK',
    latestPushed: last?.name ?? null,
    snapshotCreated: last ? new Date(last.creation * 1000).toISOString() : null,
    ageSeconds,
    lastPushAt: lastPushAt?.toISOString() ?? null,
    lastSuccessAt: lastSuccess?.toISOString() ?? null,
    lastFailure,
    chain,
    source,
    findings,
    reason: findings[0]?.text ?? null,
  };
}

/** The newest snapshot of `dataset` on the source (matching `pattern`). Never throws: a failure of zfs (or btrfs) is the `error`. */
export async function sourceCheck(ctx: ServiceContext, dataset: string, now: Date): Promise<SourceCheck> {
  try {
    const pattern = ctx.config.datasets.find((d) => d.name === dataset)?.snapshotPattern;
    const re = pattern ? new RegExp(pattern) : null;
    const snaps = (await sourceListingFor(ctx, dataset).listSnapshots(dataset)).filter((s) => !re || re.test(s.shortName));
    const newest = snaps.reduce<(typeof snaps)[number] | null>((acc, s) => (acc === null || s.creation > acc.creation ? s : acc), null);
    if (!newest) return { newestSnapshot: null, created: null, ageSeconds: null, error: null };
    return {
      newestSnapshot: newest.shortName,
      created: new Date(newest.creation * 1000).toISOString(),
      ageSeconds: Math.max(0, Math.round(now.getTime() / 1000 - newest.creation)),
      error: null,
    };
  } catch (err) {
    return { newestSnapshot: null, created: null, ageSeconds: null, error: (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200) };
  }
}

/** Run the check over the configured (or known) datasets. */
export async function check(ctx: ServiceContext, opts: CheckOptions): Promise<CheckResult> {
  const result = await evaluate(ctx, opts);
  if (!opts.notify) return result;
  const names = [...ctx.config.datasets.map((d) => d.name), ...result.datasets.map((d) => d.dataset)];
  const w = await sendWebhook(ctx.config.hooks, result.status === 'OK', `zbk check: ${result.line}`, names);
  if (w && !w.ok) ctx.log.warn(`${w.what} failed (${w.detail ?? ''})`);
  return { ...result, webhook: w };
}

async function evaluate(ctx: ServiceContext, opts: CheckOptions): Promise<CheckResult> {
  const warnAge = opts.warnAgeSeconds ?? null;
  const maxSnap = opts.maxSnapshotAgeSeconds === undefined ? opts.maxAgeSeconds : opts.maxSnapshotAgeSeconds;
  const extra: CheckFinding[] = [];
  let pushStatus: PushStatus = { v: 1, datasets: {} };
  try {
    pushStatus = readPushStatus(ctx.config.stateDir);
  } catch (err) {
    extra.push({ status: 'UNKNOWN', text: `${(err as Error).message}: the outcome of the last push is unknown` });
  }
  let manifest: Manifest;
  try {
    manifest = openManifest(ctx, null);
  } catch (err) {
    // A push failing nightly on a damaged manifest (exit 9) must still page: the
    // push status file alone says so. Without a recorded failure the check cannot look (UNKNOWN).
    const failed = recordedFailures(ctx, opts, pushStatus);
    if (failed.length === 0) throw err;
    return evaluateWithoutManifest(opts, failed, [...extra, { status: 'UNKNOWN', text: `${(err as Error).message.split('\n')[0]}` }]);
  }
  let datasets: DatasetCheck[];
  try {
    const now = ctx.now();
    // A dataset named on the command line that is neither configured nor pushed is a typo:
    // UNKNOWN (UNKNOWN_DATASET, via the command layer), never a "never pushed" CRITICAL page.
    for (const n of opts.datasets ?? []) assertKnownDataset(ctx, manifest, n);
    const names = opts.datasets?.length
      ? opts.datasets
      : ctx.config.datasets.length > 0
        ? ctx.config.datasets.map((d) => d.name)
        : manifest.datasets().map((d) => d.name);
    const sources = maxSnap === null ? names.map(() => undefined) : await Promise.all(names.map((n) => sourceCheck(ctx, n, now)));
    datasets = names.map((n, i) =>
      checkDataset(manifest, n, { maxAgeSeconds: opts.maxAgeSeconds, warnAgeSeconds: warnAge, pushStatus, source: sources[i], maxSnapshotAgeSeconds: maxSnap }, now),
    );
    if (names.length === 0) extra.push({ status: 'CRITICAL', text: 'no datasets configured or pushed' });
  } finally {
    manifest.close();
  }

  const findings = [...extra, ...datasets.flatMap((d) => d.findings)].sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status]);
  const status = findings.reduce<CheckStatus>((acc, f) => worstStatus(acc, f.status), 'OK');
  const ages = datasets.flatMap((d) => (d.ageSeconds === null ? [] : [d.ageSeconds]));
  const snapAges = datasets.flatMap((d) => (d.source?.ageSeconds == null ? [] : [d.source.ageSeconds]));
  let message: string;
  if (status === 'OK') {
    message =
      `${datasets.length} dataset(s) backed up, oldest newest-snapshot ${formatAge(Math.max(0, ...ages))} old (limit ${formatAge(opts.maxAgeSeconds)})` +
      (snapAges.length > 0 ? `, newest source snapshot at most ${formatAge(Math.max(...snapAges))} old` : '');
  } else {
    message = findings.map((f) => (f.status === status ? f.text : `${f.status}: ${f.text}`)).join('; ');
  }
  const perfdata = perfdataOf(datasets, opts.maxAgeSeconds, warnAge, maxSnap);
  return {
    status,
    code: CHECK_EXIT[status],
    ok: status === 'OK',
    message,
    perfdata,
    line: formatCheckLine(status, message, perfdata),
    maxAgeSeconds: opts.maxAgeSeconds,
    warnAgeSeconds: warnAge,
    maxSnapshotAgeSeconds: maxSnap,
    datasets,
    webhook: null,
  };
}

/** Datasets (asked for, else configured, else all recorded) whose recorded last push failed after its last recorded success. */
function recordedFailures(ctx: ServiceContext, opts: CheckOptions, pushStatus: PushStatus): DatasetCheck[] {
  const names = opts.datasets?.length
    ? opts.datasets
    : ctx.config.datasets.length > 0
      ? ctx.config.datasets.map((d) => d.name)
      : Object.keys(pushStatus.datasets);
  const out: DatasetCheck[] = [];
  for (const dataset of names) {
    const r = datasetPushStatus(pushStatus, dataset);
    const f = r.lastFailure;
    if (!f || Number.isNaN(new Date(f.at).getTime())) continue;
    if (r.lastSuccess && new Date(r.lastSuccess) >= new Date(f.at)) continue;
    const text = `${dataset}: last push failed at ${new Date(f.at).toISOString()}: ${f.message}`;
    out.push({
      dataset,
      status: 'CRITICAL',
      ok: false,
      latestPushed: null,
      snapshotCreated: null,
      ageSeconds: null,
      lastPushAt: null,
      lastSuccessAt: r.lastSuccess,
      lastFailure: { at: new Date(f.at).toISOString(), message: f.message, code: f.code },
      chain: { ok: false, reason: 'the manifest cannot be read', remedy: null },
      source: null,
      findings: [{ status: 'CRITICAL', text }],
      reason: text,
    });
  }
  return out;
}

/** The verdict from the push status file alone (the manifest does not open): CRITICAL for the recorded failures. */
function evaluateWithoutManifest(opts: CheckOptions, datasets: DatasetCheck[], extra: CheckFinding[]): CheckResult {
  const warnAge = opts.warnAgeSeconds ?? null;
  const maxSnap = opts.maxSnapshotAgeSeconds === undefined ? opts.maxAgeSeconds : opts.maxSnapshotAgeSeconds;
  const findings = [...datasets.flatMap((d) => d.findings), ...extra].sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status]);
  const message = findings.map((f) => (f.status === 'CRITICAL' ? f.text : `${f.status}: ${f.text}`)).join('; ');
  const perfdata = perfdataOf(datasets, opts.maxAgeSeconds, warnAge, maxSnap);
  return {
    status: 'CRITICAL',
    code: CHECK_EXIT.CRITICAL,
    ok: false,
    message,
    perfdata,
    line: formatCheckLine('CRITICAL', message, perfdata),
    maxAgeSeconds: opts.maxAgeSeconds,
    warnAgeSeconds: warnAge,
    maxSnapshotAgeSeconds: maxSnap,
    datasets,
    webhook: null,
  };
}

/**
 * Aggregates first — `age` (the oldest newest-pushed snapshot; warn
 * --warn-age, crit --max-age), `snapshot_age` (the oldest newest source
 * snapshot; warn --max-snapshot-age), `failed_pushes` (crit 0: any is
 * critical), `datasets` — then `<dataset>_age` and
 * `<dataset>_snapshot_age` per dataset. Ages in seconds; an age that is not
 * known (never pushed, zfs failed) is left out.
 */
function perfdataOf(datasets: readonly DatasetCheck[], maxAge: number, warnAge: number | null, maxSnap: number | null): PerfDatum[] {
  const sec = (label: string, value: number, warn: number | null, crit: number | null): PerfDatum => ({ label, value, uom: 's', warn, crit, min: 0, max: null });
  const out: PerfDatum[] = [];
  const ages = datasets.flatMap((d) => (d.ageSeconds === null ? [] : [d.ageSeconds]));
  const snapAges = datasets.flatMap((d) => (d.source?.ageSeconds == null ? [] : [d.source.ageSeconds]));
  if (ages.length > 0) out.push(sec('age', Math.max(...ages), warnAge, maxAge));
  if (snapAges.length > 0) out.push(sec('snapshot_age', Math.max(...snapAges), maxSnap, null));
  out.push({ label: 'failed_pushes', value: datasets.filter((d) => d.lastFailure !== null).length, uom: '', warn: null, crit: 0, min: 0, max: null });
  out.push({ label: 'datasets', value: datasets.length, uom: '', warn: null, crit: null, min: 0, max: null });
  for (const d of datasets) {
    if (d.ageSeconds !== null) out.push(sec(`${d.dataset}_age`, d.ageSeconds, warnAge, maxAge));
    if (d.source?.ageSeconds != null) out.push(sec(`${d.dataset}_snapshot_age`, d.source.ageSeconds, maxSnap, null));
  }
  return out;
}
