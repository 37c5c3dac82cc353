/**
 * Rebuild from a mirror older than a consolidation's deletions: the mirror
 * still records the old chain as complete, the bucket no longer has it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { streamRecordKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { writeMirror } from '../../src/manifest/mirror.js';
import { rebuildManifest } from '../../src/manifest/rebuild.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
const t0 = Date.parse('2025-03-01T00:00:00Z');
const day = (i: number): Date => new Date(t0 + i * 86_400_000);
const DS = 'tank/lib';
const s = [snap(`${DS}@s1`, 11n, 10n), snap(`${DS}@s2`, 12n, 20n), snap(`${DS}@s3`, 13n, 30n)];

describe('manifest rebuild from a stale mirror', () => {
  it('marks streams whose objects are gone as deleted, reports them, and never restores through them', async () => {
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const m = Manifest.open(join(tmp.dir, 'src.db'));
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
    const old = [
      (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [20], at: day(0) }))!,
      (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [8, 4], at: day(1) }))!,
      (await simulatePush(m, store, keyring, { dataset: DS, from: s[1]!, to: s[2]!, volumes: [8], at: day(2) }))!,
    ];
    // The last mirror: the old chain complete.
    await writeMirror(m, store, keyring, { storageClass: 'STANDARD', now: () => day(2) });
    // Consolidation: a new full (larger than the old chain), the old chain superseded and deleted,
    // then killed before it wrote a newer mirror.
    const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[2]!, volumes: [200], at: day(3) }))!;
    m.markSuperseded(old.map((x) => x.streamId), day(3));
    const oldKeys = old.flatMap((x) => x.volumes.map((v) => v.key));
    await store.deleteMany([...oldKeys, ...old.map((x) => streamRecordKey(x.streamId))]);
    m.close();

    const target = join(tmp.dir, 'rebuilt.db');
    const report = await rebuildManifest({ store, keyring, targetPath: target });
    assert.equal(report.source, 'mirror');
    assert.equal(report.streamsFromRecords, 1);
    const r = Manifest.open(target, { readonly: true });
    try {
      // Restore reads the new full, whose objects are all in the store.
      const chain = r.chainFor(DS);
      assert.deepEqual(chain.map((x) => x.streamId), [full.streamId]);
      for (const v of chain.flatMap((x) => x.volumes)) assert.ok(store.keys().includes(v.key));
      assert.throws(() => r.chainFor(DS, s[1]!.guid), { name: 'SnapshotNotPushedError' });
      for (const x of old) assert.equal(r.stream(x.streamId)?.state, 'deleted');
      assert.ok(r.integrityCheck().ok, r.integrityCheck().problems.join('; '));
      assert.deepEqual(r.unneededObjects(new Set()), []);
    } finally {
      r.close();
    }
    assert.deepEqual(report.goneFromStore.map((g) => g.key).sort(), [...oldKeys].sort());
    assert.ok(report.goneFromStore.every((g) => g.streamState === 'deleted' && g.dataset === DS));
  });

  it('marks a partly deleted stream superseded, not complete', async () => {
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const m = Manifest.open(join(tmp.dir, 'src2.db'));
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
    const a = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [20], at: day(0) }))!;
    const b = (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [8, 4], at: day(1) }))!;
    await writeMirror(m, store, keyring, { storageClass: 'STANDARD', now: () => day(2) });
    const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[1]!, volumes: [100], at: day(3) }))!;
    m.markSuperseded([a.streamId, b.streamId], day(3));
    // Killed in the middle of deleting the old chain: one of b's two volumes is gone.
    await store.deleteMany([b.volumes[1]!.key]);
    m.close();
    const target = join(tmp.dir, 'rebuilt2.db');
    const report = await rebuildManifest({ store, keyring, targetPath: target });
    const r = Manifest.open(target, { readonly: true });
    try {
      assert.equal(r.stream(b.streamId)?.state, 'superseded');
      assert.deepEqual(r.chainFor(DS).map((x) => x.streamId), [full.streamId]);
      assert.ok(r.integrityCheck().ok);
    } finally {
      r.close();
    }
    assert.deepEqual(report.goneFromStore.map((g) => [g.key, g.streamState]), [[b.volumes[1]!.key, 'superseded']]);
  });
});
