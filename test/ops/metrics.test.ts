/**
 * `zbk metrics` (issue #21 item 3) through the CLI on real systems: a real
 * repository (file:// store) pushing a zfs-fuse dataset twice; its output
 * is read by an independent parser of the Prometheus text format
 * (parse-prometheus-text-format, from npm) plus the format's rules it does
 * not enforce (HELP and TYPE before the samples, names, `_total` only on
 * counters, no duplicate series), and every value equals what `status
 * --json`, `check --json`, `cost --json` and `restore status --json` say.
 * It runs without the passphrase file. `[hooks] include_names = false`
 * keeps every dataset and pool name out of it. `--textfile` writes
 * atomically (mode 0644 under umask 077, no temporary file left, stale ones
 * of killed runs removed); a run whose write fails — a full or read-only
 * filesystem, real tmpfs mounts — leaves the previous file as it was; a run
 * that cannot read the manifest writes a whole file with `zbk_up 0`. The
 * metric catalogue, docs/OPERATIONS.md and docs/grafana-zbk.json agree.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { CheckResult } from '../../src/services/check.js';
import type { CostResult } from '../../src/services/cost.js';
import { datasetLabels, formatExposition, METRICS, TEXTFILE_NAME, type MetricsResult } from '../../src/services/metrics.js';
import type { RestoreStatusResult } from '../../src/services/restore/status.js';
import type { StatusResult } from '../../src/services/status.js';
import { jsonOf, runZbk, type CliResult } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { createTestRepo } from '../helpers/repo.js';
import { requireSource, sourceRepo } from '../e2e/source-fixture.js';
import { mountTmpfs, requireRoot, scratchDir } from './state-fs.js';

interface Series {
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type: string;
  help: string;
  series: Series[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Parse with parse-prometheus-text-format (it must accept the text), then
 * check what that parser lets through: every family has HELP then TYPE
 * before its samples and appears once, names and label names are valid,
 * counters and only counters end in `_total`, no sample has a timestamp
 * (node_exporter's textfile collector refuses them), no two samples of a
 * family have the same labels, every value is a number.
 */
function parseStrict(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the text ends with a line feed');
  const parsed = parsePrometheusTextFormat(text);
  const lines = text.split('\n');
  const out = new Map<string, Family>();
  for (const fam of parsed) {
    assert.match(fam.name, NAME);
    assert.ok(fam.name.startsWith('zbk_'), fam.name);
    assert.ok(!out.has(fam.name), `${fam.name} appears as two families`);
    assert.ok(fam.help.length > 0, `${fam.name} has HELP`);
    assert.ok(fam.type === 'GAUGE' || fam.type === 'COUNTER', `${fam.name} is typed (${fam.type})`);
    assert.equal(fam.type === 'COUNTER', fam.name.endsWith('_total'), `${fam.name}: _total only for counters, and every counter has it`);
    const help = lines.indexOf(lines.find((l) => l.startsWith(`# HELP ${fam.name} `))!);
    const type = lines.indexOf(`# TYPE ${fam.name} ${fam.type.toLowerCase()}`);
    const samples = lines.flatMap((l, i) => (l.startsWith(`${fam.name} `) || l.startsWith(`${fam.name}{`) ? [i] : []));
    assert.ok(help >= 0 && type === help + 1 && samples[0] === type + 1, `${fam.name}: HELP, TYPE, then the samples`);
    assert.equal(samples.length, fam.metrics.length, `${fam.name}: every sample line is its own series (no duplicate label sets)`);
    assert.deepEqual(samples, samples.map((_, i) => samples[0]! + i), `${fam.name}: its samples are contiguous`);
    const series = fam.metrics.map((m) => {
      assert.equal(m.timestamp_ms, undefined, `${fam.name}: no timestamps`);
      for (const l of Object.keys(m.labels ?? {})) assert.match(l, LABEL);
      const value = Number(m.value);
      assert.ok(m.value !== undefined && m.value !== '' && Number.isFinite(value), `${fam.name} value ${m.value}`);
      return { labels: m.labels ?? {}, value };
    });
    out.set(fam.name, { type: fam.type, help: fam.help, series });
  }
  const comments = lines.filter((l) => l.startsWith('#'));
  assert.equal(comments.length, 2 * out.size, 'only HELP and TYPE comment lines, one each per family');
  return out;
}

/** The value of the one series of `name` with `labels`. */
function value(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const fam = fams.get(name);
  assert.ok(fam, `no metric ${name}`);
  const hits = fam.series.filter((s) => Object.keys(labels).every((k) => s.labels[k] === labels[k]) && Object.keys(s.labels).length === Object.keys(labels).length);
  assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)}: ${JSON.stringify(fam.series)}`);
  return hits[0]!.value;
}

const sec = (iso: string | null | undefined): number => (iso ? Date.parse(iso) / 1000 : 0);

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout.slice(0, 2000)}\n${r.stderr}`);
  return r;
}

test('[zfs] zbk metrics: a Prometheus parser accepts it, the values are those of status/check/cost/restore status --json, no passphrase needed, include_names = false hides every name', async (t) => {
  if (!requireSource(t, 'zfs')) return;
  const src = await sourceRepo(t, 'zfs', { name: 'photos', sizeMiB: 256 });
  const { ds, mnt, repo } = src;
  writeRandomFiles(mnt, { files: 2, bytesEach: 3 * 1024 * 1024, seed: 'metrics-1' });
  await src.snapshot('s1');
  ok(await repo.zbk(['push', ds]), 'push s1');
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 2 * 1024 * 1024, seed: 'metrics-2' });
  await src.snapshot('s2');
  ok(await repo.zbk(['push', ds]), 'push s2');

  // No passphrase: the file it names is gone while metrics (and status) run.
  const pass = repo.env.ZBK_PASSPHRASE_FILE!;
  renameSync(pass, `${pass}.away`);
  const m = ok(await repo.zbk(['metrics']), 'metrics without the passphrase');
  const fams = parseStrict(m.stdout);
  const st = jsonOf<StatusResult>(ok(await repo.zbk(['status', '--json']), 'status'));
  const chk = jsonOf<CheckResult>(await repo.zbk(['check', '--json', '--max-snapshot-age', 'off']));
  const cost = jsonOf<CostResult>(ok(await repo.zbk(['cost', '--json']), 'cost'));
  renameSync(`${pass}.away`, pass);

  const d = st.datasets.find((x) => x.dataset === ds)!;
  const c = chk.datasets.find((x) => x.dataset === ds)!;
  const L = { dataset: ds };
  assert.equal(value(fams, 'zbk_up'), 1);
  for (const collector of ['status', 'cost', 'restore', 'check']) assert.equal(value(fams, 'zbk_collector_success', { collector }), 1, collector);
  // status --json: bytes, objects, chain length, last push, newest snapshot, health.
  assert.ok(d.storedBytes > 8 * 1024 * 1024, 'both pushes are stored');
  assert.equal(value(fams, 'zbk_stored_bytes', L), d.storedBytes);
  assert.equal(value(fams, 'zbk_stored_objects', L), d.objects);
  assert.equal(d.chain.length, 2);
  assert.equal(value(fams, 'zbk_chain_length', L), d.chain.length);
  assert.equal(value(fams, 'zbk_latest_pushed_snapshot_upload_timestamp_seconds', L), sec(d.lastPushAt));
  assert.equal(value(fams, 'zbk_latest_pushed_snapshot_timestamp_seconds', L), sec(d.chain[1]!.snapshotCreated));
  assert.equal(value(fams, 'zbk_chain_restorable', L), 1);
  assert.equal(value(fams, 'zbk_damaged_objects', L), 0);
  assert.equal(value(fams, 'zbk_inflight_uploads'), st.inFlight.length);
  assert.equal(value(fams, 'zbk_orphan_uploads', { owner: 'ours' }) + value(fams, 'zbk_orphan_uploads', { owner: 'foreign' }), st.orphans.length);
  // check --json: the last successful push (the push status file's, after the stream completed) and no failure.
  assert.ok(c.lastSuccessAt !== null && sec(c.lastSuccessAt) >= sec(d.lastPushAt));
  assert.equal(value(fams, 'zbk_last_push_success_timestamp_seconds', L), sec(c.lastSuccessAt));
  assert.equal(c.lastFailure, null);
  assert.equal(value(fams, 'zbk_last_push_failure_timestamp_seconds', L), 0);
  // cost --json.
  const line = cost.byDataset.find((l) => l.name === ds)!;
  assert.ok(line.total > 0);
  assert.equal(value(fams, 'zbk_monthly_cost_usd', L), line.total);
  assert.equal(value(fams, 'zbk_repository_monthly_cost_usd'), cost.monthly);
  assert.equal(value(fams, 'zbk_multipart_staging_bytes'), cost.staging.bytes);
  for (const l of cost.byClass) assert.equal(value(fams, 'zbk_repository_stored_bytes', { storage_class: l.name }), l.storedBytes);
  // Nothing verified yet: the oldest unverified object is the first push's.
  assert.equal(d.lastVerifiedAt, null);
  assert.equal(value(fams, 'zbk_last_verify_timestamp_seconds', L), 0);
  const age = value(fams, 'zbk_oldest_unverified_object_age_seconds', L);
  assert.ok(Math.abs(age - (value(fams, 'zbk_scrape_timestamp_seconds') - sec(d.oldestUnverifiedAt))) < 0.01, `age ${age}`);
  assert.equal(value(fams, 'zbk_active_restores'), 0);
  assert.ok(!fams.has('zbk_restore_bytes'), 'no restore series without an active restore');
  // The catalogue is what is printed (restores aside).
  const printed = [...fams.keys()];
  assert.deepEqual(
    printed,
    Object.values(METRICS)
      .map((x) => x.name)
      .filter((n) => !n.startsWith('zbk_restore_')),
  );
  for (const [name, fam] of fams) assert.equal(fam.help, Object.values(METRICS).find((x) => x.name === name)!.help);

  // After a verify and with a restore planned: the verify time, nothing unverified, the restore's progress.
  ok(await repo.zbk(['verify']), 'verify');
  ok(await repo.zbk(['restore', 'plan', ds, '--asap']), 'restore plan');
  const m2 = parseStrict(ok(await repo.zbk(['metrics']), 'metrics after verify').stdout);
  const st2 = jsonOf<StatusResult>(ok(await repo.zbk(['status', '--json']), 'status'));
  const rs = jsonOf<RestoreStatusResult>(ok(await repo.zbk(['restore', 'status', '--json']), 'restore status'));
  const d2 = st2.datasets.find((x) => x.dataset === ds)!;
  assert.ok(d2.lastVerifiedAt !== null && d2.oldestUnverifiedAt === null, JSON.stringify(d2));
  assert.equal(value(m2, 'zbk_last_verify_timestamp_seconds', L), sec(d2.lastVerifiedAt));
  assert.equal(value(m2, 'zbk_oldest_unverified_object_age_seconds', L), 0);
  const job = rs.restores.find((r) => r.dataset === ds)!;
  const vols = job.months.flatMap((x) => x.volumes);
  assert.ok(vols.length >= 2);
  assert.equal(value(m2, 'zbk_active_restores'), 1);
  assert.equal(value(m2, 'zbk_restore_bytes', L), job.totalBytes);
  assert.equal(value(m2, 'zbk_restore_done_bytes', L), vols.filter((v) => v.phase === 'staged' || v.phase === 'received').reduce((a, v) => a + v.bytes, 0));
  assert.equal(value(m2, 'zbk_restore_downloaded_bytes_total', L), vols.reduce((a, v) => a + v.downloadedBytes, 0));
  assert.equal(m2.get('zbk_restore_volumes')!.series.reduce((a, s) => a + s.value, 0), vols.length);
  for (const v of vols) assert.ok(value(m2, 'zbk_restore_volumes', { ...L, phase: v.phase }) >= 1, v.phase);
  assert.equal(value(m2, 'zbk_restore_planned_cost_usd', L), job.plannedCost);
  assert.equal(value(m2, 'zbk_restore_spent_usd', L), job.spent);
  assert.equal(value(m2, 'zbk_restore_planned_finish_timestamp_seconds', L), sec(job.finish));
  assert.equal(value(m2, 'zbk_restore_blocked', L), job.blocked ? 1 : 0);

  // [hooks] include_names = false: dataset-1 (its place in the config, as in webhooks), no name anywhere.
  appendFileSync(repo.configPath, '\n[hooks]\ninclude_names = false\n');
  const hidden = ok(await repo.zbk(['metrics']), 'metrics without names');
  const poolName = ds.split('/')[0]!;
  assert.ok(!hidden.stdout.includes(poolName) && !hidden.stdout.includes('photos'), 'no dataset or pool name');
  const m3 = parseStrict(hidden.stdout);
  const labelled = [...m3.values()].flatMap((f) => f.series).filter((s) => 'dataset' in s.labels);
  assert.ok(labelled.length > 10);
  for (const s of labelled) assert.equal(s.labels.dataset, 'dataset-1');
  assert.equal(value(m3, 'zbk_stored_bytes', { dataset: 'dataset-1' }), d2.storedBytes);
  const j = jsonOf<MetricsResult>(ok(await repo.zbk(['metrics', '--json']), 'metrics --json'));
  assert.equal(j.namesIncluded, false);
  assert.ok(!JSON.stringify(j).includes(poolName));
});

/** Run with the given umask (children inherit it): the units run zbk with UMask=0077. */
async function withUmask<T>(mask: number, f: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  try {
    return await f();
  } finally {
    process.umask(old);
  }
}

test('zbk metrics --textfile: atomic (0644 under umask 077, no temporary file left, stale ones removed); a write that fails leaves the previous file; an unreadable manifest writes zbk_up 0', async (t: TestContext) => {
  if (!requireRoot(t)) return;
  const repo = await createTestRepo({ datasets: ['tank/never'] });
  t.after(() => repo.cleanup());
  const dir = scratchDir(t, 'zbk-textfile-');
  const fs = mountTmpfs(join(dir, 'textfile'), 'size=64k');
  const file = join(fs.dir, TEXTFILE_NAME);
  const stale = join(fs.dir, '.zbk.prom.99999.deadbeef.tmp');
  const young = join(fs.dir, '.zbk.prom.99998.cafebabe.tmp');
  writeFileSync(stale, 'half a file');
  const hoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
  utimesSync(stale, hoursAgo, hoursAgo);
  writeFileSync(young, 'a concurrent run');

  const r = await withUmask(0o077, () => repo.zbk(['metrics', '--textfile', fs.dir]));
  ok(r, 'metrics --textfile');
  assert.equal(r.stdout, '', 'nothing printed');
  assert.deepEqual(readdirSync(fs.dir).sort(), [young.slice(fs.dir.length + 1), TEXTFILE_NAME].sort(), 'the stale temporary file is removed, a young one (another run) left');
  rmSync(young);
  assert.equal(statSync(file).mode & 0o777, 0o644, 'readable by node_exporter whatever the umask');
  const good = readFileSync(file, 'utf8');
  const fams = parseStrict(good);
  assert.equal(value(fams, 'zbk_up'), 1);
  assert.equal(value(fams, 'zbk_last_push_success_timestamp_seconds', { dataset: 'tank/never' }), 0, 'a configured dataset never pushed: zeros');
  assert.equal(value(fams, 'zbk_stored_bytes', { dataset: 'tank/never' }), 0);

  // A full filesystem: the write fails part way; the old file stays whole, no temporary file.
  try {
    writeFileSync(join(fs.dir, 'filler'), Buffer.alloc(128 * 1024, 1));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  const full = await repo.zbk(['metrics', '--textfile', fs.dir]);
  assert.equal(full.code, 1, full.stderr);
  assert.match(full.stderr, /^zbk: cannot write \S+\/zbk\.prom \(ENOSPC: no space left on device\); the previous file, if any, is unchanged\n$/);
  assert.equal(readFileSync(file, 'utf8'), good, 'the previous file, whole');
  assert.deepEqual(readdirSync(fs.dir).sort(), ['filler', TEXTFILE_NAME], 'no temporary file left');
  rmSync(join(fs.dir, 'filler'));

  // Read-only: the same.
  fs.remount('ro');
  const ro = await repo.zbk(['metrics', '--textfile', fs.dir]);
  fs.remount('rw');
  assert.equal(ro.code, 1, ro.stderr);
  assert.match(ro.stderr, /\(EROFS: read-only file system\)/);
  assert.equal(readFileSync(file, 'utf8'), good);
  assert.deepEqual(readdirSync(fs.dir), [TEXTFILE_NAME]);

  // The manifest cannot be read: a whole file saying zbk_up 0 (the exit code is the manifest's, 9).
  const manifest = join(repo.stateDir, 'manifest.db');
  renameSync(manifest, `${manifest}.away`);
  const down = await repo.zbk(['metrics', '--textfile', fs.dir]);
  renameSync(`${manifest}.away`, manifest);
  assert.equal(down.code, 9, down.stderr);
  assert.match(down.stderr, /^warning: zbk_up 0: status, cost, restore, check could not be read: no local manifest/);
  const downFams = parseStrict(readFileSync(file, 'utf8'));
  assert.equal(value(downFams, 'zbk_up'), 0);
  for (const collector of ['status', 'cost', 'restore', 'check']) assert.equal(value(downFams, 'zbk_collector_success', { collector }), 0);
  assert.ok(!downFams.has('zbk_stored_bytes'), 'no made-up zeros for what could not be read');

  // A config that cannot be loaded: zbk_up 0 too, and exit 3.
  const noConfig = await runZbk(['metrics', '--textfile', fs.dir], { ...repo.env, ZBK_CONFIG: join(repo.dir, 'missing.toml') });
  assert.equal(noConfig.code, 3, noConfig.stderr);
  assert.equal(value(parseStrict(readFileSync(file, 'utf8')), 'zbk_collector_success', { collector: 'config' }), 0);

  // Not a directory, no such directory: usage errors, nothing written.
  const notDir = await repo.zbk(['metrics', '--textfile', file]);
  assert.equal(notDir.code, 2, notDir.stderr);
  assert.match(notDir.stderr, /not a directory/);
  assert.equal((await repo.zbk(['metrics', '--textfile', join(dir, 'nope')])).code, 2);
  assert.deepEqual(readdirSync(fs.dir), [TEXTFILE_NAME]);

  const j = jsonOf<MetricsResult>(ok(await repo.zbk(['metrics', '--textfile', fs.dir, '--json']), 'metrics --textfile --json'));
  assert.equal(j.textfile, file);
  assert.equal(readFileSync(file, 'utf8'), j.text);
});

test('exposition: label values with quotes, backslashes and line feeds read back as written; dataset-<n> numbering follows the webhooks (config order first)', () => {
  const weird = '/srv/a "b"\\c\nd';
  const text = formatExposition([{ ...METRICS.storedBytes, samples: [{ labels: { dataset: weird }, value: 1.5e12 }] }]);
  const fams = parseStrict(text);
  assert.equal(fams.get('zbk_stored_bytes')!.series[0]!.labels.dataset, weird);
  assert.equal(value(fams, 'zbk_stored_bytes', { dataset: weird }), 1.5e12);
  assert.deepEqual([...datasetLabels(['tank/b', 'tank/a'], ['tank/a', 'old/x'], false)], [['tank/b', 'dataset-1'], ['tank/a', 'dataset-2'], ['old/x', 'dataset-3']]);
  assert.deepEqual([...datasetLabels(['tank/b'], ['old/x'], true).values()], ['tank/b', 'old/x']);
});

test('docs: OPERATIONS "Metrics" describes every metric with its type and labels; docs/grafana-zbk.json is valid JSON and queries only these metrics', () => {
  const ops = readFileSync(resolve(repoRoot, 'docs', 'OPERATIONS.md'), 'utf8');
  const section = ops.slice(ops.indexOf('### Metrics'));
  assert.ok(ops.includes('### Metrics'), 'a Metrics subsection');
  for (const m of Object.values(METRICS)) {
    const row = section.split('\n').find((l) => l.startsWith(`| \`${m.name}\` |`));
    assert.ok(row, `${m.name} is documented`);
    assert.ok(row.includes(`| ${m.type} |`), `${m.name}: type ${m.type}`);
    for (const l of m.labels) assert.ok(row.includes(`\`${l}\``), `${m.name}: label ${l}`);
  }
  assert.ok(ops.includes('grafana-zbk.json'), 'OPERATIONS points at the dashboard');
  const dash = JSON.parse(readFileSync(resolve(repoRoot, 'docs', 'grafana-zbk.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  const known = new Set(Object.values(METRICS).map((m) => m.name));
  const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((x) => x.expr);
  assert.ok(exprs.length >= 8, 'panels with queries');
  const used = new Set(exprs.flatMap((e) => e.match(/\bzbk_[a-z0-9_]+/g) ?? []));
  for (const n of used) assert.ok(known.has(n), `the dashboard queries ${n}, which zbk does not print`);
  for (const n of ['zbk_up', 'zbk_stored_bytes', 'zbk_monthly_cost_usd', 'zbk_last_push_success_timestamp_seconds', 'zbk_restore_done_bytes']) assert.ok(used.has(n), `the dashboard shows ${n}`);
  assert.ok(existsSync(resolve(repoRoot, 'docs', 'grafana-zbk.json')));
});
