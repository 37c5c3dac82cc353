/**
 * `zbk restore run --wait` as a separate process, killed with SIGKILL in the
 * middle of a download and in the middle of `zfs receive` (or `btrfs
 * receive`, on the btrfs source), then run again:
 * the target ends identical to the source, verified bytes on disk are not
 * fetched again, and no restore is requested twice.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireSource, sourcesUnderTest } from '../e2e/source-fixture.js';
import { hashTree } from '../helpers/tree-hash.js';
import { startZbk, type CliRun } from '../helpers/cli.js';
import { pushedSourceFixture } from './helpers.js';

/** Files under `dir` (recursively) whose name ends with `suffix`, with sizes. */
function filesEnding(dir: string, suffix: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (n.endsWith(suffix)) out.push({ path: p, size: st.size });
    }
  };
  walk(dir);
  return out;
}

/** Pids of running `zfs receive` processes into `target`. */
function receivePids(target: string): number[] {
  const pids: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      // On the OpenZFS lane the local process is the ssh client whose one
      // command argument holds the quoted `zfs receive … target`.
      const argv = readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0');
      const quoted = argv.some((a) => a.includes("'receive'") && a.includes(`'${target}'`));
      if ((argv.includes('receive') && argv.includes(target)) || quoted) pids.push(Number(n));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Poll (no timing assertion) until `cond` holds or the run ends; true when `cond` held. */
async function until(run: CliRun, cond: () => boolean): Promise<boolean> {
  let ended = false;
  void run.done.then(() => (ended = true));
  while (!ended) {
    if (cond()) return true;
    await sleep(5);
  }
  return false;
}

for (const kind of sourcesUnderTest) test(`[${kind}] restore run killed with SIGKILL during a download and during the receive resumes to identical files`, { timeout: 600_000 }, async (t) => {
  if (!requireSource(t, kind)) return;
  // Real-time clock: restores complete after 300 ms; 20 MiB volumes of four 5 MiB parts.
  const fx = await pushedSourceFixture(t, kind, { restoreDelayMs: 300, fullFiles: 6, volumeSize: '20MiB' });
  const { repo, server, dataset } = fx;
  const target = fx.source.target('restored');
  const staging = join(repo.stateDir, 'restore');
  // Slow ranged GETs a little so the kill lands inside a volume.
  server.addFault({ operation: 'GetObject', kind: 'latency', latencyMs: 150 });

  let r = await repo.zbk(['restore', 'plan', dataset, '--asap']);
  assert.equal(r.code, 0, r.stderr);
  const args = ['restore', 'run', dataset, '--target', target, '--wait', '--poll-interval', '1'];

  // 1. Kill during a download: a partial file with at least one part, before the volume is whole.
  let run = startZbk(args, repo.env);
  // At least one part of a volume (four 5 MiB parts) is staged, the volume not whole yet.
  const fiveMiBPart = 5 * 1024 * 1024 + 64 * 1024;
  const sizeOf = (suffix: string): number => filesEnding(staging, suffix).reduce((a, f) => a + f.size, 0);
  const inDownload = await until(run, () => sizeOf('.partial') >= fiveMiBPart);
  if (!inDownload) assert.fail(`the run ended before any download started: ${(await run.done).stderr}`);
  run.child.kill('SIGKILL');
  await killed(run);
  const partialAtKill = sizeOf('.partial');
  const outAtKill = server.accounting.bytesOut;
  // Fetched but not on disk when killed (the part being opened, the GETs running ahead): lost, fetched again.
  const lostAtFirstKill = Math.max(0, outAtKill - partialAtKill - sizeOf('.zbkv'));
  server.clearFaults();

  // 2. Rerun, kill during zfs receive.
  run = startZbk(args, repo.env);
  const inReceive = await until(run, () => receivePids(target).length > 0);
  if (!inReceive) assert.fail(`the run ended before zfs receive started: ${(await run.done).stderr}`);
  run.child.kill('SIGKILL');
  await killed(run);
  // The orphaned zfs receive sees its input end and exits; wait for it before rerunning.
  while (receivePids(target).length > 0) await sleep(20);

  // 3. Rerun to the end: the interrupted stream is received again from its first byte, and it says why.
  r = await repo.zbk(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /again from its first byte: its earlier receive \(.*\) was interrupted/);
  const dst = await hashTree(await fx.source.restoredPath(target, fx.snapshots.at(-1)!));
  assert.deepEqual(dst, await hashTree(fx.sourceMount));

  // Verified bytes were not fetched twice: total egress ≤ stored bytes + what was in flight at the kill + key file reads.
  r = await repo.zbk(['restore', 'status', dataset, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const status = JSON.parse(r.stdout) as { restores: { totalBytes: number; next: { kind: string }; receivedSnapshots: string[] }[] };
  const s = status.restores[0]!;
  assert.equal(s.next.kind, 'done');
  assert.deepEqual(s.receivedSnapshots, fx.snapshots);
  assert.ok(partialAtKill > 0 && outAtKill > 0, 'the first kill left a partial download');
  assert.deepEqual(filesEnding(staging, '.partial'), [], 'nothing left staged');
  // What was lost at the first kill, plus at most three parts in flight at the second (one being
  // opened and written, two GETs ahead): less than a volume, so a volume fetched twice fails this.
  const bound = s.totalBytes + lostAtFirstKill + 3 * fiveMiBPart + 64 * 1024;
  assert.ok(server.accounting.bytesOut <= bound, `bytes out ${server.accounting.bytesOut} for ${s.totalBytes} stored (${lostAtFirstKill} lost at the first kill)`);
  // One restore request per volume, none repeated.
  assert.equal(server.accounting.restoreRequestsByTier.Bulk, filesEnding(staging, '.bad').length + (await volumeCount(repo.zbk)));
});

async function killed(run: CliRun): Promise<void> {
  const r = await run.done;
  assert.equal(r.signal, 'SIGKILL', `the run was not killed (exit ${r.code}): ${r.stderr}`);
}

async function volumeCount(zbk: (a: string[]) => Promise<{ stdout: string }>): Promise<number> {
  const r = await zbk(['restore', 'status', '--json']);
  const s = JSON.parse(r.stdout) as { restores: { months: { volumes: unknown[] }[] }[] };
  return s.restores[0]!.months.reduce((a, m) => a + m.volumes.length, 0);
}
