/**
 * What consolidation never deletes, however old: the volumes an unfinished
 * restore plans to download (until it is planned anew on the new chain),
 * and anything at all while the chain of a kept snapshot is no longer whole
 * in the store (the old chain may then be the only whole copy).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConsolidateResult } from '../../src/services/consolidate/run.js';
import { jsonOf } from '../helpers/cli.js';
import { requireZfs } from '../helpers/pool.js';
import { createRig, ok, pushChain } from './setup.js';

test('consolidate deletes nothing an unfinished restore plans to download', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  await pushChain(rig); // chain A, days 0–2
  const chainA = await rig.keys('data/');
  ok(await rig.zbkAt(3, ['restore', 'plan', rig.ds, '--json']), 'restore plan (a drill, still running)');

  // Day 200: chain A is past its 180 days; the re-base would delete it at once.
  const first = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(200, ['consolidate', rig.ds, '--apply', '--json']), 'apply during the restore'));
  assert.ok(first.datasets[0]!.consolidated, 'a new full was pushed');
  assert.deepEqual(first.datasets[0]!.deleted, [], 'nothing deleted while the restore needs it');
  assert.deepEqual((await rig.keys('data/')).filter((k) => chainA.includes(k)), chainA, 'every volume of the planned chain is still stored');

  // The restore planned anew (on the new full): chain A is no longer held and goes.
  ok(await rig.zbkAt(201, ['restore', 'plan', rig.ds, '--reset', '--json']), 'restore plan --reset');
  const second = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(201, ['consolidate', rig.ds, '--apply', '--json']), 'apply after the new plan'));
  assert.deepEqual(second.datasets[0]!.deleted.map((d) => d.key).sort(), [...chainA].sort());
  assert.deepEqual((await rig.keys('data/')).filter((k) => chainA.includes(k)), []);
});

test('consolidate deletes nothing while the chain that replaced it is no longer whole in the store', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  await pushChain(rig); // chain A, days 0–2
  const chainA = await rig.keys('data/');
  const first = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--apply', '--json']), 'apply at day 3'));
  assert.ok(first.datasets[0]!.consolidated, 'a new full was pushed; chain A is scheduled for later');
  const newFull = (await rig.keys('data/')).filter((k) => !chainA.includes(k));
  assert.ok(newFull.length > 0);

  // Months later a volume of the new full is gone (a second writer, a hand clean-up, a lifecycle rule).
  await rig.store().deleteMany([newFull[0]!]);
  const r = await rig.zbkAt(200, ['consolidate', rig.ds, '--apply', '--json']);
  assert.equal(r.code, 6, `${r.stdout} ${r.stderr}`);
  assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'KEPT_CHAIN_DAMAGED');
  assert.deepEqual((await rig.keys('data/')).filter((k) => chainA.includes(k)), chainA, 'chain A, the only whole copy, is kept');
});

test('a dataset that fails does not keep the others from being consolidated, nor the mirror from being written', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  const other = `${rig.pool.name}/zz`;
  await rig.pool.zfs.createDataset(other);
  const rigB = { ...rig, ds: other, mnt: (await rig.pool.zfs.mountpoint(other))! };
  await pushChain(rig);
  const chainA = await rig.keys('data/');
  await pushChain(rigB);
  const chainB = (await rig.keys('data/')).filter((k) => !chainA.includes(k));
  const first = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', '--apply', '--json']), 'apply at day 3'));
  assert.ok(first.datasets.every((d) => d.consolidated), 'both re-based; their old chains scheduled for later');
  const m = rig.manifest();
  const streamsA = m.streams(rig.ds).map((s) => s.streamId);
  m.close();
  const newFullA = (await rig.keys('data/')).filter((k) => !chainA.includes(k) && !chainB.includes(k)).find((k) => streamsA.some((id) => k.includes(id)));
  assert.ok(newFullA);
  await rig.store().deleteMany([newFullA]);
  const mirrorsBefore = await rig.keys('manifest/');

  const r = await rig.zbkAt(200, ['consolidate', '--apply', '--json']);
  assert.equal(r.code, 6, `${r.stdout} ${r.stderr}`);
  assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'KEPT_CHAIN_DAMAGED');
  const left = await rig.keys('data/');
  assert.deepEqual(left.filter((k) => chainA.includes(k)), chainA, 'the failing dataset keeps its old chain');
  assert.deepEqual(left.filter((k) => chainB.includes(k)), [], 'the other one was still consolidated: its old chain is gone');
  assert.notDeepEqual(await rig.keys('manifest/'), mirrorsBefore, 'a mirror records the deletions');
});

test('verify checks the superseded streams that can still restore an older snapshot', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  await pushChain(rig);
  const chainA = await rig.keys('data/');
  ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--apply', '--json']), 'apply at day 3: chain A superseded, still stored');
  ok(await rig.zbkAt(3, ['verify', '--json']), 'verify with everything in place');
  await rig.store().deleteMany([chainA[0]!]);
  const r = await rig.zbkAt(3, ['verify', '--json']);
  assert.equal(r.code, 6, `${r.stdout} ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { problems: { key: string }[] };
  assert.ok(out.problems.some((p) => p.key === chainA[0]), JSON.stringify(out.problems));
});
