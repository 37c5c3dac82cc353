/**
 * `zbk check`: monitoring-plugins exit codes (0 OK, 1 WARNING, 2 CRITICAL,
 * 3 UNKNOWN), the one line with perfdata and --json on fresh, aging, stale,
 * failed and never-pushed datasets, and UNKNOWN when it cannot look. The
 * manifest is populated directly (import of a complete stream with a chosen
 * snapshot time), so the verdict does not depend on how long the test
 * takes. The datasets here exist in no pool: the source check is switched
 * off (`--max-snapshot-age off`) except where its UNKNOWN is the point; it
 * is tested on real ZFS in alerts.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Manifest } from '../../src/manifest/manifest.js';
import { volumeKey } from '../../src/layout.js';
import type { CheckResult } from '../../src/services/check.js';
import { parseDuration } from '../../src/services/check.js';
import { recordPushOutcome } from '../../src/services/push-status.js';
import { createRepo, type TestRepo } from './helpers.js';

const HOUR = 3600;

/** Record a complete full stream of `dataset` ending at a snapshot created `ageSeconds` ago. */
function recordPush(stateDir: string, dataset: string, snap: string, ageSeconds: number): void {
  const m = Manifest.open(join(stateDir, 'manifest.db'));
  try {
    const streamId = randomBytes(16).toString('hex');
    const now = new Date();
    m.importCompleteStream({
      streamId,
      dataset,
      from: null,
      to: { name: snap, guid: BigInt(`0x${randomBytes(7).toString('hex')}`), createtxg: 10n, creation: Math.floor(now.getTime() / 1000) - ageSeconds },
      plaintextSize: 100,
      storedSize: 150,
      volumeSize: 1 << 20,
      partSize: 1 << 20,
      startedAt: now,
      completedAt: now,
      volumes: [{ index: 0, key: volumeKey(streamId, 0), storageClass: 'DEEP_ARCHIVE', storedSize: 150, partCount: 1, plaintextSize: 100, plaintextSha256: '0'.repeat(64), uploadedAt: now }],
    });
  } finally {
    m.close();
  }
}

function recordFailure(stateDir: string, dataset: string, message: string): void {
  const m = Manifest.open(join(stateDir, 'manifest.db'));
  try {
    m.logEvent('push-failed', dataset, { message });
  } finally {
    m.close();
  }
}

const NO_SOURCE = ['--max-snapshot-age', 'off'];
/** `ZBK <STATUS> - <text> | <perfdata>`: each perfdata item label=value[UOM];warn;crit;min;max. */
const PERF_ITEM = /^('[^']+'|[^\s'=]+)=\d+(s)?(;\d*){0,4}$/;

function perfdataOf(line: string): Map<string, string> {
  const [, perf] = line.split(' | ');
  assert.ok(perf, `no perfdata in ${line}`);
  const out = new Map<string, string>();
  for (const item of perf.trim().split(' ')) {
    assert.match(item, PERF_ITEM);
    const [label, value] = item.split('=') as [string, string];
    out.set(label, value);
  }
  return out;
}

describe('zbk check', () => {
  let repo: TestRepo;
  before(async () => {
    repo = await createRepo({ datasets: ['tank/photos', 'tank/docs'] });
  });
  after(() => repo.cleanup());

  it('parses durations', () => {
    assert.equal(parseDuration('26h'), 26 * HOUR);
    assert.equal(parseDuration('2d'), 48 * HOUR);
    assert.equal(parseDuration('90'), 90);
    assert.throws(() => parseDuration('soon'), /not a duration/);
  });

  it('CRITICAL (exit 2) when a configured dataset was never pushed', async () => {
    const r = await repo.run(['check', ...NO_SOURCE]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^ZBK CRITICAL - .*tank\/photos: never pushed/);
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
    assert.equal(perfdataOf(r.stdout.trim()).get('datasets'), '2;;;0');
  });

  it('OK (exit 0) when every newest snapshot is younger than --max-age, with perfdata', async () => {
    recordPush(repo.stateDir, 'tank/photos', 'daily-1', 2 * HOUR);
    recordPush(repo.stateDir, 'tank/docs', 'daily-1', 3 * HOUR);
    const r = await repo.run(['check', '--max-age', '26h', ...NO_SOURCE]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ZBK OK - 2 dataset\(s\) backed up.* \| age=\d+s;;93600;0 /);
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
    const perf = perfdataOf(r.stdout.trim());
    assert.match(perf.get('age') ?? '', /^108\d\ds;;93600;0$/, 'the oldest newest-snapshot: 3 h');
    assert.match(perf.get('tank/photos_age') ?? '', /^72\d\ds;;93600;0$/);
    assert.equal(perf.get('failed_pushes'), '0;;0;0');
    assert.equal(perf.get('datasets'), '2;;;0');
    const j = await repo.runJson<CheckResult>(['check', ...NO_SOURCE]);
    assert.equal(j.code, 0);
    assert.equal(j.json.status, 'OK');
    assert.equal(j.json.code, 0);
    assert.equal(j.json.ok, true);
    assert.match(j.json.message, /^2 dataset\(s\) backed up/);
    assert.deepEqual(j.json.perfdata.find((p) => p.label === 'age'), { label: 'age', value: j.json.perfdata.find((p) => p.label === 'age')!.value, uom: 's', warn: null, crit: 93600, min: 0, max: null });
    assert.deepEqual(j.json.datasets.map((d) => [d.dataset, d.latestPushed, d.status]), [['tank/photos', 'daily-1', 'OK'], ['tank/docs', 'daily-1', 'OK']]);
  });

  it('WARNING (exit 1) past --warn-age but within --max-age', async () => {
    const r = await repo.run(['check', '--warn-age', '150m', ...NO_SOURCE]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^ZBK WARNING - tank\/docs: newest pushed snapshot @daily-1 is 3h \d+m old \(warning at 2h 30m\) \| age=\d+s;9000;93600;0 /);
    assert.ok(!r.stdout.includes('tank/photos: newest'), 'tank/photos (2 h) is within both');
    const j = await repo.runJson<CheckResult>(['check', '--warn-age', '150m', ...NO_SOURCE]);
    assert.deepEqual([j.code, j.json.status, j.json.code], [1, 'WARNING', 1]);
  });

  it('CRITICAL (exit 2) on a stale backup and names the dataset', async () => {
    const r = await repo.run(['check', '--max-age', '1h', ...NO_SOURCE]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^ZBK CRITICAL - .*tank\/photos: newest pushed snapshot @daily-1 is 2h \d+m old \(limit 1h 0m\)/);
    assert.match(r.stdout, / \| age=\d+s;;3600;0 /);
    const j = await repo.runJson<CheckResult>(['check', '--max-age', '1h', ...NO_SOURCE]);
    assert.equal(j.code, 2);
    assert.equal(j.json.status, 'CRITICAL');
    assert.equal(j.json.ok, false);
    assert.equal(j.json.datasets.every((d) => d.status === 'CRITICAL'), true);
  });

  it('CRITICAL when the last push failed after the last success, with the reason (manifest event)', async () => {
    recordFailure(repo.stateDir, 'tank/docs', 'store unreachable: ECONNREFUSED');
    const j = await repo.runJson<CheckResult>(['check', 'tank/docs', ...NO_SOURCE]);
    assert.equal(j.code, 2);
    assert.equal(j.json.datasets[0]?.lastFailure?.message, 'store unreachable: ECONNREFUSED');
    assert.match(j.json.line, /^ZBK CRITICAL - tank\/docs: last push failed/);
    assert.match(j.json.line, /failed_pushes=1;;0;0/);
    // A later successful push clears it.
    recordPush(repo.stateDir, 'tank/docs', 'daily-2', HOUR);
    assert.equal((await repo.run(['check', 'tank/docs', ...NO_SOURCE])).code, 0);
  });

  it('CRITICAL on a failure recorded in the state dir (one before the manifest opened) until a later success', async () => {
    recordPushOutcome(repo.stateDir, ['tank/photos'], { ok: false, at: new Date(), code: 'WRONG_PASSPHRASE', exitCode: 4, message: 'wrong passphrase' });
    const r = await repo.run(['check', ...NO_SOURCE]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^ZBK CRITICAL - tank\/photos: last push failed at \S+: wrong passphrase/);
    // "Nothing to push" is a success as well: no new stream, only the recorded outcome.
    recordPushOutcome(repo.stateDir, ['tank/photos'], { ok: true, at: new Date(Date.now() + 1000) });
    assert.equal((await repo.run(['check', ...NO_SOURCE])).code, 0);
  });

  it('UNKNOWN (exit 3) when the push status is unreadable, but never hiding a CRITICAL', async () => {
    const status = join(repo.stateDir, 'push-status.json');
    writeFileSync(status, 'not json');
    try {
      const r = await repo.run(['check', ...NO_SOURCE]);
      assert.equal(r.code, 3, r.stdout);
      assert.match(r.stdout, /^ZBK UNKNOWN - .*push-status\.json is not a zbk push status file/);
      assert.equal((await repo.run(['check', '--max-age', '1h', ...NO_SOURCE])).code, 2);
    } finally {
      recordPushOutcome(repo.stateDir, ['tank/photos'], { ok: true, at: new Date(Date.now() + 2000) });
    }
  });

  it('UNKNOWN (exit 3) when zfs cannot list the source, but never hiding a CRITICAL', async () => {
    const config = join(repo.dir, 'nozfs.toml');
    copyFileSync(repo.configPath, config);
    appendFileSync(config, '\n[zfs]\nzfs = ["/nonexistent/zfs"]\n');
    const r = await repo.run(['check', '--config', config]);
    assert.equal(r.code, 3, r.stdout);
    assert.match(r.stdout, /^ZBK UNKNOWN - tank\/photos: cannot look at the source's snapshots/);
    const crit = await repo.run(['check', '--config', config, '--max-age', '1h']);
    assert.equal(crit.code, 2, crit.stdout);
    assert.match(crit.stdout, /^ZBK CRITICAL - .*UNKNOWN: tank\/photos: cannot look/);
    assert.equal((await repo.run(['check', '--config', config, ...NO_SOURCE])).code, 0, '"off" does not run zfs');
  });

  it('UNKNOWN (exit 3) on bad flags, with the error in --json', async () => {
    const j = await repo.runJson<CheckResult & { error: { code: string } }>(['check', '--max-age', 'whenever']);
    assert.equal(j.code, 3);
    assert.equal(j.json.status, 'UNKNOWN');
    assert.equal(j.json.code, 3);
    assert.equal(j.json.error.code, 'BAD_DURATION');
    const r = await repo.run(['check', '--no-such-flag']);
    assert.equal(r.code, 3);
    assert.match(r.stdout, /^ZBK UNKNOWN - /);
  });

  it('UNKNOWN (exit 3) without a config, or with an unreadable manifest', async () => {
    const r = await repo.run(['check'], { ZBK_CONFIG: join(repo.dir, 'nope.toml') });
    assert.equal(r.code, 3);
    assert.match(r.stdout, /^ZBK UNKNOWN - no config file/);
    const other = await createRepo({ datasets: ['tank/x'] });
    try {
      writeFileSync(join(other.stateDir, 'manifest.db'), 'this is not a SQLite database, it is garbage '.repeat(200));
      const m = await other.run(['check', ...NO_SOURCE]);
      assert.equal(m.code, 3, m.stdout + m.stderr);
      assert.match(m.stdout, /^ZBK UNKNOWN - /);
    } finally {
      other.cleanup();
    }
  });

  it('CRITICAL (exit 2), not UNKNOWN, when the manifest is missing or corrupt but push-status.json records a failed push', async () => {
    const other = await createRepo({ datasets: ['tank/x'] });
    try {
      const db = join(other.stateDir, 'manifest.db');
      writeFileSync(db, 'this is not a SQLite database, it is garbage '.repeat(200));
      recordPushOutcome(other.stateDir, ['tank/x'], { ok: false, at: new Date(), code: 'MANIFEST', exitCode: 9, message: 'the manifest is damaged' });
      let m = await other.run(['check', ...NO_SOURCE]);
      assert.equal(m.code, 2, m.stdout + m.stderr);
      assert.match(m.stdout, /^ZBK CRITICAL - tank\/x: last push failed at \S+: the manifest is damaged; UNKNOWN: .* \| failed_pushes=1;;0;0/);
      rmSync(db);
      m = await other.run(['check', ...NO_SOURCE]);
      assert.equal(m.code, 2, m.stdout + m.stderr);
      assert.match(m.stdout, /^ZBK CRITICAL - tank\/x: last push failed.*UNKNOWN: no local manifest/);
      const j = await other.runJson<CheckResult>(['check', ...NO_SOURCE]);
      assert.deepEqual([j.code, j.json.status, j.json.datasets[0]?.lastFailure?.code], [2, 'CRITICAL', 'MANIFEST']);
      // A later success clears it: UNKNOWN again (the manifest still does not open).
      recordPushOutcome(other.stateDir, ['tank/x'], { ok: true, at: new Date(Date.now() + 1000) });
      assert.equal((await other.run(['check', ...NO_SOURCE])).code, 3);
    } finally {
      other.cleanup();
    }
  });

  it('UNKNOWN (exit 3, UNKNOWN_DATASET) for a dataset neither configured nor pushed: a typo does not page', async () => {
    const r = await repo.run(['check', 'tank/typo', ...NO_SOURCE]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /^ZBK UNKNOWN - tank\/typo is neither a configured dataset nor one that was pushed/);
    const j = await repo.runJson<CheckResult & { error: { code: string } }>(['check', 'tank/typo', ...NO_SOURCE]);
    assert.deepEqual([j.code, j.json.status, j.json.error.code], [3, 'UNKNOWN', 'UNKNOWN_DATASET']);
    // A configured dataset never pushed is still CRITICAL.
    const other = await createRepo({ datasets: ['tank/new'] });
    try {
      const c = await other.run(['check', 'tank/new', ...NO_SOURCE]);
      assert.equal(c.code, 2, c.stdout);
      assert.match(c.stdout, /tank\/new: never pushed/);
    } finally {
      other.cleanup();
    }
  });
});
