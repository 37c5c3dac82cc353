/**
 * Thousand-volume restores (issue 22): a restore step looks at its volumes
 * with listings of their restore states (one ListObjectsV2 with
 * OptionalObjectAttributes=RestoreStatus per 1,000 objects) instead of a
 * HEAD per volume, and asks for its thaws together at a bounded pace —
 * measured with the S3 test server's accounting on a synthetic chain of a
 * few hundred tiny volumes (./synthetic.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { saveJob } from '../../src/services/restore/job.js';
import { advanceVolumes } from '../../src/services/restore/run.js';
import { pollOf } from '../../src/services/restore/poll.js';
import { RestoreStep } from '../../src/services/restore/step.js';
import { THAW_BURST, THAW_CONCURRENCY, THAW_REQUESTS_PER_SECOND, thawPacer } from '../../src/services/restore/thaw-pacer.js';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';
import { syntheticRestore, type SyntheticRestore } from './synthetic.js';

const HOUR = 3_600_000;
const BUCKET = 'zbk';
/** A full stream and incrementals: 300 volumes in 6 streams. */
const STREAMS = [250, 10, 10, 10, 10, 10];
const N = STREAMS.reduce((a, b) => a + b, 0);
/** "⌈N/1000⌉ + a few". */
const LIST_BUDGET = Math.ceil(N / 1000) + 3;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function fixture(t: { after(fn: () => Promise<void> | void): void }, opts: { restoreStatusInLists?: boolean; mode?: 'free'; freeEgressGB?: number } = {}): Promise<{ server: S3TestServer; fx: SyntheticRestore }> {
  const server = await startS3TestServer({
    buckets: [BUCKET],
    restoreDelayMs: 12 * HOUR,
    clock: new TestClock(new Date('2031-05-04T10:00:00Z')),
    ...(opts.restoreStatusInLists === undefined ? {} : { restoreStatusInLists: opts.restoreStatusInLists }),
  });
  const dir = mkdtempSync(join(tmpdir(), 'zbk-poll-'));
  dirs.push(dir);
  const fx = await syntheticRestore({ dir, server, bucket: BUCKET, streams: STREAMS, ...(opts.mode ? { mode: opts.mode } : {}), ...(opts.freeEgressGB === undefined ? {} : { freeEgressGB: opts.freeEgressGB }) });
  t.after(async () => {
    fx.close();
    await server.close();
  });
  return { server, fx };
}

/** Requests of one operation since `before`. */
const since = (server: S3TestServer, before: Record<string, number>, op: string): number => (server.accounting.requests[op] ?? 0) - (before[op] ?? 0);

describe('restore polling with listings', () => {
  it(`${N} volumes: the first step lists (no HEAD per volume) and asks for every thaw at the pace; a poll while they run is ≤ ⌈N/1000⌉ + a few LISTs and no HEAD`, async (t) => {
    const { server, fx } = await fixture(t);
    let before = { ...server.accounting.requests };
    const started = performance.now();
    const first = fx.step();
    await advanceVolumes(first);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(since(server, before, 'ListObjectsV2') <= LIST_BUDGET, `first step: ${since(server, before, 'ListObjectsV2')} LISTs`);
    assert.equal(since(server, before, 'HeadObject'), 0, 'first step: no HEAD (preflight and states from the listing)');
    assert.equal(since(server, before, 'RestoreObject'), N, 'one thaw per volume');
    assert.equal(first.out.requested.length, N);
    const job = fx.job();
    assert.ok(job.preflightDone);
    assert.ok(job.volumes.every((v) => v.phase === 'restoring' && v.requestedAt !== null && v.restoreRequests === 1));
    const spent = Object.values(job.spentByMonth).reduce((a, s) => a + s.requests, 0);
    assert.ok(spent > 0, 'the requests are in the job’s spending');
    // The pace: at most THAW_CONCURRENCY in flight, and no faster than the bucket lets them start.
    const pacer = thawPacer(fx.ctx.store);
    assert.ok(pacer.stats.maxInFlight <= THAW_CONCURRENCY, `${pacer.stats.maxInFlight} in flight`);
    assert.ok(pacer.stats.maxInFlight > 1, 'the thaws run in parallel');
    const floor = (N - THAW_BURST) / THAW_REQUESTS_PER_SECOND;
    assert.ok(seconds >= floor * 0.9, `${N} requests in ${seconds.toFixed(2)} s: faster than ${THAW_REQUESTS_PER_SECOND}/s after a burst of ${THAW_BURST}`);
    // Events: one per batch of saves, naming every key.
    const events = fx.manifest.eventsOfKind('restore-requested', 1000);
    assert.equal(events.flatMap((e) => (e.detail as { keys: string[] }).keys).length, N);

    // Polls while the thaws run: LISTs only.
    for (const advance of [1, 2, 6]) {
      server.clock.advance(advance * HOUR);
      before = { ...server.accounting.requests };
      const step = fx.step();
      await advanceVolumes(step);
      assert.ok(since(server, before, 'ListObjectsV2') <= LIST_BUDGET, `poll: ${since(server, before, 'ListObjectsV2')} LISTs`);
      assert.equal(since(server, before, 'HeadObject'), 0, 'poll: no HEAD');
      assert.equal(since(server, before, 'RestoreObject'), 0, 'poll: nothing asked again');
      assert.equal(pollOf(step).stats.heads, 0);
      assert.ok(fx.job().volumes.every((v) => v.phase === 'restoring'));
    }
    // Done thawing: the listing says every copy is readable, with the expiry HEAD would report.
    server.clock.advance(12 * HOUR);
    const step = fx.step();
    before = { ...server.accounting.requests };
    await pollOf(step).refresh();
    assert.ok(since(server, before, 'ListObjectsV2') <= LIST_BUDGET);
    const v0 = step.job.volumes[0]!;
    const listed = pollOf(step).cached(v0);
    assert.equal(listed?.restore.state, 'restored');
    assert.deepEqual(listed?.restore, (await fx.ctx.store.head(v0.key)).restore);
  });

  it('an endpoint that ignores OptionalObjectAttributes: the thaws are asked for directly, a poll of running ones falls back to HEAD — and the states stay right', async (t) => {
    const { server, fx } = await fixture(t, { restoreStatusInLists: false });
    let before = { ...server.accounting.requests };
    await advanceVolumes(fx.step());
    assert.equal(since(server, before, 'HeadObject'), 0, 'never asked for: the RestoreObject answer tells the state');
    assert.equal(since(server, before, 'RestoreObject'), N);
    server.clock.advance(HOUR);
    before = { ...server.accounting.requests };
    const step = fx.step();
    await advanceVolumes(step);
    assert.equal(since(server, before, 'RestoreObject'), 0, 'a running thaw is not asked for again');
    assert.equal(since(server, before, 'HeadObject'), N, 'requested before, no state listed: one HEAD each');
    assert.ok(fx.job().volumes.every((v) => v.phase === 'restoring' && v.restoreRequests === 1 && v.expiredCopies === 0));
  });

  it('a store without listRestoreStates is polled with HEAD as before', async (t) => {
    const { server, fx } = await fixture(t);
    await advanceVolumes(fx.step());
    server.clock.advance(HOUR);
    const inner = fx.ctx.store;
    const bare = Object.create(inner) as typeof inner;
    Object.defineProperty(bare, 'listRestoreStates', { value: undefined });
    const ctx = { ...fx.ctx, store: bare };
    const before = { ...server.accounting.requests };
    const step = new RestoreStep(ctx, fx.manifest, null as never, null as never, fx.job(), { dataset: fx.dataset, target: 'pool/restored' });
    await advanceVolumes(step);
    assert.equal(since(server, before, 'ListObjectsV2'), 0);
    assert.equal(since(server, before, 'HeadObject'), N);
    assert.equal(since(server, before, 'RestoreObject'), 0);
  });

  it('a listing refused (credentials without s3:ListBucket): a warning, and the poll HEADs as before', async (t) => {
    const { server, fx } = await fixture(t);
    await advanceVolumes(fx.step());
    server.clock.advance(HOUR);
    server.addFault({ operation: 'ListObjectsV2', kind: 'access-denied' });
    const warnings: string[] = [];
    const ctx = { ...fx.ctx, log: { info() {}, warn: (m: string) => void warnings.push(m) } };
    const before = { ...server.accounting.requests };
    await advanceVolumes(new RestoreStep(ctx, fx.manifest, null as never, null as never, fx.job(), { dataset: fx.dataset, target: 'pool/restored' }));
    server.clearFaults();
    assert.equal(since(server, before, 'ListObjectsV2'), 1, 'tried once: access denied is not retried');
    assert.equal(since(server, before, 'HeadObject'), N);
    assert.equal(since(server, before, 'RestoreObject'), 0);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /one HEAD per volume/);
    assert.ok(fx.job().volumes.every((v) => v.phase === 'restoring'));
  });

  it('a month whose allowance is partly used by another restore: the batch thaws only what fits, in chain order, and defers the rest', async (t) => {
    // 300 volumes of 64 bytes; 12,800 bytes a month = 200 volumes; another restore used 6,400 this month.
    const { server, fx } = await fixture(t, { mode: 'free', freeEgressGB: (200 * 64) / 1e9 });
    const job = fx.job();
    const month = job.volumes[0]!.month;
    const firstMonth = job.volumes.filter((v) => v.month === month);
    assert.equal(firstMonth.length, 200, `the plan puts 200 volumes in ${month}`);
    // Another dataset of the repository, whose restore downloaded 100 volumes' worth this month.
    const at = new Date(server.clock.nowMs() - 86_400_000);
    fx.manifest.importCompleteStream({
      streamId: 'f'.repeat(32),
      dataset: 'tank/other',
      from: null,
      to: { name: 'o1', guid: 99n, createtxg: 9n, creation: Math.floor(at.getTime() / 1000) },
      plaintextSize: 64,
      storedSize: 64,
      volumeSize: 64,
      partSize: 5 * 1024 * 1024,
      startedAt: at,
      completedAt: at,
      volumes: [{ index: 0, key: `data/${'f'.repeat(32)}/000000.zbkv`, storageClass: 'DEEP_ARCHIVE', storedSize: 64, partCount: 1, plaintextSize: 64, plaintextSha256: '0'.repeat(64), uploadedAt: at }],
    });
    saveJob(fx.manifest, { ...job, dataset: 'tank/other', volumes: [], streams: [], egressByMonth: { [server.clock.now().toISOString().slice(0, 7)]: 100 * 64 } });
    const before = { ...server.accounting.requests };
    await advanceVolumes(fx.step());
    const after = fx.job();
    const requested = after.volumes.filter((v) => v.requestedAt !== null);
    assert.equal(since(server, before, 'RestoreObject'), 100, 'what the rest of the allowance takes');
    assert.deepEqual(
      requested.map((v) => v.key),
      after.volumes.slice(0, 100).map((v) => v.key),
      'in chain order',
    );
    assert.ok(after.volumes.slice(100, 200).every((v) => v.phase === 'scheduled' && v.notBefore), 'the rest of the month deferred');
    assert.equal(since(server, before, 'HeadObject'), 0);
  });
});
