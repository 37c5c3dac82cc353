#!/usr/bin/env node
/**
 * Thousand-volume restores (issue #22, item 2); run it through
 * `scripts/bench-restore-poll`, which builds first when dist is stale. Not a
 * test.
 *
 * A synthetic restore (test/restore/synthetic.ts): a chain of N tiny
 * DEEP_ARCHIVE volumes (a full stream and daily one-volume incrementals) in
 * the S3 test server, in this process so its accounting counts every
 * request; the restore planned asap. It times and counts, with the server's
 * accounting:
 *   first   the first step: listing, preflight, every thaw requested (paced)
 *   poll    a step while the thaws run (median of --polls), the target being
 *           ≤ ⌈N/1000⌉ + a few requests
 *   head    the same poll through a store without listRestoreStates: one
 *           HEAD per volume, what every poll cost before
 *   quiet   (with --quiet) a poll against a server that ignores
 *           OptionalObjectAttributes: the HEAD fallback
 * Times include the server's work (same process, loopback).
 *
 * Usage: scripts/bench-restore-poll [--volumes 5000] [--incrementals 50] [--polls 3] [--quiet]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const dist = new URL('../dist/', import.meta.url);
const { startS3TestServer, TestClock } = await import(new URL('test/s3-server/index.js', dist));
const { syntheticRestore } = await import(new URL('test/restore/synthetic.js', dist));
const { advanceVolumes } = await import(new URL('src/services/restore/run.js', dist));
const { pollOf } = await import(new URL('src/services/restore/poll.js', dist));
const { RestoreStep } = await import(new URL('src/services/restore/step.js', dist));
const { thawPacer, THAW_REQUESTS_PER_SECOND, THAW_CONCURRENCY } = await import(new URL('src/services/restore/thaw-pacer.js', dist));

const { values } = parseArgs({
  options: {
    volumes: { type: 'string', default: '5000' },
    incrementals: { type: 'string', default: '50' },
    polls: { type: 'string', default: '3' },
    quiet: { type: 'boolean', default: false },
  },
});
const N = Number(values.volumes);
const INCS = Math.min(Number(values.incrementals), N - 1);
const POLLS = Number(values.polls);
const HOUR = 3_600_000;
const streams = [N - INCS, ...Array.from({ length: INCS }, () => 1)];
const target = Math.ceil(N / 1000);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ops = ['ListObjectsV2', 'HeadObject', 'RestoreObject'];

/** Run `fn`, returning seconds and the requests the server saw meanwhile. */
async function measured(server, fn) {
  const before = { ...server.accounting.requests };
  const t0 = performance.now();
  const out = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const req = Object.fromEntries(ops.map((op) => [op, (server.accounting.requests[op] ?? 0) - (before[op] ?? 0)]));
  return { seconds, req, total: Object.values(req).reduce((a, b) => a + b, 0), out };
}

async function scenario(restoreStatusInLists) {
  const server = await startS3TestServer({ buckets: ['zbk'], restoreDelayMs: 48 * HOUR, clock: new TestClock(new Date('2031-05-04T10:00:00Z')), restoreStatusInLists });
  const dir = mkdtempSync(join(tmpdir(), 'zbk-bench-poll-'));
  try {
    const t0 = performance.now();
    const fx = await syntheticRestore({ dir, server, bucket: 'zbk', streams });
    const setup = (performance.now() - t0) / 1000;
    const first = await measured(server, () => advanceVolumes(fx.step()));
    const pacer = thawPacer(fx.ctx.store);
    const polls = [];
    for (let i = 0; i < POLLS; i++) {
      server.clock.advance(HOUR);
      const step = fx.step();
      const m = await measured(server, () => advanceVolumes(step));
      polls.push({ ...m, stats: pollOf(step).stats });
    }
    let head = null;
    if (restoreStatusInLists) {
      server.clock.advance(HOUR);
      const inner = fx.ctx.store;
      const bare = Object.create(inner);
      Object.defineProperty(bare, 'listRestoreStates', { value: undefined });
      const step = new RestoreStep({ ...fx.ctx, store: bare }, fx.manifest, null, null, fx.job(), { dataset: fx.dataset, target: 'pool/restored' });
      head = await measured(server, () => advanceVolumes(step));
    }
    const phases = new Set(fx.job().volumes.map((v) => v.phase));
    fx.close();
    return { setup, first, pacer: { ...pacer.stats }, polls, head, phases: [...phases] };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (m) => `${m.req.ListObjectsV2} LIST + ${m.req.HeadObject} HEAD + ${m.req.RestoreObject} RestoreObject = ${m.total}`;
const r = await scenario(true);
const poll = r.polls[Math.floor(r.polls.length / 2)];
const pollSeconds = median(r.polls.map((p) => p.seconds));
const pollRequests = Math.max(...r.polls.map((p) => p.total));
console.log(`# bench-restore-poll: ${N} volumes in ${streams.length} streams (1 full of ${streams[0]}, ${INCS} incrementals of 1), S3 test server in-process`);
console.log(`setup (manifest + ${N} PUTs): ${r.setup.toFixed(1)} s; phases after the polls: ${r.phases.join(', ')}`);
console.log('');
console.log('| step | requests | seconds | note |');
console.log('| --- | --- | --- | --- |');
console.log(`| first step (list, preflight, thaws) | ${fmt(r.first)} | ${r.first.seconds.toFixed(2)} | ${(r.first.req.RestoreObject / r.first.seconds).toFixed(0)} thaws/s achieved (limit ${THAW_REQUESTS_PER_SECOND}/s, ${THAW_CONCURRENCY} in flight; max in flight ${r.pacer.maxInFlight}) |`);
console.log(`| poll while thawing (median of ${r.polls.length}) | ${fmt(poll)} | ${pollSeconds.toFixed(3)} | target ≤ ⌈N/1000⌉ + a few = ${target} + a few: ${pollRequests <= target + 3 ? 'met' : 'MISSED'} (max ${pollRequests}) |`);
if (r.head) console.log(`| the same poll, one HEAD per volume (no listRestoreStates) | ${fmt(r.head)} | ${r.head.seconds.toFixed(2)} | what every poll cost before |`);
if (values.quiet) {
  const q = await scenario(false);
  const qp = q.polls[Math.floor(q.polls.length / 2)];
  console.log(`| first step, endpoint ignores OptionalObjectAttributes | ${fmt(q.first)} | ${q.first.seconds.toFixed(2)} | thaws asked for directly |`);
  console.log(`| poll, endpoint ignores OptionalObjectAttributes | ${fmt(qp)} | ${median(q.polls.map((p) => p.seconds)).toFixed(2)} | HEAD fallback |`);
}
