/**
 * An object overwritten with other bytes of the same size, its metadata and
 * storage class copied back (a bad sync, a tool "repairing" the bucket):
 * `zbk verify` finds it by the ETag recorded at push (exit 6, naming it),
 * says what it checked and what needs --deep; the finding is recorded, so
 * `zbk status` shows the chain broken with the snapshots still restorable;
 * a plain push says an incremental does not help; `zbk push --full
 * --dry-run` shows the cost of a new chain and `zbk push --full` makes one,
 * after which status is healthy again. On a file:// store and through the
 * S3 test server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { loadConfig } from '../../src/config/config.js';
import type { PushResult } from '../../src/services/push.js';
import type { StatusResult } from '../../src/services/status.js';
import type { VerifyResult } from '../../src/services/verify.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { openStore } from '../../src/store/open-store.js';
import { jsonOf } from '../helpers/cli.js';
import { createTestPool, requireZfs, writeRandomFiles, type TestPool } from '../helpers/pool.js';
import { createTestRepo, type TestRepo } from '../helpers/repo.js';
import { startS3TestServer } from '../s3-server/index.js';

/** Replace `key` with random bytes of the same size, copying its class and user metadata back. */
async function overwriteSameSize(store: ObjectStore, key: string): Promise<void> {
  const info = await store.head(key);
  await store.put(key, new Uint8Array(randomBytes(info.size)), { storageClass: info.storageClass, metadata: info.metadata });
  const after = await store.head(key);
  assert.equal(after.size, info.size);
  assert.equal(after.storageClass, info.storageClass);
  assert.deepEqual(after.metadata, info.metadata);
}

async function status(repo: TestRepo): Promise<StatusResult> {
  const r = await repo.zbk(['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return jsonOf<StatusResult>(r);
}

/** A dataset with @one (full) and @two (incremental) pushed. */
async function pushedTwice(pool: TestPool, repo: TestRepo, ds: string): Promise<string> {
  const mnt = (await pool.zfs.mountpoint(ds))!;
  writeRandomFiles(mnt, { files: 2, bytesEach: 400_000, seed: 'ow1' });
  await pool.zfs.snapshot(`${ds}@one`);
  assert.equal((await repo.zbk(['push'])).code, 0);
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 300_000, seed: 'ow2' });
  await pool.zfs.snapshot(`${ds}@two`);
  assert.equal((await repo.zbk(['push'])).code, 0);
  return mnt;
}

test('file:// store: an overwritten volume of the same size fails verify, breaks the chain in status, and push --full mends it', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  const repo = await createTestRepo({ datasets: [ds] });
  t.after(() => repo.cleanup());
  const mnt = await pushedTwice(pool, repo, ds);

  const good = await repo.zbk(['verify', '--json']);
  assert.equal(good.code, 0, good.stdout);
  const g = jsonOf<VerifyResult>(good);
  assert.equal(g.coverage.etagMatched, g.coverage.volumes, 'every volume pushed by this zbk has its ETag checked');
  assert.deepEqual(g.coverage.sizeAndMetadataOnly, []);

  const before = await status(repo);
  const inc = before.datasets[0]!.chain.find((c) => c.kind === 'incremental')!;
  const key = `data/${inc.streamId}/000000.zbkv`;

  // A volume recorded without an ETag (pushed by a zbk before schema 5): size and metadata only, and verify says so.
  const fullKey = `data/${before.datasets[0]!.chain[0]!.streamId}/000000.zbkv`;
  const db = new Database(join(repo.stateDir, 'manifest.db'));
  db.prepare('UPDATE volumes SET etag = NULL WHERE object_key = ?').run(fullKey);
  db.close();
  const legacy = await repo.zbk(['verify', '--json']);
  assert.equal(legacy.code, 0, legacy.stdout);
  assert.deepEqual(jsonOf<VerifyResult>(legacy).coverage.sizeAndMetadataOnly, [fullKey]);
  const legacyHuman = await repo.zbk(['verify']);
  assert.match(legacyHuman.stdout, /1 of them with the ETag .*; 1 checked for size and metadata only \(pushed before zbk recorded ETags/);
  assert.match(legacyHuman.stdout, /OK: every object present as pushed \(1 by size and metadata only\); contents not restored \(--deep does\)/);
  await overwriteSameSize(new LocalStore(join(repo.dir, 'store')), key);

  // 1. verify finds it and says what it proved.
  const v = await repo.zbk(['verify', '--json']);
  assert.equal(v.code, 6, v.stdout);
  const vr = jsonOf<VerifyResult>(v);
  assert.deepEqual(vr.problems.map((p) => p.key), [key]);
  assert.match(vr.problems[0]!.problem, /replaced since the push.*ETag/);
  assert.match(vr.coverage.needsDeep, /--deep/);
  assert.equal(vr.chains[0]!.ok, false);
  assert.deepEqual(vr.chains[0]!.restorable, ['one']);
  const human = await repo.zbk(['verify']);
  assert.equal(human.code, 6);
  assert.match(human.stdout, new RegExp(`PROBLEM ${key}.*replaced`));
  assert.match(human.stdout, /checked: 1 volume\(s\) present with the recorded size, storage class and sealed metadata.*1 checked for size and metadata only/);
  assert.match(human.stdout, /not proved: that the bytes still decrypt.*zbk verify --deep/);
  assert.match(human.stdout, /BROKEN .*@two cannot be restored; still restorable: @one; run "zbk push --full/);
  assert.doesNotMatch(human.stdout, /intact/);

  // 2. status shows the chain broken, from the manifest alone.
  const broken = (await status(repo)).datasets[0]!;
  assert.equal(broken.health, 'broken');
  assert.deepEqual(broken.integrity.restorable, ['one']);
  assert.deepEqual(broken.integrity.unrestorable, ['two']);
  assert.deepEqual(broken.chain.find((c) => c.streamId === inc.streamId)!.damaged, [key]);
  const sh = await repo.zbk(['status']);
  assert.match(sh.stdout, /CHAIN BROKEN: @two cannot be restored/);
  assert.match(sh.stdout, new RegExp(`${key} \\(stream to @two\\): was replaced`));
  assert.match(sh.stdout, /zbk push --full .*--dry-run/);

  // 3. A plain push only adds an incremental to the broken chain, and says so.
  writeRandomFiles(join(mnt, 'three'), { files: 1, bytesEach: 100_000, seed: 'ow3' });
  await pool.zfs.snapshot(`${ds}@three`);
  const plain = await repo.zbk(['push']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /the chain is broken .*this incremental will not be restorable either.*zbk push --full/);
  assert.deepEqual((await status(repo)).datasets[0]!.integrity.unrestorable, ['two', 'three']);

  // 4. push --full --dry-run: the cost of a new chain, nothing uploaded.
  const dry = await repo.zbk(['push', '--full', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const d = jsonOf<PushResult>(dry).results[0]!;
  assert.equal(d.dryRun, true);
  assert.equal(d.kind, 'full');
  assert.equal(d.snapshot, 'three');
  assert.ok(d.costBytes > 0 && d.estimatedMonthlyCost > 0, JSON.stringify(d));
  const dryHuman = await repo.zbk(['push', '--full', '--dry-run']);
  assert.match(dryHuman.stdout, /would send full @three \(a full stream was requested\), about .*; upload ≈ \$[\d.]+, storage ≈ \$[\d.]+\/month/);
  assert.equal((await status(repo)).datasets[0]!.health, 'broken', 'the dry run changed nothing');

  // 5. push --full: the cost first, then a new full chain; status is healthy again.
  const full = await repo.zbk(['push', '--full']);
  assert.equal(full.code, 0, full.stderr);
  const shown = full.stdout.indexOf('sending a new full chain @three');
  assert.ok(shown >= 0 && shown < full.stdout.indexOf('pushed full @three'), full.stdout);
  assert.match(full.stdout, /sending a new full chain @three, about .*; upload ≈ \$/);
  const healed = (await status(repo)).datasets[0]!;
  assert.equal(healed.health, 'ok');
  assert.deepEqual(healed.chain.map((c) => [c.kind, c.to]), [['full', 'three']]);
  assert.deepEqual(healed.integrity.restorable, ['one', 'three']);
  assert.deepEqual(healed.integrity.unrestorable, ['two']);
  const sh2 = await repo.zbk(['status']);
  assert.doesNotMatch(sh2.stdout, /CHAIN BROKEN/);
  assert.match(sh2.stdout, /older snapshots not restorable .*: @two/);
  // The damaged object is still referenced by the old chain: verify still names it, but the newest is restorable.
  const after = jsonOf<VerifyResult>(await repo.zbk(['verify', '--json']));
  assert.deepEqual(after.problems.map((p) => p.key), [key]);
  assert.equal(after.chains[0]!.ok, true);
});

test('S3: a volume overwritten through the API with the same size, class and metadata fails verify by its ETag', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const server = await startS3TestServer({ buckets: ['zbk'] });
  t.after(() => server.close());
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  const repo = await createTestRepo({ storeUrl: 's3://zbk/backups', endpoint: server.endpoint, datasets: [ds], extraEnv: env });
  t.after(() => repo.cleanup());
  await pushedTwice(pool, repo, ds);
  assert.equal((await repo.zbk(['verify'])).code, 0);

  // A store error that is not a finding (access denied on a volume's HEAD) stops verify with exit 5 and records nothing.
  server.addFault({ operation: 'HeadObject', kind: 'access-denied' });
  const denied = await repo.zbk(['verify', '--json']);
  server.clearFaults();
  assert.equal(denied.code, 5, denied.stdout + denied.stderr);
  assert.match(denied.stdout + denied.stderr, /denied/i);
  const healthy = (await status(repo)).datasets[0]!;
  assert.equal(healthy.health, 'ok', 'nothing recorded as damage');
  assert.deepEqual(healthy.integrity.brokenBy, []);

  const full = (await status(repo)).datasets[0]!.chain[0]!;
  const key = `data/${full.streamId}/000000.zbkv`;
  const store = openStore(loadConfig(repo.configPath).store, { credentials: server.credentials });
  assert.match((await store.head(key)).etag ?? '', /-\d+$/, 'pushed as a multipart object');
  await overwriteSameSize(store, key);
  assert.equal((await store.head(key)).storageClass, 'DEEP_ARCHIVE');

  const v = await repo.zbk(['verify', '--json']);
  assert.equal(v.code, 6, v.stdout);
  const vr = jsonOf<VerifyResult>(v);
  assert.deepEqual(vr.problems.map((p) => p.key), [key]);
  assert.match(vr.problems[0]!.problem, /replaced since the push: the store reports ETag [0-9a-f]{32}, the push recorded [0-9a-f]{32}-\d+/);
  assert.deepEqual(vr.chains[0]!.restorable, [], 'the full stream is damaged: nothing is restorable');
  const st = (await status(repo)).datasets[0]!;
  assert.equal(st.health, 'broken');
  assert.match(st.integrity.remedy!, /no pushed snapshot is restorable; run "zbk push --full/);
});
