/**
 * The manifest mirror against a bucket someone else can write to: the newest
 * mirror is chosen by the sequence number sealed inside it, not by its name;
 * renamed, replayed, rolled-back and future-dated mirrors are refused; names
 * planted with high sequence numbers cannot make pruning delete real mirrors;
 * a rebuild works from volumes without user metadata and survives HEAD errors.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { DATA_PREFIX, legacyManifestMirrorKey, manifestMirrorKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { listMirrors, localMirrorSeq, inspectMirrorBytes, readNewestMirror, writeMirror } from '../../src/manifest/mirror.js';
import { rebuildManifest } from '../../src/manifest/rebuild.js';
import { FaultInjectingStore } from '../../src/store/fault-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
const t0 = Date.parse('2025-03-01T00:00:00Z');
const day = (i: number): Date => new Date(t0 + i * 86_400_000);
const opts = (i: number, keep = 10) => ({ keep, storageClass: 'STANDARD', now: () => day(i) });

/** A repository with one dataset, two streams, and its manifest open. */
async function repo(archive = true): Promise<{ m: Manifest; store: MemoryStore; path: string }> {
  const path = join(tmp.dir, `m${n++}.db`);
  const store = new MemoryStore({ minPartSize: 1, now: () => day(0), archive });
  const m = Manifest.open(path);
  m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
  const a = [snap('tank/photos@d1', 11n, 10n), snap('tank/photos@d2', 12n, 20n)];
  await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: null, to: a[0]!, volumes: [40, 7], at: day(1) });
  await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: a[0]!, to: a[1]!, volumes: [9], at: day(2) });
  return { m, store, path };
}

describe('manifest mirror: sequence numbers', () => {
  it('each mirror seals its own sequence and key; the sequence continues from the local manifest', async () => {
    const { m, store } = await repo();
    try {
      const w = [];
      for (let i = 0; i < 3; i++) w.push(await writeMirror(m, store, keyring, opts(10 + i)));
      assert.deepEqual(w.map((x) => x.seq), [1, 2, 3]);
      assert.equal(localMirrorSeq(m), 3);
      const stamp = inspectMirrorBytes(keyring.openBlob('zbk-manifest-v1', await store.getBytes(w[2]!.key))).stamp;
      assert.equal(stamp?.seq, 3);
      assert.equal(stamp?.key, w[2]!.key);
      assert.deepEqual(stamp?.writtenAt, day(12));
      const got = await readNewestMirror(store, keyring);
      assert.equal(got.key, w[2]!.key);
      assert.equal(got.seq, 3);
    } finally {
      m.close();
    }
  });

  it('an old mirror copied under a newer name (or under a legacy name) is refused, and the real newest is used', async () => {
    const { m, store } = await repo();
    try {
      const first = await writeMirror(m, store, keyring, opts(10));
      const second = await writeMirror(m, store, keyring, opts(11));
      const old = await store.getBytes(first.key);
      const renamed = manifestMirrorKey(9, day(20), 'abcd');
      await store.put(renamed, old);
      const legacyNamed = legacyManifestMirrorKey(day(21), 'beef');
      await store.put(legacyNamed, old);
      const got = await readNewestMirror(store, keyring);
      assert.equal(got.key, second.key, 'without sealed sequences, the renamed copy would have been chosen');
      const skipped = new Map(got.skipped.map((s) => [s.key, s.reason]));
      assert.match(skipped.get(renamed) ?? '', /under another name \(renamed or replayed copy\)/);
      assert.equal(skipped.has(legacyNamed), false, 'a legacy name sorts below every sequenced mirror: not even tried');
      await store.deleteMany([first.key, second.key, renamed]);
      const none = await readNewestMirror(store, keyring);
      assert.equal(none.bytes, null, 'a sequenced mirror under a legacy name is not taken for a legacy mirror');
      assert.match(new Map(none.skipped.map((s) => [s.key, s.reason])).get(legacyNamed) ?? '', /renamed or replayed/);
    } finally {
      m.close();
    }
  });

  it('a mirror older than the newest this machine has seen is refused (rollback), and a rebuild falls back to the stream records with a warning', async () => {
    const { m, store, path } = await repo();
    await writeMirror(m, store, keyring, opts(10));
    await writeMirror(m, store, keyring, opts(11));
    const newest = await writeMirror(m, store, keyring, opts(12));
    m.close();
    // Someone with write access deletes the newest mirror (or restores an older copy of the bucket).
    await store.deleteMany([newest.key]);
    const direct = await readNewestMirror(store, keyring, { lastSeenSeq: 3 });
    assert.equal(direct.bytes, null);
    assert.ok(direct.skipped.length === 2 && direct.skipped.every((s) => s.refused && /older than mirror 3/.test(s.reason)), JSON.stringify(direct.skipped));

    // This machine's manifest saw mirror 3: a forced rebuild over it refuses 1 and 2.
    const report = await rebuildManifest({ store, keyring, targetPath: path, force: true, now: () => day(13) });
    assert.equal(report.source, 'listing');
    assert.equal(report.streams, 2, 'everything restorable is still found from the records');
    assert.match(report.warnings.join('\n'), /2 authentic mirror\(s\) refused.*rolled back/);
    const r = Manifest.open(path);
    try {
      assert.equal(localMirrorSeq(r), 3, 'the rebuilt manifest remembers the newest sequence seen');
      assert.equal((await writeMirror(r, store, keyring, opts(14))).seq, 4, 'the next mirror sorts after every authentic one');
    } finally {
      r.close();
    }
    // A new machine (no manifest) has seen nothing: it takes the newest authentic mirror.
    const fresh = await rebuildManifest({ store, keyring, targetPath: join(tmp.dir, `fresh${n++}.db`), now: () => day(15) });
    assert.equal(fresh.source, 'mirror');
    assert.match(fresh.mirrorKey ?? '', /^manifest\/s000000000004-/);
  });

  it('a mirror written before sequence numbers (legacy name, no stamp) is still read, as sequence 0, and pruned like one', async () => {
    const { m, store } = await repo();
    try {
      const legacy = legacyManifestMirrorKey(day(9), 'c0ffee');
      await store.put(legacy, keyring.sealBlob('zbk-manifest-v1', m.compactedCopy()));
      const got = await readNewestMirror(store, keyring);
      assert.equal(got.key, legacy);
      assert.equal(got.seq, 0);
      const next = await writeMirror(m, store, keyring, opts(10, 1));
      assert.equal(next.seq, 1);
      assert.deepEqual(next.pruned, [legacy]);
    } finally {
      m.close();
    }
  });

  it('a mirror dated more than a day in the future is refused', async () => {
    const { m, store } = await repo();
    try {
      const good = await writeMirror(m, store, keyring, opts(10));
      const future = await writeMirror(m, store, keyring, opts(400));
      const got = await readNewestMirror(store, keyring, { now: () => day(11) });
      assert.equal(got.key, good.key);
      const s = got.skipped.find((x) => x.key === future.key);
      assert.ok(s?.refused && /in the future/.test(s.reason), JSON.stringify(got.skipped));
      assert.equal((await readNewestMirror(store, keyring, { now: () => day(400) })).key, future.key, 'by its own date it is fine');
    } finally {
      m.close();
    }
  });

  it('names planted with high sequence numbers do not make pruning delete real mirrors, nor the sequence jump', async () => {
    const { m, store } = await repo();
    try {
      const real = [];
      for (let i = 0; i < 3; i++) real.push((await writeMirror(m, store, keyring, opts(10 + i, 2))).key);
      const planted = [manifestMirrorKey(900_000, day(13), 'aa'), manifestMirrorKey(900_001, day(13), 'bb'), manifestMirrorKey(999_999_999_999, day(13), 'cc')];
      // Garbage and a real mirror's bytes (authentic, but under a name it does not seal).
      await store.put(planted[0]!, new Uint8Array(64).fill(1));
      await store.put(planted[1]!, await store.getBytes(real[2]!));
      await store.put(planted[2]!, new Uint8Array(64).fill(2));
      const next = await writeMirror(m, store, keyring, opts(14, 2));
      assert.equal(next.seq, 4, 'an unauthenticated name does not set the sequence');
      const left = (await listMirrors(store)).map((x) => x.key);
      assert.ok(left.includes(real[2]!) && left.includes(next.key), `the newest two real mirrors are kept: ${left.join(', ')}`);
      assert.equal(left.includes(real[0]!), false, 'and older real ones pruned by sequence');
      assert.equal((await readNewestMirror(store, keyring)).key, next.key);
    } finally {
      m.close();
    }
  });

  it('a machine behind another continues after the newest authentic mirror', async () => {
    const { m, store, path } = await repo();
    await writeMirror(m, store, keyring, opts(10));
    // A copy of the manifest as of mirror 1 (another machine, or this one before a rebuild).
    const behindPath = join(tmp.dir, `behind${n++}.db`);
    m.close();
    const { copyFileSync } = await import('node:fs');
    copyFileSync(path, behindPath);
    const ahead = Manifest.open(path);
    await writeMirror(ahead, store, keyring, opts(11));
    await writeMirror(ahead, store, keyring, opts(12));
    ahead.close();
    const behind = Manifest.open(behindPath);
    try {
      assert.equal(localMirrorSeq(behind), 1);
      assert.equal((await writeMirror(behind, store, keyring, opts(13))).seq, 4);
    } finally {
      behind.close();
    }
  });
});

describe('manifest mirror: planted giant objects', () => {
  it('a planted huge object under a newer mirror name is not downloaded by a push (catch-up) nor by a rebuild', async () => {
    const { m, store, path } = await repo();
    const first = await writeMirror(m, store, keyring, opts(10));
    const giant = manifestMirrorKey(999_999, day(11), 'ff');
    await store.put(giant, new Uint8Array(70 * 1024 * 1024));
    store.resetCounts();
    const next = await writeMirror(m, store, keyring, opts(12));
    assert.equal(next.seq, first.seq + 1);
    assert.equal(store.counts.getBytes, 0, 'the giant was not fetched to catch up');
    m.close();
    const { MAX_MIRROR_BYTES } = await import('../../src/manifest/mirror.js');
    assert.ok(70 * 1024 * 1024 < MAX_MIRROR_BYTES, 'a rebuild would still try it (within its bound) and skip it as not authentic');
    const report = await rebuildManifest({ store, keyring, targetPath: path, force: true, now: () => day(13) });
    assert.equal(report.source, 'mirror');
    assert.equal(report.mirrorKey, next.key);
  });
});

describe('manifest rebuild without volume metadata', () => {
  it('a bucket copied by a tool that drops user metadata rebuilds from the records, with a warning; HEAD errors do not stop it', async () => {
    // Not archived, so the test can copy the volumes' bytes (as a sync tool would after a thaw).
    const { m, store, path } = await repo(false);
    const expected = m.chainFor('tank/photos').map((s) => s.streamId);
    m.close();
    const keys = store.keys().filter((k) => k.startsWith(DATA_PREFIX));
    for (const k of keys) {
      const info = await store.head(k);
      await store.put(k, await store.getBytes(k), { storageClass: info.storageClass });
    }
    const report = await rebuildManifest({ store, keyring, targetPath: path, force: true });
    assert.deepEqual(report.unplaced, []);
    assert.equal(report.streams, 2);
    assert.match(report.warnings.join('\n'), /3 volume\(s\) have no zbk metadata/);
    const r = Manifest.open(path, { readonly: true });
    try {
      assert.deepEqual(r.chainFor('tank/photos').map((s) => s.streamId), expected);
    } finally {
      r.close();
    }

    const faulty = new FaultInjectingStore(store).addFault({ method: 'head', kind: 'access-denied', times: 2 });
    const again = await rebuildManifest({ store: faulty, keyring, targetPath: path, force: true });
    assert.equal(again.streams, 2);
    assert.deepEqual(again.unplaced, []);
    assert.match(again.warnings.join('\n'), /HEAD failed for 2 volume\(s\)/);
  });

  it('metadata swapped between volumes keeps no stream out: placed from the records, with a warning', async () => {
    const { m, store, path } = await repo(false);
    m.close();
    const keys = store.keys().filter((k) => k.startsWith(DATA_PREFIX)).sort();
    assert.ok(keys.length >= 2);
    const a = await store.head(keys[0]!);
    const b = await store.head(keys[1]!);
    await store.put(keys[1]!, await store.getBytes(keys[1]!), { storageClass: b.storageClass, metadata: a.metadata });
    const report = await rebuildManifest({ store, keyring, targetPath: path, force: true });
    assert.deepEqual(report.unplaced, []);
    assert.equal(report.streams, 2);
    assert.match(report.warnings.join('\n'), /1 volume\(s\) carry metadata that does not match their stream record/);
  });
});

