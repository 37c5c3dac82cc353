/**
 * What only OpenZFS has, on the real module in the QEMU guest
 * (`npm run test:openzfs`): raw sends of natively encrypted datasets,
 * bookmarks as the incremental base so pruners are never blocked, send
 * estimates in `--dry-run` and `--json`, and send flags recorded per stream.
 * Test streams are a few MB: the guest link is ~4 MB/s.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireOpenZfs, writeRandomFiles } from '../helpers/pool.js';
import { jsonOf } from '../helpers/cli.js';
import { hashTree } from '../helpers/tree-hash.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import { datasetRepo, mountOf } from '../e2e/fixture.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { PushResult } from '../../src/services/push.js';
import type { DeepVerifyResult } from '../../src/services/verify-deep.js';

/** Run zfs (in the guest) with `input` on stdin; throw with its stderr on failure. */
function zfsIn(args: string[], input = ''): string {
  const r = spawnSync('zfs', args, { input, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`zfs ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

function prop(name: string, p: string): string {
  return zfsIn(['get', '-Hp', '-o', 'value', p, name]).trim();
}

/** Every file of the store, concatenated (to look for leaked names). */
function storeBytes(dir: string): Buffer {
  const parts: Buffer[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else parts.push(Buffer.from(p), readFileSync(p));
    }
  };
  walk(dir);
  return Buffer.concat(parts);
}

function streamRows(stateDir: string, ds: string) {
  const m = Manifest.open(join(stateDir, 'manifest.db'), { readonly: true });
  try {
    return m.streams(ds).filter((s) => s.state === 'complete');
  } finally {
    m.close();
  }
}

const HEX_KEY = 'a1'.repeat(32);

test('OpenZFS: this is the real module, and zbk detects all it can do', async (t) => {
  if (!requireOpenZfs(t)) return;
  const v = spawnSync('zfs', ['version'], { encoding: 'utf8' });
  assert.match(v.stdout, /^zfs-2\.3\./m);
  assert.match(v.stdout, /^zfs-kmod-2\.3\./m, 'the kernel module answers');
  const { pool } = await datasetRepo(t, { sizeMiB: 128 });
  const caps = await pool.zfs.capabilities();
  assert.equal(caps.implementation, 'openzfs');
  for (const k of ['rawSend', 'compressedSend', 'largeBlocks', 'embeddedData', 'sendEstimate', 'resumeTokens', 'bookmarks', 'holdsList', 'listParsable'] as const) {
    assert.equal(caps[k], true, k);
  }
});

test('OpenZFS: an encrypted dataset is sent raw (full + two incrementals), restored still encrypted, and opens with its own key', async (t) => {
  if (!requireOpenZfs(t)) return;
  const { pool, repo } = await datasetRepo(t, { sizeMiB: 256, name: 'plain' });
  const ds = `${pool.name}/secretphotos`;
  zfsIn(['create', '-o', 'encryption=on', '-o', 'keyformat=hex', '-o', 'keylocation=prompt', ds], `${HEX_KEY}\n`);
  appendFileSync(repo.configPath, `\n[[dataset]]\nname = "${ds}"\n`);
  const mnt = await mountOf(pool, ds);

  writeRandomFiles(mnt, { files: 3, bytesEach: 512 * 1024, seed: 'enc-a' });
  zfsIn(['snapshot', `${ds}@s1`]);
  let r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jsonOf<PushResult>(r).results[0]!.kind, 'full');
  writeRandomFiles(join(mnt, 'more'), { files: 2, bytesEach: 256 * 1024, seed: 'enc-b' });
  zfsIn(['snapshot', `${ds}@s2`]);
  r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  appendFileSync(join(mnt, 'notes.txt'), 'third\n');
  zfsIn(['snapshot', `${ds}@s3`]);
  r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);

  const rows = streamRows(repo.stateDir, ds);
  assert.deepEqual(rows.map((s) => `${s.from?.name ?? '-'}>${s.to.name}`), ['->s1', 's1>s2', 's2>s3']);
  for (const s of rows) assert.ok(s.sendFlags?.includes('-w'), `stream ${s.to.name} was sent raw: ${JSON.stringify(s.sendFlags)}`);
  // zbk's own encryption still wraps the raw stream: no name reaches the store.
  assert.equal(storeBytes(join(repo.dir, 'store')).includes(Buffer.from('secretphotos')), false, 'the dataset name is hidden in the store');

  // The restore drill receives the raw chain and says what it could not compare.
  const deep = await repo.zbk(['verify', '--deep', '--dataset', ds, '--json']);
  assert.equal(deep.code, 0, deep.stdout + deep.stderr);
  const drill = jsonOf<DeepVerifyResult>(deep);
  assert.equal(drill.outcome, 'verified');
  assert.equal(drill.comparedWithLocal, false);
  assert.match(drill.filesNotCompared ?? '', /sent raw/);

  const target = `${pool.name}/restored`;
  await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, pool.zfs);
  assert.equal(prop(target, 'encryption'), 'aes-256-gcm', 'the restored dataset is still natively encrypted');
  assert.equal(prop(target, 'keystatus'), 'unavailable', 'its key was never sent');
  zfsIn(['load-key', '-L', 'prompt', target], `${HEX_KEY}\n`);
  zfsIn(['mount', target]);
  assert.deepEqual(await hashTree(await mountOf(pool, target)), await hashTree(mnt), 'restored files differ from the source');
});

test('OpenZFS: the base is kept by a bookmark, not a hold: a pruner destroys it, the next push is incremental from the bookmark, the chain restores', async (t) => {
  if (!requireOpenZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { sizeMiB: 256 });
  writeRandomFiles(mnt, { files: 2, bytesEach: 512 * 1024, seed: 'bm-a' });
  await pool.zfs.snapshot(`${ds}@s1`);
  let r = await repo.zbk(['push', ds]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await pool.zfs.userRefs(`${ds}@s1`), 0, 'no long-lived hold on the pushed base');
  assert.ok((await pool.zfs.listBookmarks(ds)).some((b) => b.shortName === 'zbk-s1'), 'zbk bookmarked the base');

  // What sanoid does every day: it must succeed.
  zfsIn(['destroy', `${ds}@s1`]);
  writeRandomFiles(join(mnt, 'later'), { files: 1, bytesEach: 256 * 1024, seed: 'bm-b' });
  await pool.zfs.snapshot(`${ds}@s2`);
  r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const res = jsonOf<PushResult>(r).results[0]!;
  assert.equal(res.kind, 'incremental', 'sent from the bookmark, not full again');
  assert.equal(res.base, 's1');
  assert.equal(await pool.zfs.userRefs(`${ds}@s2`), 0, 'send holds are released when the send ends');
  assert.deepEqual((await pool.zfs.listBookmarks(ds)).filter((b) => b.shortName.startsWith('zbk-')).map((b) => b.shortName), ['zbk-s2']);

  const target = `${pool.name}/restored`;
  await restoreLatestDirect(repo.configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, target, pool.zfs);
  assert.deepEqual(await hashTree(await pool.zfs.mount(target)), await hashTree(mnt));
});

test('OpenZFS: protect_base = "hold" keeps the hold a user asked for', async (t) => {
  if (!requireOpenZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { sizeMiB: 128 });
  appendFileSync(repo.configPath, '\n[zfs]\nprotect_base = "hold"\n');
  writeRandomFiles(mnt, { files: 1, bytesEach: 256 * 1024, seed: 'hold' });
  await pool.zfs.snapshot(`${ds}@s1`);
  const r = await repo.zbk(['push', ds]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await pool.zfs.holds(`${ds}@s1`), ['zbk']);
  const d = spawnSync('zfs', ['destroy', `${ds}@s1`], { encoding: 'utf8' });
  assert.notEqual(d.status, 0, 'a held snapshot cannot be destroyed');
});

test('OpenZFS: push --dry-run shows the zfs send -nP estimate and its cost; the real push carries the total in --json; flags are recorded', async (t) => {
  if (!requireOpenZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { sizeMiB: 128 });
  writeRandomFiles(mnt, { files: 2, bytesEach: 1024 * 1024, seed: 'est' });
  await pool.zfs.snapshot(`${ds}@s1`);
  const dry = await repo.zbk(['push', ds, '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const est = jsonOf<PushResult>(dry).results[0]!;
  assert.ok(est.estimatedBytes !== null && est.estimatedBytes > 2 * 1024 * 1024, `estimate: ${est.estimatedBytes}`);
  assert.ok(est.estimatedUploadCost > 0);
  const text = await repo.zbk(['push', ds, '--dry-run']);
  assert.match(text.stdout + text.stderr, /about [\d.]+ [kM]B/, 'the human dry run names the estimated size');

  const real = await repo.zbk(['push', ds, '--json']);
  assert.equal(real.code, 0, real.stderr);
  const pushed = jsonOf<PushResult>(real).results[0]!;
  assert.equal(pushed.estimatedBytes, est.estimatedBytes, 'the real push reports the same total it showed');
  assert.ok(Math.abs(pushed.plaintextBytes - est.estimatedBytes!) < 0.05 * pushed.plaintextBytes, 'the estimate is close to what was sent');
  const [row] = streamRows(repo.stateDir, ds);
  assert.deepEqual(row!.sendFlags, ['-c', '-L', '-e'], 'an unencrypted dataset: -c -L -e, not raw');
});

test('OpenZFS: an encrypted dataset whose base a pruner destroyed goes on raw from the bookmark; zbk restore run brings the chain back locked and says how to open it', async (t) => {
  if (!requireOpenZfs(t)) return;
  const { pool, repo } = await datasetRepo(t, { sizeMiB: 256, name: 'plain' });
  const ds = `${pool.name}/vault`;
  zfsIn(['create', '-o', 'encryption=on', '-o', 'keyformat=hex', '-o', 'keylocation=prompt', ds], `${HEX_KEY}\n`);
  appendFileSync(repo.configPath, `\n[[dataset]]\nname = "${ds}"\n`);
  const mnt = await mountOf(pool, ds);
  writeRandomFiles(mnt, { files: 2, bytesEach: 384 * 1024, seed: 'vault-a' });
  zfsIn(['snapshot', `${ds}@s1`]);
  assert.equal((await repo.zbk(['push', ds])).code, 0);
  writeRandomFiles(join(mnt, 'b'), { files: 1, bytesEach: 256 * 1024, seed: 'vault-b' });
  zfsIn(['snapshot', `${ds}@s2`]);
  assert.equal((await repo.zbk(['push', ds])).code, 0);
  zfsIn(['destroy', `${ds}@s2`]); // the pruner
  writeRandomFiles(join(mnt, 'c'), { files: 1, bytesEach: 256 * 1024, seed: 'vault-c' });
  zfsIn(['snapshot', `${ds}@s3`]);
  const r = await repo.zbk(['push', ds, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const res = jsonOf<PushResult>(r).results[0]!;
  assert.equal(res.kind, 'incremental');
  assert.equal(res.base, 's2', 'sent from the bookmark of the pruned base');
  assert.ok(res.sendFlags?.includes('-w'), `raw from a bookmark: ${JSON.stringify(res.sendFlags)}`);

  const target = `${pool.name}/back`;
  const plan = await repo.zbk(['restore', 'plan', ds, '--asap']);
  assert.equal(plan.code, 0, plan.stderr);
  const run = await repo.zbk(['restore', 'run', ds, '--target', target, '--wait', '--poll-interval', '1']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`zfs load-key ${target}`), 'the restore says how to open the locked copy');
  assert.equal(prop(target, 'keystatus'), 'unavailable');
  zfsIn(['load-key', '-L', 'prompt', target], `${HEX_KEY}\n`);
  zfsIn(['mount', target]);
  assert.deepEqual(await hashTree(await mountOf(pool, target)), await hashTree(mnt), 'restored files differ from the source');
});
