/**
 * One definition of "restorable streams": what retention and deletion keep
 * through superseded streams, chainFor (restore, verify --deep) reaches.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { pushedSnapshots, retentionOf } from '../../src/services/consolidate/retention.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
let n = 0;
const t0 = Date.parse('2025-03-01T00:00:00Z');
const day = (i: number): Date => new Date(t0 + i * 86_400_000);
const DS = 'tank/lib';
const s = [snap(`${DS}@s1`, 11n, 10n), snap(`${DS}@s2`, 12n, 20n), snap(`${DS}@s3`, 13n, 30n)];

describe('restorable streams', () => {
  it('a snapshot kept through superseded, wholly stored streams is one chainFor restores', async () => {
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const m = Manifest.open(join(tmp.dir, `m${n++}.db`));
    try {
      m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
      const s1 = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [20], at: day(0) }))!;
      const s2 = (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [8], at: day(1) }))!;
      const s3 = (await simulatePush(m, store, keyring, { dataset: DS, from: s[1]!, to: s[2]!, volumes: [8], at: day(2) }))!;
      // The new full is larger than the old chain: chainFor must still prefer complete streams.
      const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[2]!, volumes: [200], at: day(3) }))!;
      m.markSuperseded([s1.streamId, s2.streamId, s3.streamId], day(3));

      // Retention sees s2 as pushed and can keep it ...
      assert.deepEqual(pushedSnapshots(m, DS).map((p) => p.name).sort(), [s[0]!.name, s[1]!.name, s[2]!.name].sort());
      assert.ok(retentionOf(m, DS, { keepLast: 2, keepMonthly: 0, keepYearly: 0 }).keptGuids.has('12'));
      // ... deletion keeps s1+s2 for it ...
      const unneeded = m.unneededObjects(new Set(['12'])).map((o) => o.streamId);
      assert.deepEqual(unneeded, [s3.streamId]);
      // ... and restore reaches it through exactly those streams.
      assert.deepEqual(m.chainFor(DS, s[1]!.guid).map((x) => x.streamId), [s1.streamId, s2.streamId]);
      // The latest resolves over complete streams (the new full), even though the old chain is smaller.
      assert.deepEqual(m.chainFor(DS).map((x) => x.streamId), [full.streamId]);
      assert.deepEqual(m.chainFor(DS, s[2]!.guid).map((x) => x.streamId), [full.streamId]);

      // Once a volume of the old chain is gone, s2 is neither pushed for retention nor restorable.
      m.markVolumesDeleted([s1.volumes[0]!.key], day(200));
      assert.deepEqual(pushedSnapshots(m, DS).map((p) => p.name), [s[2]!.name]);
      assert.throws(() => m.chainFor(DS, s[1]!.guid), { name: 'SnapshotNotPushedError' });
      assert.deepEqual(m.unneededObjects(new Set(['12'])).map((o) => o.streamId).sort(), [s2.streamId, s3.streamId].sort());
    } finally {
      m.close();
    }
  });
});

describe('restorable streams, asked again', () => {
  it('an answer kept for a second question is dropped when the manifest changes, here or through another connection', async () => {
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const path = join(tmp.dir, `m${n++}.db`);
    const m = Manifest.open(path);
    let other: Manifest | null = null;
    try {
      m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
      const s1 = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [20], at: day(0) }))!;
      const s2 = (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [8], at: day(1) }))!;
      const ids = (): string[] => m.restorableStreams(DS).map((x) => x.streamId).sort();
      assert.deepEqual(ids(), [s1.streamId, s2.streamId].sort());
      // A change through the same connection.
      const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[1]!, volumes: [30], at: day(2) }))!;
      assert.deepEqual(ids(), [s1.streamId, s2.streamId, full.streamId].sort());
      const again = m.restorableStreams(DS);
      again.length = 0; // a caller changing its array does not change the next answer
      assert.equal(ids().length, 3);
      // A change committed by another connection (another zbk process).
      other = Manifest.open(path);
      other.markSuperseded([s1.streamId, s2.streamId], day(2));
      other.markVolumesDeleted([s1.volumes[0]!.key], day(200));
      assert.deepEqual(ids(), [full.streamId]);
    } finally {
      other?.close();
      m.close();
    }
  });
});
