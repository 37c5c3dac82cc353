/**
 * Fixture for restore tests: a test pool with a dataset pushed (full + three
 * incrementals) through the CLI to the S3 test server with Deep Archive
 * semantics, and a service context over the same repository whose clock is
 * the server's clock.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { loadJob, restoreRun, type RestoreJob } from '../../src/services/restore/index.js';
import { createContext, type ServiceContext } from '../../src/services/context.js';
import { passphraseSource } from '../../src/services/passphrase.js';
import { openStore } from '../../src/store/open-store.js';
import { writeRandomFiles, type TestPool } from '../helpers/pool.js';
import { scratchSource, type ScratchSource, type SourceUnderTest } from '../e2e/source-fixture.js';
import { createTestRepo, type TestRepo } from '../helpers/repo.js';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';

/** The restore fixture on either source (`source` says which and knows its targets). */
export interface SourceRestoreFixture extends Omit<RestoreFixture, 'pool'> {
  source: ScratchSource;
}

export interface RestoreFixture {
  pool: TestPool;
  server: S3TestServer;
  repo: TestRepo;
  dataset: string;
  /** Every pushed dataset (`dataset` first), each with the same snapshots. */
  datasets: string[];
  /** Mountpoint of the source dataset (its files equal the last snapshot's). */
  sourceMount: string;
  snapshots: string[];
  /** A service context on the repository, clock = the server's clock. */
  context(): ServiceContext;
}

export interface FixtureOptions {
  /** Frozen clock start; absent = the clock follows real time. */
  start?: Date;
  restoreDelayMs: number;
  /** Full stream size ≈ files × 4 MiB. */
  fullFiles: number;
  volumeSize: string;
  /** Datasets to push, as names under the pool (default: photos). */
  names?: string[];
}

/** The ZFS restore fixture (zfs-fuse, or OpenZFS in its lane). */
export async function pushedFixture(t: TestContext, o: FixtureOptions): Promise<RestoreFixture> {
  const fx = await pushedSourceFixture(t, 'zfs', o);
  return { ...fx, pool: fx.source.pool! };
}

/** A dataset on `kind` pushed (full + three incrementals) to the S3 test server with Deep Archive semantics. */
export async function pushedSourceFixture(t: TestContext, kind: SourceUnderTest, o: FixtureOptions): Promise<SourceRestoreFixture> {
  const server = await startS3TestServer({ buckets: ['zbk'], restoreDelayMs: o.restoreDelayMs, clock: o.start ? new TestClock(o.start) : new TestClock() });
  t.after(() => server.close());
  const source = await scratchSource(t, kind, { sizeMiB: 400 });
  const datasets: string[] = [];
  const mounts: string[] = [];
  for (const n of o.names ?? ['photos']) {
    const { ds, mnt } = await source.dataset(n);
    datasets.push(ds);
    mounts.push(mnt);
  }
  const dataset = datasets[0]!;
  const sourceMount = mounts[0]!;
  const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  const repo = await createTestRepo({ storeUrl: 's3://zbk/backups', endpoint: server.endpoint, datasets, extraEnv: env, partSize: '5MiB', volumeSize: o.volumeSize });
  t.after(() => repo.cleanup());

  const snapshots = ['s1', 's2', 's3', 's4'].map((n) => source.snap(n));
  for (const [d, ds] of datasets.entries()) {
    const mount = mounts[d]!;
    writeRandomFiles(mount, { files: o.fullFiles, bytesEach: 4 * 1024 * 1024, seed: `full${d === 0 ? '' : d}` });
    for (const [i, snap] of snapshots.entries()) {
      if (i > 0) {
        writeRandomFiles(join(mount, `inc${i}`), { files: 1, bytesEach: 1024 * 1024 + i * 4096, seed: `inc${i}` });
        appendFileSync(join(mount, 'notes.txt'), `change ${i}\n`);
      }
      // btrfs: a snapshot per dataset under snaps/, so the second dataset's are named apart.
      const name = `s${i + 1}${kind === 'btrfs' && d > 0 ? `-${d}` : ''}`;
      await source.snapshot(ds, name);
      const r = await repo.zbk(['push', ds]);
      assert.equal(r.code, 0, `push ${ds} ${snap}: ${r.stderr}`);
    }
  }
  const context = (): ServiceContext => {
    const config = loadConfig(repo.configPath);
    return createContext(config, passphraseSource(repo.env.ZBK_PASSPHRASE_FILE), {
      store: openStore(config.store, { credentials: server.credentials }),
      now: () => server.clock.now(),
    });
  };
  return { source, server, repo, dataset, datasets, sourceMount, snapshots, context };
}

const HOUR = 3_600_000;

/** The saved restore job of `dataset` (read-only). */
export function jobOf(stateDir: string, dataset: string): RestoreJob {
  const m = Manifest.open(join(stateDir, 'manifest.db'), { readonly: true });
  try {
    const j = loadJob(m, dataset);
    assert.ok(j, 'no saved job');
    return j;
  } finally {
    m.close();
  }
}

/** Run the restore (moving the server's clock as the runs say) until done; `between` runs after every unfinished run. */
export async function runToDone(
  fx: Pick<RestoreFixture, 'dataset' | 'repo' | 'server'>,
  ctx: ServiceContext,
  target: string,
  between: (job: RestoreJob) => Promise<void> = async () => {},
  runOptions: { force?: boolean } = {},
): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const r = await restoreRun(ctx, { dataset: fx.dataset, target, ...runOptions });
    if (r.done) return;
    await between(jobOf(fx.repo.stateDir, fx.dataset));
    if (r.next.kind === 'wait-until') fx.server.clock.set(new Date(Math.max(Date.parse(r.next.at!), fx.server.clock.nowMs() + 1)));
    else fx.server.clock.advance(6 * HOUR);
  }
  const j = jobOf(fx.repo.stateDir, fx.dataset);
  assert.fail(`the restore did not finish: ${JSON.stringify({ next: j.next, streams: j.streams.map((s) => [s.to.name, s.received]), vols: j.volumes.map((v) => [v.streamIndex, v.month, v.phase, v.restoreRequests, v.lastError]) })}`);
}
