/**
 * `zbk verify --deep`, the restore drill: a good chain restores into a
 * scratch dataset identical to the local snapshot (and the scratch datasets
 * are gone afterwards); a damaged volume fails with the integrity exit code;
 * archived data is never thawed without confirmation, and the cost is shown.
 */
import assert from 'node:assert/strict';
import { openSync, readSync, writeSync, closeSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeepVerifyResult } from '../../src/services/verify-deep.js';
import { jsonOf } from '../helpers/cli.js';
import { createTestPool, requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { createTestRepo } from '../helpers/repo.js';
import { startS3TestServer } from '../s3-server/index.js';

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0x01;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

test('verify --deep restores the latest snapshot into a scratch dataset and finds it identical; a flipped byte fails', async (t) => {
  if (!requireZfs(t)) return;
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  const mnt = (await pool.zfs.mountpoint(ds))!;
  const repo = await createTestRepo({ datasets: [ds] });
  t.after(() => repo.cleanup());
  writeRandomFiles(mnt, { files: 3, bytesEach: 1_000_000, seed: 'deep1' });
  await pool.zfs.snapshot(`${ds}@a`);
  assert.equal((await repo.zbk(['push'])).code, 0);
  writeRandomFiles(join(mnt, 'later'), { files: 2, bytesEach: 500_000, seed: 'deep2' });
  await pool.zfs.snapshot(`${ds}@b`);
  assert.equal((await repo.zbk(['push'])).code, 0);
  // Files changed after the snapshot must not matter: the drill compares with the snapshot.
  writeRandomFiles(join(mnt, 'after-snapshot'), { files: 1, bytesEach: 1000, seed: 'deep3' });

  const good = await repo.zbk(['verify', '--deep', '--json']);
  assert.equal(good.code, 0, good.stdout + good.stderr);
  const r = jsonOf<DeepVerifyResult>(good);
  assert.equal(r.outcome, 'verified');
  assert.equal(r.snapshot, 'b');
  assert.equal(r.comparedWithLocal, true);
  assert.ok(r.filesCompared >= 6, `compared ${r.filesCompared} entries`);
  const leftovers = (await pool.zfs.listSnapshots(ds)).length;
  assert.equal(leftovers, 2);
  for (const name of ['zbk-verify', 'zbk-verify-src']) {
    assert.equal(await pool.zfs.exists(`${pool.name}/${name}-x`), false);
  }
  const scratch = readdirSync(pool.mountpoint).filter((n) => n.startsWith('zbk-verify'));
  for (const n of scratch) assert.equal(await pool.zfs.exists(`${pool.name}/${n}`), false, `scratch dataset ${n} is destroyed (${good.stderr})`);

  const dataDir = join(repo.dir, 'store', 'data');
  const stream = readdirSync(dataDir).sort()[0]!;
  const vol = readdirSync(join(dataDir, stream)).find((f) => f.endsWith('.zbkv'))!;
  flipByte(join(dataDir, stream, vol), 5000);
  const bad = await repo.zbk(['verify', '--deep', '--json']);
  assert.equal(bad.code, 6, `a flipped byte is an integrity failure: ${bad.stdout} ${bad.stderr}`);
  // The finding is recorded, so monitoring sees it (not only this run's exit code).
  const err = jsonOf<{ error: { code: string; message: string } }>(bad).error;
  assert.equal(err.code, 'STORED_DATA_DAMAGED');
  assert.match(err.message, new RegExp(`failed authentication.*recorded as damaged.*zbk push --full ${ds}`));
  const check = await repo.zbk(['check']);
  assert.equal(check.code, 2, `check is CRITICAL after a failed drill: ${check.stdout}`);
  assert.match(check.stdout, /damaged|broken/i);
});

test('verify --deep on Deep Archive shows the thaw cost and spends nothing without --yes', async (t) => {
  if (!requireZfs(t)) return;
  const server = await startS3TestServer({ buckets: ['zbk'] });
  t.after(() => server.close());
  const pool = await createTestPool({ sizeMiB: 256 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/photos`;
  await pool.zfs.createDataset(ds);
  writeRandomFiles((await pool.zfs.mountpoint(ds))!, { files: 2, bytesEach: 1_000_000, seed: 'deepA' });
  await pool.zfs.snapshot(`${ds}@a`);
  const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  const repo = await createTestRepo({ storeUrl: 's3://zbk/x', endpoint: server.endpoint, datasets: [ds], extraEnv: env });
  t.after(() => repo.cleanup());
  assert.equal((await repo.zbk(['push'])).code, 0);

  const ask = await repo.zbk(['verify', '--deep', '--json']);
  assert.equal(ask.code, 1);
  const r = jsonOf<DeepVerifyResult>(ask);
  assert.equal(r.outcome, 'needs-confirmation');
  assert.ok(r.thawCost > 0, 'the thaw cost is shown');
  assert.equal(server.accounting.requests.RestoreObject ?? 0, 0, 'no restore requested without confirmation');

  const yes = await repo.zbk(['verify', '--deep', '--yes', '--json']);
  assert.equal(yes.code, 1);
  const y = jsonOf<DeepVerifyResult>(yes);
  assert.equal(y.outcome, 'thawing');
  assert.equal(y.restoresRequested, y.objects);
  assert.equal(server.accounting.requests.RestoreObject, y.objects);
});
