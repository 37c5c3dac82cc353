/**
 * Shared setup of the consolidation end-to-end tests: a zfs-fuse pool, the
 * S3 test server with a frozen TestClock, and a zbk repository on it whose
 * CLI runs see the same instant through ZBK_NOW. Prices are overridden so
 * that consolidating a few MiB pays back (the decision logic is the same at
 * any scale; real prices would need hundreds of GB of test data).
 */
import assert from 'node:assert/strict';
import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { openStore } from '../../src/store/open-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { startZbk, type CliResult } from '../helpers/cli.js';
import { createTestPool, writeRandomFiles, type TestPool } from '../helpers/pool.js';
import { createTestRepo, type TestRepo } from '../helpers/repo.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import { hashTree } from '../helpers/tree-hash.js';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';

export const DAY = 86_400_000;

export interface Rig {
  pool: TestPool;
  server: S3TestServer;
  repo: TestRepo;
  ds: string;
  mnt: string;
  t0: Date;
  /** Run zbk at T0 + `days` (the server's clock is moved there first). */
  zbkAt(days: number, args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Open the manifest read-only for assertions. */
  manifest(): Manifest;
  /** The store as the test process sees it. */
  store(): ObjectStore;
  /** Keys under `prefix` in the bucket. */
  keys(prefix: string): Promise<string[]>;
}

export async function createRig(t: TestContext, opts: { retention?: string } = {}): Promise<Rig> {
  // Midnight UTC today: close to the snapshots' real creation times (retention buckets them by month).
  const t0 = new Date(Math.floor(Date.now() / DAY) * DAY);
  const server = await startS3TestServer({ buckets: ['zbk'], clock: new TestClock(t0), restoreDelayMs: 60_000 });
  t.after(() => server.close());
  const pool = await createTestPool({ sizeMiB: 384 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/lib`;
  await pool.zfs.createDataset(ds);
  const mnt = await pool.zfs.mountpoint(ds);
  assert.ok(mnt);
  const creds = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  // The test process itself reads the bucket (thaw + direct restore) with the same credentials.
  Object.assign(process.env, creds);
  const repo = await createTestRepo({ storeUrl: 's3://zbk/backups', endpoint: server.endpoint, datasets: [ds], extraEnv: { ...creds, ZBK_NOW: t0.toISOString() } });
  t.after(() => repo.cleanup());
  appendFileSync(repo.configPath, `\n[prices]\ndeep_archive_gb_month = 1.0\n\n[retention]\n${opts.retention ?? 'keep_last = 1'}\n`);
  let store: ObjectStore | null = null;
  const rig: Rig = {
    pool,
    server,
    repo,
    ds,
    mnt,
    t0,
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
export async function pushChange(rig: Rig, day: number, name: string, change: { remove?: string; add: string; files: number }): Promise<void> {
  if (change.remove !== undefined) rmSync(join(rig.mnt, change.remove), { recursive: true });
  writeRandomFiles(join(rig.mnt, change.add), { files: change.files, bytesEach: 1024 * 1024, seed: change.add });
  await rig.pool.zfs.snapshot(`${rig.ds}@${name}`);
  ok(await rig.zbkAt(day, ['push', rig.ds]), `push ${name}`);
}

/** Three pushes at days 0–2 (full @s1 + incrementals @s2, @s3) with deletions in between, so the old chain carries dead data. */
export async function pushChain(rig: Rig): Promise<void> {
  await pushChange(rig, 0, 's1', { add: 'a', files: 4 });
  await pushChange(rig, 1, 's2', { remove: join('a', 'd0'), add: 'b', files: 2 });
  await pushChange(rig, 2, 's3', { remove: 'b', add: 'c', files: 2 });
}

/** Sum of the counters `keys` of an accounting record. */
export const sum = (r: Record<string, number>, keys: string[]): number => keys.reduce((n, k) => n + (r[k] ?? 0), 0);
/** S3 operations that change (or cost money in) the store. */
export const WRITES = ['PutObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'DeleteObject', 'DeleteObjects', 'AbortMultipartUpload', 'RestoreObject'];

/** Thaw the latest snapshot's chain (RestoreObject, then let the server clock pass the restore delay). */
export async function thawLatest(rig: Rig): Promise<void> {
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

/** Restore the latest pushed snapshot into a new dataset and compare every file with the source. */
export async function assertLatestRestoresIdentical(rig: Rig, target: string): Promise<void> {
  await thawLatest(rig);
  await restoreLatestDirect(rig.repo.configPath, rig.repo.env.ZBK_PASSPHRASE_FILE!, rig.ds, target, rig.pool.zfs);
  const mounted = (await rig.pool.zfs.mount(target).catch(() => rig.pool.zfs.mountpoint(target))) ?? '';
  const src = await hashTree(rig.mnt);
  const dst = await hashTree(mounted);
  assert.ok(src.size > 0);
  assert.deepEqual(dst, src, 'restored files differ from the source');
}

/** Exit 0 or fail with the command's stderr. */
export function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}, signal ${r.signal}): ${r.stderr}${r.stdout.slice(0, 2000)}`);
  return r;
}
