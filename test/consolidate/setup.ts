/**
 * Shared setup of the consolidation end-to-end tests: a scratch source (a
 * zfs-fuse pool, or a loop-mounted btrfs: test/e2e/source-fixture.ts) with
 * one dataset, the S3 test server with a frozen TestClock, and a zbk
 * repository on it whose CLI runs see the same instant through ZBK_NOW.
 * Prices are overridden so that consolidating a few MiB pays back (the
 * decision logic is the same at any scale; real prices would need hundreds
 * of GB of test data).
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { openStore } from '../../src/store/open-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { startZbk, type CliResult } from '../helpers/cli.js';
import { writeRandomFiles, type TestPool } from '../helpers/pool.js';
import { createTestRepo, type TestRepo } from '../helpers/repo.js';
import { restoreLatestDirect, restoreLatestDirectBtrfs } from '../helpers/restore-direct.js';
import { facts, scratchSource, type ScratchSource, type SourceUnderTest } from '../e2e/source-fixture.js';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';

export const DAY = 86_400_000;

/** The rig on either source. */
export interface SourceRig {
  kind: SourceUnderTest;
  /** The scratch pool or btrfs the dataset lives on (its restore targets too). */
  source: ScratchSource;
  server: S3TestServer;
  repo: TestRepo;
  ds: string;
  mnt: string;
  t0: Date;
  /** The name zbk records and reports for snapshot `name` (btrfs: its path relative to the mount). */
  snap(name: string): string;
  /** Run zbk at T0 + `days` (the server's clock is moved there first). */
  zbkAt(days: number, args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Open the manifest read-only for assertions. */
  manifest(): Manifest;
  /** The store as the test process sees it. */
  store(): ObjectStore;
  /** Keys under `prefix` in the bucket. */
  keys(prefix: string): Promise<string[]>;
}

/** The ZFS rig (what the consolidation tests that are not parameterized use). */
export interface Rig extends SourceRig {
  pool: TestPool;
}

export async function createRig(t: TestContext, opts: { retention?: string } = {}): Promise<Rig> {
  const rig = await createSourceRig(t, 'zfs', opts);
  return { ...rig, pool: rig.source.pool! };
}

export async function createSourceRig(t: TestContext, kind: SourceUnderTest, opts: { retention?: string } = {}): Promise<SourceRig> {
  // Midnight UTC today: close to the snapshots' real creation times (retention buckets them by month).
  const t0 = new Date(Math.floor(Date.now() / DAY) * DAY);
  const server = await startS3TestServer({ buckets: ['zbk'], clock: new TestClock(t0), restoreDelayMs: 60_000 });
  t.after(() => server.close());
  const source = await scratchSource(t, kind, { sizeMiB: 384 });
  const { ds, mnt } = await source.dataset('lib');
  const creds = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  // The test process itself reads the bucket (thaw + direct restore) with the same credentials.
  Object.assign(process.env, creds);
  const repo = await createTestRepo({ storeUrl: 's3://zbk/backups', endpoint: server.endpoint, datasets: [ds], extraEnv: { ...creds, ZBK_NOW: t0.toISOString() } });
  t.after(() => repo.cleanup());
  // A dear price makes a few MiB worth consolidating; `payback` timing lets a chain of days re-base at once
  // (these tests are about what --apply does; the default interval timing waits past the 180 days, see e2e.test.ts).
  appendFileSync(repo.configPath, `\n[prices]\ndeep_archive_gb_month = 1.0\n\n[retention]\n${opts.retention ?? 'keep_last = 1'}\n\n[consolidate]\ntiming = "payback"\n`);
  let store: ObjectStore | null = null;
  const rig: SourceRig = {
    kind,
    source,
    server,
    repo,
    ds,
    mnt,
    t0,
    snap: (name) => source.snap(name),
    zbkAt(days, args, env = {}) {
      const at = new Date(t0.getTime() + days * DAY);
      server.clock.set(at);
      return startZbk(args, { ...repo.env, ZBK_NOW: at.toISOString(), ...env }).done;
    },
    manifest: () => Manifest.open(join(repo.stateDir, 'manifest.db'), { readonly: true }),
    store() {
      store ??= openStore(loadConfig(repo.configPath).store);
      return store;
    },
    async keys(prefix) {
      const out: string[] = [];
      for await (const e of rig.store().list(prefix)) out.push(e.key);
      return out.sort();
    },
  };
  return rig;
}

/**
 * One change pushed at T0 + `day`: directory `remove` (relative to the
 * mountpoint) deleted, `files` new 1 MiB files written under `add` (seeded
 * by its name), then snapshot @`name` and `zbk push`.
 */
export async function pushChange(rig: SourceRig, day: number, name: string, change: { remove?: string; add: string; files: number }): Promise<void> {
  if (change.remove !== undefined) rmSync(join(rig.mnt, change.remove), { recursive: true });
  writeRandomFiles(join(rig.mnt, change.add), { files: change.files, bytesEach: 1024 * 1024, seed: change.add });
  // Through `rig.ds`, not a closure: tests push a second dataset with `{ ...rig, ds, mnt }`.
  await rig.source.snapshot(rig.ds, name);
  ok(await rig.zbkAt(day, ['push', rig.ds]), `push ${name}`);
}

/** Three pushes at days 0–2 (full @s1 + incrementals @s2, @s3) with deletions in between, so the old chain carries dead data. */
export async function pushChain(rig: SourceRig): Promise<void> {
  await pushChange(rig, 0, 's1', { add: 'a', files: 4 });
  await pushChange(rig, 1, 's2', { remove: join('a', 'd0'), add: 'b', files: 2 });
  await pushChange(rig, 2, 's3', { remove: 'b', add: 'c', files: 2 });
}

/** Sum of the counters `keys` of an accounting record. */
export const sum = (r: Record<string, number>, keys: string[]): number => keys.reduce((n, k) => n + (r[k] ?? 0), 0);
/** S3 operations that change (or cost money in) the store. */
export const WRITES = ['PutObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'DeleteObject', 'DeleteObjects', 'AbortMultipartUpload', 'RestoreObject'];

/** Thaw the latest snapshot's chain (RestoreObject, then let the server clock pass the restore delay). */
export async function thawLatest(rig: SourceRig): Promise<void> {
  const m = rig.manifest();
  let keys: string[];
  try {
    keys = m.chainFor(rig.ds).flatMap((s) => s.volumes.map((v) => v.key));
  } finally {
    m.close();
  }
  for (const k of keys) await rig.store().requestRestore(k, 1, 'Bulk');
  rig.server.clock.advance(2 * 60_000);
}

/**
 * Restore the latest pushed snapshot into `target` (ZFS: a new dataset;
 * btrfs: a new directory on the scratch filesystem, `rig.source.target(name)`)
 * and compare every file (contents, symlink targets, modes) with the source.
 */
export async function assertLatestRestoresIdentical(rig: SourceRig, target: string): Promise<void> {
  await thawLatest(rig);
  const { configPath, env } = rig.repo;
  let restored: string;
  if (rig.source.fs) {
    mkdirSync(target);
    restored = await restoreLatestDirectBtrfs(configPath, env.ZBK_PASSPHRASE_FILE!, rig.ds, target, rig.source.fs.btrfs);
  } else {
    const zfs = rig.source.pool!.zfs;
    await restoreLatestDirect(configPath, env.ZBK_PASSPHRASE_FILE!, rig.ds, target, zfs);
    restored = (await zfs.mount(target).catch(() => zfs.mountpoint(target))) ?? '';
  }
  const src = await facts(rig.mnt);
  assert.ok(src.files.size > 0);
  assert.deepEqual(await facts(restored), src, 'restored files differ from the source');
}

/** Exit 0 or fail with the command's stderr. */
export function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}, signal ${r.signal}): ${r.stderr}${r.stdout.slice(0, 2000)}`);
  return r;
}
