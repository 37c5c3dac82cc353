/**
 * `zbk verify --deep`, the restore drill, on each snapshot source (zfs-fuse,
 * and real btrfs in the zfs-fuse lane: test/e2e/source-fixture.ts): a good
 * chain restores into scratch space (ZFS: a scratch dataset; btrfs: a
 * scratch directory next to zbk's pins) identical to the local snapshot,
 * and the scratch datasets or subvolumes are gone afterwards; a damaged
 * volume fails with the integrity exit code; archived data is never thawed
 * without confirmation, and the cost is shown.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { openSync, readSync, writeSync, closeSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeepVerifyResult } from '../../src/services/verify-deep.js';
import { jsonOf } from '../helpers/cli.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { requireSource, sourceRepo, sourcesUnderTest, type SourceRepo } from '../e2e/source-fixture.js';
import { startS3TestServer } from '../s3-server/index.js';

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0x01;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

/**
 * What the drill must leave behind: exactly the user's snapshots and zbk's
 * own protection. ZFS: no `zbk-verify-*` scratch dataset (received copy or
 * clone) on the pool. btrfs: no subvolume anywhere on the filesystem but the
 * dataset, the user's snapshots under snaps/ and zbk's pin of the last
 * pushed snapshot (`btrfs subvolume list -a`), and nothing in the pin
 * directory but that pin (the drill's scratch directory is gone too).
 */
async function assertNoScratchLeft(src: SourceRepo, snapshots: string[], why: string): Promise<void> {
  if (src.pool) {
    const { pool, ds } = src;
    assert.equal((await pool.zfs.listSnapshots(ds)).length, snapshots.length);
    for (const name of ['zbk-verify', 'zbk-verify-src']) {
      assert.equal(await pool.zfs.exists(`${pool.name}/${name}-x`), false);
    }
    const scratch = readdirSync(pool.mountpoint).filter((n) => n.startsWith('zbk-verify'));
    for (const n of scratch) assert.equal(await pool.zfs.exists(`${pool.name}/${n}`), false, `scratch dataset ${n} is destroyed (${why})`);
    return;
  }
  const fs = src.fs!;
  const pins = await fs.btrfs.listPins(src.ds);
  assert.deepEqual(pins.map((p) => p.snapshot.name), [snapshots.at(-1)], 'zbk keeps its pin of the last pushed snapshot only');
  const pinDir = await fs.btrfs.pinDirectory(src.ds);
  assert.deepEqual(readdirSync(pinDir), pins.map((p) => p.ref.slice(pinDir.length + 1)), `nothing but the pin in ${pinDir} (${why})`);
  const list = spawnSync('btrfs', ['subvolume', 'list', '-a', fs.mountpoint], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  // `-a` paths are relative to the top level, as `<FS_TREE>/path`.
  const paths = list.stdout
    .trim()
    .split('\n')
    .map((l) => / path (?:<FS_TREE>\/)?(.*)$/.exec(l)![1]!)
    .sort();
  const pinRel = (p: string): string => p.slice(fs.mountpoint.length + 1);
  const expected = [pinRel(src.ds), '.zbk', ...pins.map((p) => pinRel(p.ref)), ...snapshots].sort();
  assert.deepEqual(paths, expected, `no scratch subvolume left (${why})`);
}

for (const kind of sourcesUnderTest) test(`[${kind}] verify --deep restores the latest snapshot into scratch space and finds it identical; a flipped byte fails`, async (t) => {
  if (!requireSource(t, kind)) return;
  const src = await sourceRepo(t, kind, { sizeMiB: 256, name: 'photos' });
  const { ds, mnt, repo } = src;
  writeRandomFiles(mnt, { files: 3, bytesEach: 1_000_000, seed: 'deep1' });
  await src.snapshot('a');
  assert.equal((await repo.zbk(['push'])).code, 0);
  writeRandomFiles(join(mnt, 'later'), { files: 2, bytesEach: 500_000, seed: 'deep2' });
  await src.snapshot('b');
  assert.equal((await repo.zbk(['push'])).code, 0);
  // Files changed after the snapshot must not matter: the drill compares with the snapshot.
  writeRandomFiles(join(mnt, 'after-snapshot'), { files: 1, bytesEach: 1000, seed: 'deep3' });

  const good = await repo.zbk(['verify', '--deep', '--json']);
  assert.equal(good.code, 0, good.stdout + good.stderr);
  const r = jsonOf<DeepVerifyResult>(good);
  assert.equal(r.outcome, 'verified');
  assert.equal(r.snapshot, src.snap('b'));
  assert.equal(r.ok, true);
  assert.deepEqual(r.differences, []);
  assert.equal(r.comparedWithLocal, true);
  assert.equal(r.streams, 2, 'the full and the incremental were received');
  assert.ok(r.filesCompared >= 6, `compared ${r.filesCompared} entries`);
  await assertNoScratchLeft(src, ['a', 'b'].map((n) => src.snap(n)), good.stderr);

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
  // A drill that failed in the middle of the receive cleans up too.
  await assertNoScratchLeft(src, ['a', 'b'].map((n) => src.snap(n)), bad.stderr);
});

for (const kind of sourcesUnderTest) test(`[${kind}] verify --deep on Deep Archive shows the thaw cost and spends nothing without --yes`, async (t) => {
  if (!requireSource(t, kind)) return;
  const server = await startS3TestServer({ buckets: ['zbk'] });
  t.after(() => server.close());
  const env = { AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey, AWS_REGION: server.region };
  const src = await sourceRepo(t, kind, { sizeMiB: 256, name: 'photos', repo: { storeUrl: 's3://zbk/x', endpoint: server.endpoint, extraEnv: env } });
  const { repo } = src;
  writeRandomFiles(src.mnt, { files: 2, bytesEach: 1_000_000, seed: 'deepA' });
  await src.snapshot('a');
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
