/**
 * `zbk check`: exit codes, one-line output and --json on fresh, stale,
 * failed and never-pushed datasets. The manifest is populated directly
 * (import of a complete stream with a chosen snapshot time), so the verdict
 * does not depend on how long the test takes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Manifest } from '../../src/manifest/manifest.js';
import { volumeKey } from '../../src/layout.js';
import type { CheckResult } from '../../src/services/check.js';
import { parseDuration } from '../../src/services/check.js';
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

  it('fails (exit 1) when a configured dataset was never pushed', async () => {
    const r = await repo.run(['check']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^CRITICAL: .*tank\/photos: never pushed/);
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
  });

  it('passes (exit 0) when every newest snapshot is younger than --max-age', async () => {
    recordPush(repo.stateDir, 'tank/photos', 'daily-1', 2 * HOUR);
    recordPush(repo.stateDir, 'tank/docs', 'daily-1', 3 * HOUR);
    const r = await repo.run(['check', '--max-age', '26h']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^OK: 2 dataset\(s\)/);
    const j = await repo.runJson<CheckResult>(['check']);
    assert.equal(j.code, 0);
    assert.equal(j.json.ok, true);
    assert.deepEqual(j.json.datasets.map((d) => [d.dataset, d.latestPushed, d.ok]), [['tank/photos', 'daily-1', true], ['tank/docs', 'daily-1', true]]);
  });

  it('fails (exit 1) on a stale backup and names the dataset', async () => {
    const r = await repo.run(['check', '--max-age', '1h']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /CRITICAL: .*tank\/photos: newest pushed snapshot @daily-1 is 2h \d+m old \(limit 1h 0m\)/);
    const j = await repo.runJson<CheckResult>(['check', '--max-age', '1h']);
    assert.equal(j.code, 1);
    assert.equal(j.json.ok, false);
    assert.equal(j.json.datasets.every((d) => !d.ok), true);
  });

  it('fails when the last push failed after the last success, with the reason', async () => {
    recordFailure(repo.stateDir, 'tank/docs', 'store unreachable: ECONNREFUSED');
    const j = await repo.runJson<CheckResult>(['check', 'tank/docs']);
    assert.equal(j.code, 1);
    assert.equal(j.json.datasets[0]?.lastFailure?.message, 'store unreachable: ECONNREFUSED');
    assert.match(j.json.line, /tank\/docs: last push failed/);
    // A later successful push clears it.
    recordPush(repo.stateDir, 'tank/docs', 'daily-2', HOUR);
    assert.equal((await repo.run(['check', 'tank/docs'])).code, 0);
  });

  it('rejects a bad --max-age with exit 2', async () => {
    const j = await repo.runJson<{ error: { code: string } }>(['check', '--max-age', 'whenever']);
    assert.equal(j.code, 2);
    assert.equal(j.json.error.code, 'BAD_DURATION');
  });

  it('exits 3 without a config', async () => {
    const r = await repo.run(['check'], { ZBK_CONFIG: join(repo.dir, 'nope.toml') });
    assert.equal(r.code, 3);
  });
});
