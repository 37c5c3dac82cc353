/**
 * Integrity evidence in the manifest (schema 5): the ETag recorded when a
 * volume completed (and carried through the stream record into a rebuild),
 * and damage found by verify or a restore, which chains avoid and
 * `chainHealth` reports (what `zbk status` and `zbk check` show).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Keyring } from '../../src/crypto/types.js';
import { DamagedChainError } from '../../src/manifest/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { rebuildManifest } from '../../src/manifest/rebuild.js';
import { SCHEMA_VERSION, migrate } from '../../src/manifest/schema.js';
import { chainHealth } from '../../src/services/chain-health.js';
import type { ServiceContext } from '../../src/services/context.js';
import { verifyObjects } from '../../src/services/verify.js';
import { AccessDeniedError } from '../../src/store/errors.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ObjectInfo } from '../../src/store/object-store.js';
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
const DS = 'tank/dmg';
const s = [snap('s1', 11n, 10n), snap('s2', 12n, 20n), snap('s3', 13n, 30n)];

async function threeSnapshots(): Promise<{ m: Manifest; store: MemoryStore; ids: string[]; keys: string[] }> {
  const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
  const m = Manifest.open(join(tmp.dir, `m${n++}.db`));
  m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
  const a = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [20], at: day(0) }))!;
  const b = (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [8], at: day(1) }))!;
  const c = (await simulatePush(m, store, keyring, { dataset: DS, from: s[1]!, to: s[2]!, volumes: [8], at: day(2) }))!;
  return { m, store, ids: [a.streamId, b.streamId, c.streamId], keys: [a, b, c].map((x) => x.volumes[0]!.key) };
}

describe('manifest integrity evidence', () => {
  it('records the ETag the store reported at completion, and a rebuild takes it from the stream record', async () => {
    const { m, store, keys } = await threeSnapshots();
    try {
      for (const k of keys) {
        const v = m.chainFor(DS).flatMap((x) => x.volumes).find((x) => x.key === k)!;
        assert.equal(v.etag, (await store.head(k)).etag);
        assert.match(v.etag!, /^[0-9a-f]{32}-\d+$/, 'a multipart ETag');
      }
    } finally {
      m.close();
    }
    const target = join(tmp.dir, `rebuilt${n++}.db`);
    await rebuildManifest({ store, keyring, targetPath: target, ignoreMirrors: true });
    const r = Manifest.open(target);
    try {
      const etags = r.chainFor(DS).flatMap((x) => x.volumes).map((v) => v.etag);
      assert.deepEqual(etags, await Promise.all(keys.map(async (k) => (await store.head(k)).etag)));
    } finally {
      r.close();
    }
  });

  it('a volume recorded before schema 5 has no ETag; migration 4 → 5 keeps the data', () => {
    const path = join(tmp.dir, `old${n++}.db`);
    const raw = new Database(path);
    migrate(raw, 4);
    raw.exec(`INSERT INTO datasets (id, name, created_at) VALUES (1, 'tank/old', '2024-01-01T00:00:00.000Z')`);
    raw.exec(`INSERT INTO streams (stream_id, dataset_id, kind, to_guid, to_name, to_createtxg, to_creation, plaintext_size, stored_size,
      state, volume_size, part_size, started_at, completed_at) VALUES ('${'b'.repeat(32)}', 1, 'full', '5', 'a', '5', 1, 5, 7, 'complete', 8, 8,
      '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')`);
    raw.exec(`INSERT INTO volumes (stream_id, volume_index, object_key, state, storage_class, stored_size, part_count, plaintext_size,
      plaintext_sha256, started_at, uploaded_at) VALUES ('${'b'.repeat(32)}', 0, 'data/${'b'.repeat(32)}/000000.zbkv', 'complete',
      'DEEP_ARCHIVE', 7, 1, 5, '${'0'.repeat(64)}', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')`);
    raw.close();
    const m = Manifest.open(path);
    try {
      assert.equal(m.schemaVersion, SCHEMA_VERSION);
      assert.equal(m.chainFor('tank/old')[0]!.volumes[0]!.etag, null);
      assert.deepEqual(m.damagedVolumes('tank/old'), []);
      assert.equal(chainHealth(m, 'tank/old').ok, true);
    } finally {
      m.close();
    }
  });

  it('a damaged volume breaks the chains through it: chainFor refuses naming it, chainHealth names what is still restorable', async () => {
    const { m, ids, keys } = await threeSnapshots();
    try {
      assert.equal(chainHealth(m, DS).ok, true);
      m.recordDamage({ key: keys[1]!, problem: 'was replaced since the push', foundBy: 'verify', etagSeen: 'abc', at: day(5) });
      assert.deepEqual(m.damagedVolumes(DS).map((d) => [d.key, d.streamId, d.snapshot, d.foundBy]), [[keys[1], ids[1], 's2', 'verify']]);
      assert.throws(() => m.chainFor(DS), (err: unknown) => err instanceof DamagedChainError && err.exitCode === 6 && err.message.includes(keys[1]!));
      assert.throws(() => m.chainFor(DS, s[1]!.guid), DamagedChainError);
      assert.deepEqual(m.chainFor(DS, s[0]!.guid).map((x) => x.streamId), [ids[0]], '@s1 does not need the damaged stream');
      assert.deepEqual(m.chainFor(DS, undefined, { includeDamaged: true }).map((x) => x.streamId), ids, 'the broken chain can still be shown');

      const h = chainHealth(m, DS);
      assert.equal(h.ok, false);
      assert.equal(h.latest, 's3');
      assert.deepEqual(h.brokenBy.map((o) => o.key), [keys[1]]);
      assert.deepEqual(h.restorable, ['s1']);
      assert.deepEqual(h.unrestorable, ['s2', 's3']);
      assert.match(h.remedy!, /zbk push --full tank\/dmg/);
      assert.match(h.remedy!, /still restorable: @s1/);
      assert.match(h.reason!, /chain broken, @s3 cannot be restored/);
      // Deletion keeps the damaged chain while it is the only one (the damage may be repaired).
      assert.deepEqual(m.unneededObjects(new Set()), []);
      assert.equal(m.events(5).find((e) => e.kind === 'object-damaged')?.dataset, DS);

      assert.equal(m.clearDamage(keys[1]!), true);
      assert.equal(chainHealth(m, DS).ok, true);
      assert.equal(m.chainFor(DS).length, 3);
    } finally {
      m.close();
    }
  });

  it('a new full chain heals the latest snapshot: chains prefer it, the damaged chain becomes unneeded', async () => {
    const { m, store, ids, keys } = await threeSnapshots();
    try {
      m.recordDamage({ key: keys[0]!, problem: 'part 1 failed authentication', foundBy: 'restore', at: day(5) });
      assert.deepEqual(chainHealth(m, DS).restorable, []);
      assert.match(chainHealth(m, DS).remedy!, /no pushed snapshot is restorable/);
      const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[2]!, volumes: [4], at: day(6) }))!;
      // The new full is smaller than the old chain here, but health must not depend on cost: it is the only healthy one.
      assert.deepEqual(m.chainFor(DS).map((x) => x.streamId), [full.streamId]);
      const h = chainHealth(m, DS);
      assert.equal(h.ok, true);
      assert.deepEqual(h.restorable, ['s3']);
      assert.deepEqual(h.unrestorable, ['s1', 's2']);
      assert.deepEqual(h.damaged.map((o) => o.key), [keys[0]], 'the damage is still reported');
      assert.deepEqual(m.unneededObjects(new Set()).map((o) => o.streamId).sort(), [...ids].sort(), 'the damaged chain is no longer needed');
    } finally {
      m.close();
    }
  });

  it('refuses damage on a key the manifest does not know; a stream record counts as damaged but does not break restores', async () => {
    const { m, ids } = await threeSnapshots();
    try {
      assert.throws(() => m.recordDamage({ key: 'data/nope', problem: 'x', foundBy: 'verify' }), /not an object of a stream/);
      m.recordDamage({ key: `streams/${ids[2]}.zbks`, problem: 'stream record missing', foundBy: 'verify' });
      assert.deepEqual(m.damagedVolumes(DS), []);
      assert.equal(m.damagedObjects(DS).length, 1);
      assert.equal(m.damagedObjects(DS)[0]!.volumeIndex, null);
      assert.equal(chainHealth(m, DS).ok, true);
      assert.equal(m.chainFor(DS).length, 3);
    } finally {
      m.close();
    }
  });
});

/** `verifyObjects` over `store`, whose HEAD answers go through `head` (to inject errors or drop the ETag). */
function verifyCtx(store: MemoryStore, head: (key: string, info: () => Promise<ObjectInfo>) => Promise<ObjectInfo>): ServiceContext {
  const wrapped = Object.create(store) as MemoryStore;
  wrapped.head = (key: string) => head(key, () => store.head(key));
  return { store: wrapped, now: () => day(5) } as unknown as ServiceContext;
}

describe('verify findings and damage kinds', () => {
  it('a HEAD failing with access denied aborts verify with that error and records nothing', async () => {
    const { m, store, keys } = await threeSnapshots();
    try {
      const ctx = verifyCtx(store, async (key, info) => {
        if (key === keys[1]) throw new AccessDeniedError(`HeadObject ${key}: Access Denied`);
        return info();
      });
      await assert.rejects(verifyObjects(ctx, keyring, m, DS), (err: Error) => err instanceof AccessDeniedError);
      assert.deepEqual(m.damagedVolumes(DS), [], 'a store error is not damage');
      assert.equal(chainHealth(m, DS).ok, true);
    } finally {
      m.close();
    }
  });

  it('an ETag mismatch with the right size and sealed metadata is a mismatch: reported and unhealthy, but restore chains still use it', async () => {
    const { m, store, keys } = await threeSnapshots();
    try {
      const ctx = verifyCtx(store, async (key, info) => {
        const i = await info();
        return key === keys[1] ? { ...i, etag: 'deadbeef' } : i;
      });
      const r = await verifyObjects(ctx, keyring, m, DS);
      assert.equal(r.ok, false);
      assert.match(r.problems.find((p) => p.key === keys[1])?.problem ?? '', /replaced since the push/);
      const d = m.damagedVolumes(DS);
      assert.deepEqual(d.map((x) => [x.key, x.kind, x.etagSeen]), [[keys[1], 'mismatch', 'deadbeef']]);
      assert.equal(chainHealth(m, DS).ok, false, 'check stays CRITICAL: the object is not what was pushed');
      assert.equal(m.chainFor(DS).length, 3, 'a restore still tries it: authentication decides');
      // Missing (or proven bad) is still avoided.
      m.recordDamage({ key: keys[1]!, problem: 'missing from the store', foundBy: 'verify', kind: 'bad' });
      assert.throws(() => m.chainFor(DS), DamagedChainError);
    } finally {
      m.close();
    }
  });

  it('an ETag recorded at push that the store no longer reports is a problem, not "size and metadata only"', async () => {
    const { m, store, keys } = await threeSnapshots();
    try {
      const ctx = verifyCtx(store, async (key, info) => {
        const i = await info();
        if (key !== keys[2]) return i;
        const { etag: _drop, ...rest } = i;
        return rest;
      });
      const r = await verifyObjects(ctx, keyring, m, DS);
      assert.match(r.problems.find((p) => p.key === keys[2])?.problem ?? '', /reports no ETag/);
      assert.ok(!r.coverage.sizeAndMetadataOnly.includes(keys[2]!));
      assert.deepEqual(m.damagedVolumes(DS).map((x) => [x.key, x.kind]), [[keys[2], 'mismatch']]);
    } finally {
      m.close();
    }
  });

  it('damage a restore recorded with the ETag it saw is cleared by verify once a good copy (the pushed ETag) is back', async () => {
    const { m, store, keys } = await threeSnapshots();
    try {
      m.recordDamage({ key: keys[0]!, problem: 'part 1 failed authentication', foundBy: 'restore', etagSeen: 'bad-copy-etag' });
      await verifyObjects(verifyCtx(store, (_k, info) => info()), keyring, m, DS);
      assert.deepEqual(m.damagedVolumes(DS), []);
    } finally {
      m.close();
    }
  });

  it('migration 5 → 6 keeps damage records as proven bad', () => {
    const path = join(tmp.dir, `v5-${n++}.db`);
    const raw = new Database(path);
    migrate(raw, 5);
    raw.close();
    const m = Manifest.open(path);
    try {
      assert.equal(m.schemaVersion, SCHEMA_VERSION);
    } finally {
      m.close();
    }
    const again = new Database(path);
    const col = (again.prepare(`SELECT dflt_value FROM pragma_table_info('damage') WHERE name = 'kind'`).get() as { dflt_value: string }).dflt_value;
    again.close();
    assert.equal(col, "'bad'");
  });
});
