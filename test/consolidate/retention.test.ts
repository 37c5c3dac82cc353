/**
 * Retention and consolidation: a snapshot that retention keeps stays
 * restorable through consolidation and pruning — even when the rules change
 * between a killed `--apply` and its rerun (the rerun re-checks what may be
 * superseded against the rules in force, not the ones it planned with).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConsolidateResult } from '../../src/services/consolidate/run.js';
import { jsonOf } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { createRig, ok } from './setup.js';

test('a kept snapshot stays restorable when retention grows between a killed --apply and its rerun', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  writeRandomFiles(join(rig.mnt, 'a'), { files: 3, bytesEach: 1024 * 1024, seed: 'ra' });
  await rig.pool.zfs.snapshot(`${rig.ds}@s1`);
  ok(await rig.zbkAt(0, ['push', rig.ds]), 'push s1');
  for (const d of ['d0', 'd1']) rmSync(join(rig.mnt, 'a', d), { recursive: true });
  writeRandomFiles(join(rig.mnt, 'b'), { files: 1, bytesEach: 1024 * 1024, seed: 'rb' });
  await rig.pool.zfs.snapshot(`${rig.ds}@s2`);
  ok(await rig.zbkAt(1, ['push', rig.ds]), 'push s2');
  rmSync(join(rig.mnt, 'b'), { recursive: true });
  writeRandomFiles(join(rig.mnt, 'c'), { files: 1, bytesEach: 1024 * 1024, seed: 'rc' });
  await rig.pool.zfs.snapshot(`${rig.ds}@s3`);
  ok(await rig.zbkAt(2, ['push', rig.ds]), 'push s3');

  // Planned with keep_last = 1 (the whole chain goes), killed after verifying the new full.
  const killed = await rig.zbkAt(3, ['consolidate', '--apply'], { ZBK_CRASH_AT: 'consolidate-verified' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  writeFileSync(rig.repo.configPath, readFileSync(rig.repo.configPath, 'utf8').replace('keep_last = 1', 'keep_last = 2'));

  const report = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', '--json']), 'report'));
  assert.deepEqual(report.datasets[0]!.kept.map((k) => k.name), ['s3', 's2']);
  assert.equal(report.datasets[0]!.resumed, true, 'the report says a consolidation is pending');

  const m0 = rig.manifest();
  // The old chain (the new full of s3 is already recorded: the kill came after its push).
  const byName = new Map(m0.streams(rig.ds).filter((s) => s.kind === 'incremental' || s.to.name === 's1').map((s) => [s.to.name, s]));
  const s2Guid = byName.get('s2')!.to.guid;
  const s2Chain = m0.chainFor(rig.ds, s2Guid).map((s) => s.streamId);
  m0.close();

  const rerun = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', '--apply', '--json']), 'rerun'));
  const superseded = rerun.datasets[0]!.consolidated?.superseded ?? [];
  assert.deepEqual(superseded, [byName.get('s3')!.streamId], 'only the stream no kept snapshot needs is superseded');

  // Long after every minimum duration: only that stream's objects go; s2 still restores from what is stored.
  const late = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(400, ['consolidate', '--apply', '--json']), 'apply at day 400'));
  const m1 = rig.manifest();
  try {
    const s3Keys = m1.volumes(byName.get('s3')!.streamId).map((v) => v.key).sort();
    assert.deepEqual(late.datasets[0]!.deleted.map((d) => d.key).sort(), s3Keys);
    const chain = m1.chainFor(rig.ds, s2Guid);
    assert.deepEqual(chain.map((s) => s.streamId), s2Chain);
    const stored = new Set(await rig.keys('data/'));
    for (const s of chain) for (const v of s.volumes) assert.ok(stored.has(v.key), `${v.key} of kept @s2 was deleted`);
  } finally {
    m1.close();
  }
});
