/**
 * `zbk metrics`: the repository's state in the Prometheus text exposition
 * format (version 0.0.4), for node_exporter's textfile collector
 * (`--textfile DIR` writes `DIR/zbk.prom` atomically) or any scraper that
 * reads a file or a command's output.
 *
 * One source of truth: every value comes from the result of a service that
 * another command prints with `--json` — `status` (chains, stored bytes and
 * objects, verify coverage, in-flight and orphan uploads), `cost` (monthly
 * cost), `restore status` (progress of active restores) and `check` (last
 * successful and last failed push, as its CRITICAL verdict sees them). This
 * module only renames and formats; it has no model of its own.
 *
 * What it needs is what those need: the local manifest, the push status
 * file and one listing of unfinished multipart uploads (status' orphan
 * check); no passphrase, no zfs. A service that fails does not stop the
 * others: its metrics are left out, `zbk_collector_success{collector}` is 0
 * and `zbk_up` is 0, so a dashboard tells "down" from "zero".
 *
 * Dataset names can be private: with `[hooks] include_names = false` (the
 * setting that keeps names out of webhooks) the `dataset` label is
 * `dataset-<n>`, numbered as the webhooks number them — the configured
 * datasets in config order, then the others the manifest knows, by name.
 *
 * Every metric is listed in `METRICS` (name, type, labels, help) and in
 * docs/OPERATIONS.md, "Metrics".
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ExitCode, OperationError, UsageError, ZbkError } from '../errors.js';
import { check, type CheckResult, type DatasetCheck } from './check.js';
import type { ServiceContext } from './context.js';
import { costReport, type CostResult } from './cost.js';
import type { VolumePhase } from './restore/job.js';
import { restoreStatus, type RestoreStatusResult } from './restore/status.js';
import { status, type DatasetStatus, type StatusResult } from './status.js';

/** The name node_exporter's textfile collector reads in `--textfile DIR` (it reads `*.prom`). */
export const TEXTFILE_NAME = 'zbk.prom';

export type MetricType = 'gauge' | 'counter';

export interface MetricDef {
  name: string;
  type: MetricType;
  /** Label names every sample carries, in this order. */
  labels: readonly string[];
  /** The HELP text: what it measures, in which unit, where it comes from. Never a dataset name. */
  help: string;
}

const def = (name: string, type: MetricType, labels: readonly string[], help: string): MetricDef => ({ name, type, labels, help });

/** Every metric `zbk metrics` prints, in the order it prints them. */
export const METRICS = {
  up: def('zbk_up', 'gauge', [], '1 when every source of these metrics (status, cost, restore status, check) could be read, else 0.'),
  collectorSuccess: def('zbk_collector_success', 'gauge', ['collector'], '1 when this source of the metrics could be read, else 0 (its metrics are left out).'),
  scrapeTimestamp: def('zbk_scrape_timestamp_seconds', 'gauge', [], 'Unix time these metrics were collected (a textfile that stops changing shows here).'),
  scrapeDuration: def('zbk_scrape_duration_seconds', 'gauge', [], 'Seconds it took to collect these metrics.'),
  buildInfo: def('zbk_build_info', 'gauge', ['version'], 'Always 1; the zbk version that wrote these metrics.'),

  lastPushSuccess: def('zbk_last_push_success_timestamp_seconds', 'gauge', ['dataset'], 'Unix time of the last push of the dataset that succeeded, also with nothing to push (as zbk check sees it); 0 when none.'),
  lastPushFailure: def(
    'zbk_last_push_failure_timestamp_seconds',
    'gauge',
    ['dataset'],
    'Unix time of the newest failed push of the dataset after its last successful one (zbk check is CRITICAL for it); 0 when the last push did not fail.',
  ),
  latestSnapshot: def('zbk_latest_pushed_snapshot_timestamp_seconds', 'gauge', ['dataset'], 'Creation time (Unix) of the newest pushed snapshot of the dataset, what zbk check --max-age measures; 0 when none.'),
  latestUpload: def('zbk_latest_pushed_snapshot_upload_timestamp_seconds', 'gauge', ['dataset'], 'Unix time the upload of the newest pushed snapshot completed (zbk status "last push"); 0 when none.'),
  storedBytes: def('zbk_stored_bytes', 'gauge', ['dataset'], 'Bytes of the dataset stored in the repository (volumes of complete and superseded streams, sealed size).'),
  storedObjects: def('zbk_stored_objects', 'gauge', ['dataset'], 'Objects (volumes) of the dataset stored in the repository.'),
  chainLength: def('zbk_chain_length', 'gauge', ['dataset'], 'Streams in the chain of the newest pushed snapshot (1 full + incrementals); what a restore of it receives.'),
  chainRestorable: def('zbk_chain_restorable', 'gauge', ['dataset'], '1 when the newest pushed snapshot is restorable per the manifest, 0 when its chain holds a damaged object or nothing was pushed.'),
  damagedObjects: def('zbk_damaged_objects', 'gauge', ['dataset'], 'Objects of the dataset that zbk verify or a restore recorded as damaged.'),
  monthlyCost: def('zbk_monthly_cost_usd', 'gauge', ['dataset'], 'Estimated monthly storage cost of the dataset in USD (zbk cost; objects of abandoned streams still stored included).'),
  lastVerify: def('zbk_last_verify_timestamp_seconds', 'gauge', ['dataset'], 'Unix time of the last zbk verify that checked the dataset; 0 when none.'),
  oldestUnverified: def(
    'zbk_oldest_unverified_object_age_seconds',
    'gauge',
    ['dataset'],
    'Age in seconds, when collected, of the oldest stored object of the dataset uploaded after its last zbk verify; 0 when every object was verified.',
  ),

  inFlightUploads: def('zbk_inflight_uploads', 'gauge', [], 'Multipart uploads of streams being pushed (resumed by the next push).'),
  orphanUploads: def('zbk_orphan_uploads', 'gauge', ['owner'], 'Unfinished multipart uploads the manifest does not need (billed until aborted): owner "ours" (the next push aborts them) or "foreign" (another machine\'s).'),
  stagingBytes: def('zbk_multipart_staging_bytes', 'gauge', [], 'Bytes of the parts of unfinished multipart uploads (billed at Standard rates).'),
  repositoryCost: def('zbk_repository_monthly_cost_usd', 'gauge', [], 'Estimated monthly cost of the whole repository in USD: every dataset plus unfinished uploads (zbk cost).'),
  classBytes: def('zbk_repository_stored_bytes', 'gauge', ['storage_class'], 'Bytes stored in the repository by storage class (zbk cost).'),

  activeRestores: def('zbk_active_restores', 'gauge', [], 'Saved restores that have not finished.'),
  restoreBytes: def('zbk_restore_bytes', 'gauge', ['dataset'], 'Bytes an active restore fetches in all (its plan).'),
  restoreDoneBytes: def('zbk_restore_done_bytes', 'gauge', ['dataset'], 'Bytes of an active restore downloaded and verified, or already received into the target.'),
  restoreDownloaded: def('zbk_restore_downloaded_bytes_total', 'counter', ['dataset'], 'Bytes an active restore fetched from the store so far, re-fetches included (starts at 0 with each restore).'),
  restoreVolumes: def('zbk_restore_volumes', 'gauge', ['dataset', 'phase'], 'Volumes of an active restore by phase (scheduled, restoring, ready, downloading, staged, received, damaged).'),
  restorePlannedCost: def('zbk_restore_planned_cost_usd', 'gauge', ['dataset'], 'Planned cost of an active restore in USD.'),
  restoreSpent: def('zbk_restore_spent_usd', 'gauge', ['dataset'], 'Spent so far by an active restore in USD (restore requests, retrieval, egress above the free allowance).'),
  restoreFinish: def('zbk_restore_planned_finish_timestamp_seconds', 'gauge', ['dataset'], 'Unix time by which the plan of an active restore has fetched everything.'),
  restoreBlocked: def('zbk_restore_blocked', 'gauge', ['dataset'], '1 when damaged objects stop an active restore (zbk restore status says what is still restorable), else 0.'),
} as const satisfies Record<string, MetricDef>;

const PHASES: readonly VolumePhase[] = ['scheduled', 'restoring', 'ready', 'downloading', 'staged', 'received', 'damaged'];

export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily extends MetricDef {
  samples: MetricSample[];
}

export type Collector = 'status' | 'cost' | 'restore' | 'check' | 'config';

export interface CollectorOutcome {
  collector: Collector;
  ok: boolean;
  /** Why it failed (one line, as the command would print it), or null. */
  error: { code: string; message: string; exitCode: number } | null;
}

export interface MetricsResult {
  /** ISO time of the collection. */
  at: string;
  up: boolean;
  /** Whether the `dataset` label holds dataset names (`[hooks] include_names`), or `dataset-<n>`. */
  namesIncluded: boolean;
  collectors: CollectorOutcome[];
  families: MetricFamily[];
  /** The exposition text (what is printed, or written to the textfile). */
  text: string;
  /** The file `--textfile` wrote, or null. */
  textfile: string | null;
}

export interface MetricsOptions {
  /** zbk's version, for `zbk_build_info`. */
  version: string;
  /** Write `<dir>/zbk.prom` atomically instead of only returning the text. */
  textfileDir?: string;
}

/** Builds families in the order of `METRICS`; a sample's labels must be the family's. */
class Families {
  private readonly map = new Map<string, MetricFamily>();

  constructor() {
    for (const d of Object.values(METRICS)) this.map.set(d.name, { ...d, samples: [] });
  }

  add(d: MetricDef, value: number, labels: Record<string, string> = {}): void {
    const f = this.map.get(d.name)!;
    const names = Object.keys(labels);
    if (names.length !== d.labels.length || !d.labels.every((l) => names.includes(l))) throw new Error(`${d.name}: labels ${names.join(',')}, expected ${d.labels.join(',')}`);
    f.samples.push({ labels: Object.fromEntries(d.labels.map((l) => [l, labels[l]!])), value });
  }

  /** Families with samples (an empty family says nothing; node_exporter drops it anyway). */
  list(): MetricFamily[] {
    return [...this.map.values()].filter((f) => f.samples.length > 0);
  }
}

/** Seconds since the epoch of an ISO time, 0 for null (the exposition has no null). */
function seconds(iso: string | null | undefined): number {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t / 1000;
}

function outcomeOf(collector: Collector, err: unknown): CollectorOutcome {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300);
  if (err instanceof ZbkError) return { collector, ok: false, error: { code: err.code, message, exitCode: err.exitCode } };
  return { collector, ok: false, error: { code: 'INTERNAL', message, exitCode: ExitCode.FAILURE } };
}

/**
 * The `dataset` label of each dataset: its name, or with `include_names =
 * false` `dataset-<n>` — numbered as `withoutNames` (hooks.ts) numbers
 * webhook messages: configured datasets first, in config order, then the
 * rest in the order given (status: by name).
 */
export function datasetLabels(configured: readonly string[], others: readonly string[], includeNames: boolean): Map<string, string> {
  const order = [...new Set([...configured, ...others].filter((d) => d !== ''))];
  return new Map(order.map((name, i) => [name, includeNames ? name : `dataset-${i + 1}`]));
}

/** Collect the metrics from the services (each on its own: one failing leaves the others). */
export async function collectMetrics(ctx: ServiceContext, opts: MetricsOptions): Promise<MetricsResult> {
  const started = Date.now();
  const at = ctx.now();
  const outcomes: CollectorOutcome[] = [];
  const run = async <T>(collector: Collector, f: () => T | Promise<T>): Promise<T | null> => {
    try {
      const r = await f();
      outcomes.push({ collector, ok: true, error: null });
      return r;
    } catch (err) {
      outcomes.push(outcomeOf(collector, err));
      return null;
    }
  };
  const st: StatusResult | null = await run('status', () => status(ctx));
  const cost: CostResult | null = await run('cost', () => costReport(ctx, { months: 1 }));
  const restores: RestoreStatusResult | null = await run('restore', () => restoreStatus(ctx));

  // Per dataset: the configured ones (never pushed: zeros) and every one the manifest knows.
  const configured = ctx.config.datasets.map((d) => d.name);
  const others = [...new Set([...(st?.datasets.map((d) => d.dataset) ?? []), ...(cost?.byDataset.map((l) => l.name) ?? [])])].sort();
  const names = [...new Set([...configured, ...others])];
  // The thresholds do not matter here (only lastSuccessAt and lastFailure are read); no source look-up (no zfs).
  const chk: CheckResult | null = await run('check', () =>
    check(ctx, { maxAgeSeconds: Number.MAX_SAFE_INTEGER, maxSnapshotAgeSeconds: null, ...(names.length ? { datasets: names } : {}) }),
  );
  for (const d of chk?.datasets ?? []) if (!names.includes(d.dataset)) names.push(d.dataset);
  const restoreNames = (restores?.restores ?? []).map((r) => r.dataset).filter((n) => !names.includes(n));
  const includeNames = ctx.config.hooks.includeNames;
  const labels = datasetLabels(configured, [...names.filter((n) => !configured.includes(n)), ...restoreNames], includeNames);
  const ds = (name: string): Record<string, string> => ({ dataset: labels.get(name) ?? name });
  const f = new Families();
  const M = METRICS;

  const up = outcomes.every((o) => o.ok);
  f.add(M.up, up ? 1 : 0);
  for (const o of outcomes) f.add(M.collectorSuccess, o.ok ? 1 : 0, { collector: o.collector });
  f.add(M.scrapeTimestamp, at.getTime() / 1000);
  f.add(M.buildInfo, 1, { version: opts.version });

  if (chk) {
    const of = (n: string): DatasetCheck | undefined => chk.datasets.find((d) => d.dataset === n);
    for (const n of names) f.add(M.lastPushSuccess, seconds(of(n)?.lastSuccessAt), ds(n));
    for (const n of names) f.add(M.lastPushFailure, seconds(of(n)?.lastFailure?.at), ds(n));
  }
  const sd = (n: string): DatasetStatus | undefined => st?.datasets.find((d) => d.dataset === n);
  if (st) {
    for (const n of names) f.add(M.latestSnapshot, seconds(sd(n)?.chain.at(-1)?.snapshotCreated), ds(n));
    for (const n of names) f.add(M.latestUpload, seconds(sd(n)?.lastPushAt), ds(n));
    for (const n of names) f.add(M.storedBytes, sd(n)?.storedBytes ?? 0, ds(n));
    for (const n of names) f.add(M.storedObjects, sd(n)?.objects ?? 0, ds(n));
    for (const n of names) f.add(M.chainLength, sd(n)?.chain.length ?? 0, ds(n));
    for (const n of names) f.add(M.chainRestorable, sd(n)?.health === 'ok' ? 1 : 0, ds(n));
    for (const n of names) f.add(M.damagedObjects, sd(n)?.integrity.damaged.length ?? 0, ds(n));
  }
  if (cost) for (const n of names) f.add(M.monthlyCost, cost.byDataset.find((l) => l.name === n)?.total ?? 0, ds(n));
  if (st) {
    for (const n of names) f.add(M.lastVerify, seconds(sd(n)?.lastVerifiedAt), ds(n));
    for (const n of names) {
      const oldest = sd(n)?.oldestUnverifiedAt;
      f.add(M.oldestUnverified, oldest ? Math.max(0, at.getTime() / 1000 - seconds(oldest)) : 0, ds(n));
    }
    f.add(M.inFlightUploads, st.inFlight.length);
    f.add(M.orphanUploads, st.orphans.filter((u) => u.owner !== 'foreign').length, { owner: 'ours' });
    f.add(M.orphanUploads, st.orphans.filter((u) => u.owner === 'foreign').length, { owner: 'foreign' });
  }
  if (cost) {
    f.add(M.stagingBytes, cost.staging.bytes);
    f.add(M.repositoryCost, cost.monthly);
    for (const l of cost.byClass) f.add(M.classBytes, l.storedBytes, { storage_class: l.name });
  }
  if (restores) {
    const active = restores.restores.filter((r) => r.finishedAt === null);
    f.add(M.activeRestores, active.length);
    for (const r of active) {
      const vols = r.months.flatMap((m) => m.volumes);
      const l = ds(r.dataset);
      f.add(M.restoreBytes, r.totalBytes, l);
      f.add(M.restoreDoneBytes, vols.filter((v) => v.phase === 'staged' || v.phase === 'received').reduce((a, v) => a + v.bytes, 0), l);
      f.add(M.restoreDownloaded, vols.reduce((a, v) => a + v.downloadedBytes, 0), l);
      for (const phase of PHASES) f.add(M.restoreVolumes, vols.filter((v) => v.phase === phase).length, { ...l, phase });
      f.add(M.restorePlannedCost, r.plannedCost, l);
      f.add(M.restoreSpent, r.spent, l);
      f.add(M.restoreFinish, seconds(r.finish), l);
      f.add(M.restoreBlocked, r.blocked ? 1 : 0, l);
    }
  }
  f.add(M.scrapeDuration, (Date.now() - started) / 1000);
  const families = f.list();
  const result: MetricsResult = { at: at.toISOString(), up, namesIncluded: includeNames, collectors: outcomes, families, text: formatExposition(families), textfile: null };
  if (opts.textfileDir !== undefined) result.textfile = writeTextfile(opts.textfileDir, result.text);
  return result;
}

/**
 * The metrics of a run that could not even load its config (or open its
 * context): `zbk_up 0` and `zbk_collector_success{collector="config"} 0`,
 * so a textfile does not keep saying "fine" while every run fails.
 */
export function failedMetrics(err: unknown, opts: MetricsOptions, at: Date = new Date()): MetricsResult {
  const f = new Families();
  f.add(METRICS.up, 0);
  f.add(METRICS.collectorSuccess, 0, { collector: 'config' });
  f.add(METRICS.scrapeTimestamp, at.getTime() / 1000);
  f.add(METRICS.buildInfo, 1, { version: opts.version });
  const families = f.list();
  const result: MetricsResult = { at: at.toISOString(), up: false, namesIncluded: false, collectors: [outcomeOf('config', err)], families, text: formatExposition(families), textfile: null };
  if (opts.textfileDir !== undefined) result.textfile = writeTextfile(opts.textfileDir, result.text);
  return result;
}

/** A HELP text: backslash and line feed escaped (exposition format 0.0.4). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value as Go's ParseFloat reads it (`NaN`, `+Inf`, `-Inf` for the specials). */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The text exposition format 0.0.4: per family `# HELP`, `# TYPE`, then its samples; no timestamps (the textfile collector refuses them). */
export function formatExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const fam of families) {
    lines.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}`, `# TYPE ${fam.name} ${fam.type}`);
    for (const s of fam.samples) {
      const l = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
      lines.push(`${fam.name}${l.length ? `{${l.join(',')}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Temporary files of earlier runs killed between writing and renaming, removed once this old. */
const STALE_TEMP_MS = 60 * 60 * 1000;
const TEMP_RE = /^\.zbk\.prom\.\d+\.[0-9a-f]+\.tmp$/;

/**
 * Write `<dir>/zbk.prom` atomically: a temporary file in `dir` (named so the
 * collector, which reads `*.prom`, ignores it), mode 0644 whatever the umask
 * (node_exporter runs as another user), written in full and fsynced, then
 * renamed over the old file and the directory fsynced. A failure at any
 * point leaves the old file as it was and removes the temporary file.
 * @returns the path written.
 * @throws UsageError when `dir` is not an existing directory; OperationError (TEXTFILE_WRITE_FAILED) when it cannot be written.
 */
export function writeTextfile(dir: string, text: string): string {
  const abs = isAbsolute(dir) ? dir : resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch (err) {
    throw new UsageError(`--textfile ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`} (give node_exporter's --collector.textfile.directory)`, 'TEXTFILE_DIR');
  }
  if (!isDir) throw new UsageError(`--textfile ${dir}: not a directory (give node_exporter's --collector.textfile.directory)`, 'TEXTFILE_DIR');
  removeStaleTemps(abs);
  const path = join(abs, TEXTFILE_NAME);
  const tmp = join(abs, `.${TEXTFILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const failed = (err: unknown): never => {
    rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    // Node's "ENOSPC: no space left on device, write" → "ENOSPC: no space left on device".
    const why = /^[A-Z]+: ([^,]+)/.exec((err as Error).message)?.[1];
    throw new OperationError(`cannot write ${path} (${code}${why ? `: ${why}` : ''}); the previous file, if any, is unchanged`, 'TEXTFILE_WRITE_FAILED', { cause: err });
  };
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      fchmodSync(fd, 0o644);
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    failed(err);
  }
  try {
    const dfd = openSync(abs, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename is still atomic.
  }
  return path;
}

function removeStaleTemps(dir: string): void {
  try {
    for (const name of readdirSync(dir)) {
      if (!TEMP_RE.test(name)) continue;
      const p = join(dir, name);
      try {
        if (Date.now() - statSync(p).mtimeMs > STALE_TEMP_MS) rmSync(p, { force: true });
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // an unreadable directory shows when the file is written
  }
}
