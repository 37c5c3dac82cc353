/**
 * What the scale work (scripts/bench-scale, docs/BENCHMARKS.md) changed in
 * the manifest's shape of work, with the behaviour kept: the batch import a
 * rebuild uses (one transaction, a refused stream rolled back alone), the
 * one-query volume reads, and the ordered concurrency of verify and
 * rebuild (`forEachInOrder`).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { forEachInOrder } from '../../src/concurrency.js';
import type { Keyring } from '../../src/crypto/types.js';
import { volumeKey } from '../../src/layout.js';
import { Manifest, type ImportStreamInput } from '../../src/manifest/manifest.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
let n = 0;
const at = new Date('2025-06-01T00:00:00Z');
const DS = 'tank/scale';

function input(to: bigint, from: bigint | null, sizes: number[] = [10]): ImportStreamInput {
  const streamId = randomBytes(16).toString('hex');
  const volumes = sizes.map((size, index) => ({
    index, key: volumeKey(streamId, index), storageClass: 'DEEP_ARCHIVE', storedSize: size + 40, partCount: 1, plaintextSize: size,
    plaintextSha256: 'a'.repeat(64), etag: null, uploadedAt: at,
  }));
  return {
    streamId, dataset: DS, from: from === null ? null : { name: `s${from}`, guid: from }, to: { name: `s${to}`, guid: to, createtxg: to, creation: 1_700_000_000 },
    plaintextSize: sizes.reduce((a, b) => a + b, 0), storedSize: volumes.reduce((a, v) => a + v.storedSize, 0),
    volumeSize: 100, partSize: 10, startedAt: at, completedAt: at, sendFlags: ['-c'], volumes,
  };
}

/** Run `fn` on a new manifest in the test's temp dir, closed afterwards whatever happens. */
async function withManifest(fn: (m: Manifest) => void | Promise<void>): Promise<void> {
  const m = Manifest.open(join(tmp.dir, `m${n++}.db`));
  try {
    await fn(m);
  } finally {
    m.close();
  }
}

describe('manifest at scale', () => {
  it('importCompleteStreams adds a batch in one go; a refused stream is rolled back alone and reported', () =>
    withManifest((m) => {
      const full = input(1n, null);
      const inc = input(2n, 1n, [5, 6]);
      const bad = input(3n, 2n);
      bad.storedSize += 1; // volumes do not add up: INCOMPLETE_STREAM
      const refused: string[] = [];
      const added = m.importCompleteStreams([full, bad, inc, full], (s, err) => refused.push(`${s.streamId} ${err.code}`));
      assert.equal(added, 2, 'the repeat of an imported stream is no addition');
      assert.deepEqual(refused, [`${bad.streamId} INCOMPLETE_STREAM`]);
      assert.equal(m.stream(bad.streamId), null);
      assert.deepEqual(m.volumes(bad.streamId), []);
      assert.deepEqual(m.chainFor(DS).map((s) => s.streamId), [full.streamId, inc.streamId]);
      assert.ok(m.integrityCheck().ok);
    }));

  it('volumesByStream is volumes() for every stream, in one query', () =>
    withManifest(async (m) => {
      const store = new MemoryStore({ minPartSize: 1, now: () => at });
      m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
      const a = snap(`${DS}@a`, 11n, 10n);
      const b = snap(`${DS}@b`, 12n, 20n);
      await simulatePush(m, store, keyring, { dataset: DS, from: null, to: a, volumes: [20, 20, 3], at });
      await simulatePush(m, store, keyring, { dataset: DS, from: a, to: b, volumes: [8], at });
      await simulatePush(m, store, keyring, { dataset: 'tank/other', from: null, to: snap('tank/other@x', 21n, 10n), volumes: [9], at });
      m.markVolumesDeleted([m.chainFor('tank/other')[0]!.volumes[0]!.key], at);
      for (const ds of [DS, undefined]) {
        const by = m.volumesByStream(ds);
        const streams = m.streams(ds);
        assert.equal(by.size, streams.length);
        for (const s of streams) assert.deepEqual(by.get(s.streamId), m.volumes(s.streamId));
        // With stream states: the same lists, of those streams only.
        const complete = m.volumesByStream(ds, ['complete']);
        assert.deepEqual([...complete.keys()].sort(), m.streams(ds, ['complete']).map((s) => s.streamId).sort());
        for (const [id, vols] of complete) assert.deepEqual(vols, m.volumes(id));
        // storedVolumes: what the per-stream walk over complete volumes found, in the same order.
        const walk = m.streams(ds, ['complete', 'superseded']).flatMap((s) =>
          m.volumes(s.streamId).filter((v) => v.state === 'complete' && v.storedSize !== null)
            .map((v) => ({ streamId: s.streamId, dataset: s.dataset, streamKind: s.kind, key: v.key, storedSize: v.storedSize, storageClass: v.storageClass, uploadedAt: v.uploadedAt })),
        );
        assert.deepEqual(m.storedVolumes(ds, ['complete', 'superseded']), walk);
        assert.equal(walk.length, 4, 'the deleted stream of tank/other is not billed');
      }
    }));
});

describe('forEachInOrder', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('runs at most `limit` tasks at once and hands the results over in input order', async () => {
    let running = 0;
    let peak = 0;
    const handled: number[] = [];
    await forEachInOrder(
      [30, 5, 20, 1, 10, 2, 15, 3],
      3,
      async (ms, i) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(ms);
        running--;
        return i * 10;
      },
      (r, _ms, i) => {
        assert.equal(r, i * 10);
        handled.push(i);
      },
    );
    assert.deepEqual(handled, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(peak, 3);
  });

  it('a failure stops it where a sequential loop would have stopped, after the tasks in flight settled', async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const handled: number[] = [];
    await assert.rejects(
      forEachInOrder(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        3,
        async (i) => {
          started.push(i);
          await sleep(i === 2 ? 5 : 15);
          settled.push(i);
          if (i === 2) throw new Error('store down');
          return i;
        },
        (i) => {
          handled.push(i);
        },
      ),
      /store down/,
    );
    assert.deepEqual(handled, [0, 1], 'the results before the failure were handled, none after');
    assert.ok(started.length <= 5, `no task starts once the failure is seen (started ${started.join(',')})`);
    assert.deepEqual([...settled].sort(), [...started].sort(), 'every started task settled before the error was thrown');
  });

  it('a handler that throws stops it the same way', async () => {
    const handled: number[] = [];
    await assert.rejects(
      forEachInOrder([1, 2, 3, 4], 2, async (x) => x, (x) => {
        if (x === 2) throw new Error('bad finding');
        handled.push(x);
      }),
      /bad finding/,
    );
    assert.deepEqual(handled, [1]);
  });
});
