/**
 * `zbk consolidate --apply` killed with SIGKILL at every step (the intent,
 * inside the push of the new full, verification, superseding, each step of
 * a deletion, before the mirror), then rerun: the manifest is consistent,
 * nothing a kept snapshot needs was deleted, nothing was deleted before
 * 180 days, no stream record outlives its stream, and the latest snapshot
 * restores identically at the end.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { streamRecordKey } from '../../src/layout.js';
import { PENDING_DELETE_KEY } from '../../src/services/consolidate/delete.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { DAY, assertLatestRestoresIdentical, createRig, ok, type Rig } from './setup.js';

const POINTS = [
  'consolidate-intent-recorded',
  'part-acked:1',
  'stream-record-written',
  'stream-committed',
  'holds-moved',
  'consolidate-verified',
  'consolidate-superseded',
  'consolidate-delete-recorded',
  'consolidate-objects-deleted',
  'consolidate-volumes-marked',
  'consolidate-records-deleted',
  'consolidate-before-mirror',
];

/** What must hold right after a kill: the manifest is sound and every object the latest snapshot's chain needs is in the store. */
async function assertNothingNeededLost(rig: Rig, when: string): Promise<void> {
  const stored = new Set(await rig.keys('data/'));
  const m = rig.manifest();
  try {
    assert.deepEqual(m.integrityCheck().problems, [], `${when}: manifest integrity`);
    for (const s of m.chainFor(rig.ds)) for (const v of s.volumes) assert.ok(stored.has(v.key), `${when}: ${v.key} of the latest chain is missing`);
  } finally {
    m.close();
  }
}

/** What must hold after a clean rerun. */
async function assertSettled(rig: Rig, day: number, when: string): Promise<void> {
  const stored = new Set(await rig.keys('data/'));
  const records = await rig.keys('streams/');
  const now = rig.t0.getTime() + day * DAY;
  const m = rig.manifest();
  try {
    assert.deepEqual(m.integrityCheck().problems, [], `${when}: manifest integrity`);
    assert.equal(m.getValue(PENDING_DELETE_KEY), undefined, `${when}: a deletion is still pending`);
    assert.equal(m.getValue(`consolidate:${rig.ds}`), undefined, `${when}: a consolidation is still pending`);
    const chain = m.chainFor(rig.ds);
    assert.equal(chain.length, 1, `${when}: the latest restores from one full stream`);
    const wanted: string[] = [];
    for (const s of m.streams(rig.ds)) {
      assert.ok(s.state !== 'uploading' && s.state !== 'abandoned', `${when}: stream ${s.streamId} is ${s.state}`);
      if (s.state !== 'deleted') wanted.push(streamRecordKey(s.streamId));
      for (const v of m.volumes(s.streamId)) {
        if (v.state === 'complete') assert.ok(stored.has(v.key), `${when}: ${v.key} is recorded but not stored`);
        if (v.state === 'deleted') {
          assert.ok(!stored.has(v.key), `${when}: ${v.key} is recorded deleted but still stored`);
          const age = (v.deletedAt!.getTime() - v.uploadedAt!.getTime()) / DAY;
          assert.ok(age >= 180, `${when}: ${v.key} was deleted at ${age} days old`);
        }
        if (v.state === 'complete' && v.uploadedAt && now - v.uploadedAt.getTime() < 180 * DAY) assert.ok(stored.has(v.key));
      }
    }
    assert.deepEqual(records, wanted.sort(), `${when}: stream records match the streams still stored`);
  } finally {
    m.close();
  }
  assert.deepEqual(await rig.store().listMultipartUploads('data/'), [], `${when}: no open multipart upload`);
}

test('consolidate --apply killed at every step reruns to a consistent state without losing anything needed', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);
  writeRandomFiles(join(rig.mnt, 'base'), { files: 3, bytesEach: 1024 * 1024, seed: 'base' });
  await rig.pool.zfs.snapshot(`${rig.ds}@s0`);
  ok(await rig.zbkAt(0, ['push', rig.ds]), 'push s0');

  for (const [i, point] of POINTS.entries()) {
    // 200 days apart: the previous round's superseded objects are due now, this round's are not.
    const day = 1 + 200 * i;
    // Dead data in the chain is what makes a new full pay back.
    if (i === 0) for (const d of ['d0', 'd1']) rmSync(join(rig.mnt, 'base', d), { recursive: true });
    else rmSync(join(rig.mnt, `r${i - 1}`), { recursive: true });
    writeRandomFiles(join(rig.mnt, `r${i}`), { files: 1, bytesEach: 1024 * 1024, seed: `r${i}` });
    await rig.pool.zfs.snapshot(`${rig.ds}@s${i + 1}`);
    ok(await rig.zbkAt(day, ['push', rig.ds]), `push s${i + 1}`);

    const killed = await rig.zbkAt(day, ['consolidate', '--apply'], { ZBK_CRASH_AT: point });
    assert.equal(killed.signal, 'SIGKILL', `round ${i}: the run was not killed at ${point} (exit ${killed.code}): ${killed.stderr}`);
    await assertNothingNeededLost(rig, `after a kill at ${point}`);
    ok(await rig.zbkAt(day, ['consolidate', '--apply']), `rerun after ${point}`);
    await assertSettled(rig, day, `rerun after ${point}`);
  }
  await assertLatestRestoresIdentical(rig, `${rig.pool.name}/restored`);
});
