import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { ManifestError } from '../../src/errors.js';
import { BLOB_MANIFEST, BLOB_STREAM_RECORD, DATA_PREFIX, manifestMirrorKey, streamRecordKey, volumeKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { listMirrors, readNewestMirror, writeMirror } from '../../src/manifest/mirror.js';
import { rebuildManifest } from '../../src/manifest/rebuild.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { chainEssence, simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});

const t0 = Date.parse('2025-03-01T00:00:00Z');
const day = (i: number): Date => new Date(t0 + i * 86_400_000);

/** Two datasets, full + incrementals, one interrupted push; the manifest is left open. */
async function scenario(): Promise<{ m: Manifest; store: MemoryStore; path: string; interruptedKeys: string[] }> {
  const path = join(tmp.dir, `src${n++}.db`);
  const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
  const m = Manifest.open(path);
  m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
  const a = [snap('tank/photos@d1', 18446744073709551615n, 10n), snap('tank/photos@d2', 9007199254740993n, 20n), snap('tank/photos@d3', 3n, 30n)];
  const b = [snap('tank/docs@x', 77n, 12n), snap('tank/docs@y', 78n, 25n)];
  await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: null, to: a[0]!, volumes: [40, 40, 7], at: day(1) });
  await simulatePush(m, store, keyring, { dataset: 'tank/docs', from: null, to: b[0]!, volumes: [16], at: day(1) });
  await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: a[0]!, to: a[1]!, volumes: [9], at: day(2) });
  await simulatePush(m, store, keyring, { dataset: 'tank/docs', from: b[0]!, to: b[1]!, volumes: [5, 3], at: day(2) });
  await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: a[1]!, to: a[2]!, volumes: [12], at: day(3) });
  // An interrupted incremental: its volume exists, its stream record does not.
  await simulatePush(m, store, keyring, { dataset: 'tank/docs', from: b[1]!, to: snap('tank/docs@z', 79n, 40n), volumes: [6], at: day(4), interrupt: true });
  const interrupted = m.findInFlightStream('tank/docs')!;
  return { m, store, path, interruptedKeys: interrupted.volumes.map((v) => v.key) };
}

function essence(m: Manifest): unknown {
  return {
    datasets: m.datasets().map((d) => d.name),
    snapshots: m.datasets().map((d) => m.snapshots(d.name)),
    chains: m.datasets().map((d) => chainEssence(m.chainFor(d.name))),
    older: chainEssence(m.chainFor('tank/photos', 9007199254740993n)),
  };
}

describe('manifest mirror', () => {
  it('writes sealed mirrors under new keys and prunes beyond keep only after verifying', async () => {
    const { m, store } = await scenario();
    try {
      const keys: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await writeMirror(m, store, keyring, { keep: 2, storageClass: 'STANDARD', now: () => day(10 + i) });
        keys.push(r.key);
      }
      assert.equal(new Set(keys).size, 4);
      assert.deepEqual((await listMirrors(store)).map((x) => x.key), keys.slice(-2));
      const got = await readNewestMirror(store, keyring);
      assert.equal(got.key, keys[3]);
      assert.deepEqual(got.skipped, []);
      // Sealed: the plaintext database header must not appear in the stored object.
      const raw = await store.getBytes(keys[3]!);
      assert.equal(Buffer.from(raw).includes(Buffer.from('SQLite format 3')), false);
      assert.equal(Buffer.from(raw).includes(Buffer.from('tank/photos')), false);
    } finally {
      m.close();
    }
  });

  it('prunes only the mirrors of its own key: those of a replaced repository stay', async () => {
    const { m, store } = await scenario();
    try {
      const other = await testKeyring();
      const foreign = (await writeMirror(m, store, other, { keep: 1, storageClass: 'STANDARD', now: () => day(5) })).key;
      const mine: string[] = [];
      for (let i = 0; i < 3; i++) mine.push((await writeMirror(m, store, keyring, { keep: 1, storageClass: 'STANDARD', now: () => day(10 + i) })).key);
      assert.deepEqual((await listMirrors(store)).map((x) => x.key), [foreign, mine[2]]);
    } finally {
      m.close();
    }
  });

  it('a half-written or foreign newer mirror does not hide the previous good one', async () => {
    const { m, store } = await scenario();
    try {
      const good = await writeMirror(m, store, keyring, { storageClass: 'STANDARD', now: () => day(10) });
      const sealed = await store.getBytes(good.key);
      const truncatedKey = manifestMirrorKey(11, day(11), 'aaaa');
      await store.put(truncatedKey, sealed.subarray(0, Math.floor(sealed.length / 2)));
      const garbageKey = manifestMirrorKey(12, day(12), 'bbbb');
      await store.put(garbageKey, new Uint8Array(500).fill(7));
      const wrongKindKey = manifestMirrorKey(13, day(13), 'cccc');
      await store.put(wrongKindKey, keyring.sealBlob('zbk-stream-v1', m.compactedCopy()));
      const notDbKey = manifestMirrorKey(14, day(14), 'dddd');
      await store.put(notDbKey, keyring.sealBlob(BLOB_MANIFEST, new TextEncoder().encode('not a database')));
      const got = await readNewestMirror(store, keyring);
      assert.equal(got.key, good.key);
      assert.deepEqual(got.skipped.map((s) => s.key), [notDbKey, wrongKindKey, garbageKey, truncatedKey]);
    } finally {
      m.close();
    }
  });

  it('refuses to mirror a manifest failing its integrity check', async () => {
    const { m, store } = await scenario();
    try {
      const chain = m.chainFor('tank/photos');
      m.markVolumesDeleted([chain[0]!.volumes[1]!.key]);
      await assert.rejects(writeMirror(m, store, keyring, { storageClass: 'STANDARD' }), (e: unknown) => e instanceof ManifestError && e.code === 'MANIFEST_UNHEALTHY');
      assert.deepEqual(await listMirrors(store), []);
    } finally {
      m.close();
    }
  });
});

describe('manifest rebuild', () => {
  it('from the newest usable mirror, merging streams completed after it', async () => {
    const { m, store, path } = await scenario();
    await writeMirror(m, store, keyring, { storageClass: 'STANDARD', now: () => day(5) });
    // A push completes after the mirror was written.
    const last = m.lastPushedSnapshot('tank/photos')!;
    m.abandonStream(m.findInFlightStream('tank/docs')!.streamId, 'test');
    await simulatePush(m, store, keyring, { dataset: 'tank/photos', from: last, to: snap('tank/photos@d4', 4n, 50n), volumes: [8], at: day(6) });
    await store.put(manifestMirrorKey(50, day(7), 'ffff'), new Uint8Array([1, 2, 3]));
    const expected = essence(m);
    m.close();
    rmSync(path);
    const target = join(tmp.dir, `rebuilt${n++}.db`);
    const report = await rebuildManifest({ store, keyring, targetPath: target });
    assert.equal(report.source, 'mirror');
    assert.equal(report.streamsFromRecords, 1);
    assert.equal(report.skippedMirrors.length, 1);
    const r = Manifest.open(target, { readonly: true });
    try {
      assert.deepEqual(essence(r), expected);
      assert.ok(r.integrityCheck().ok);
    } finally {
      r.close();
    }
  });

  it('from stream records and volume metadata alone (no local DB, no mirrors), never reading archived data', async () => {
    const { m, store, path, interruptedKeys } = await scenario();
    await writeMirror(m, store, keyring, { storageClass: 'STANDARD' });
    const expected = essence(m);
    m.close();
    rmSync(path);
    await store.deleteMany((await listMirrors(store)).map((x) => x.key));
    // A stray object with unreadable metadata.
    const strayKey = volumeKey('e'.repeat(32), 0);
    await store.put(strayKey, new Uint8Array(10), { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'garbage' } });
    store.resetCounts();
    const target = join(tmp.dir, `rebuilt${n++}.db`);
    const report = await rebuildManifest({ store, keyring, targetPath: target });
    // Only the (instantly readable) stream records were read; data objects only listed and HEADed.
    assert.equal(store.counts.get, 0);
    assert.equal(store.counts.getBytes, store.keys().filter((k) => k.startsWith('streams/')).length);
    assert.equal(report.source, 'listing');
    assert.equal(report.streams, 5);
    assert.deepEqual(report.datasets, ['tank/docs', 'tank/photos']);
    const unplaced = new Map(report.unplaced.map((u) => [u.key, u.reason]));
    assert.deepEqual([...unplaced.keys()].sort(), [...interruptedKeys, strayKey].sort());
    assert.match(unplaced.get(interruptedKeys[0]!)!, /no usable stream record.*tank\/docs/);
    assert.match(unplaced.get(strayKey)!, /metadata does not open/);
    const r = Manifest.open(target, { readonly: true });
    try {
      assert.deepEqual(essence(r), expected);
      assert.equal(r.repository()?.keyId, keyring.keyId);
    } finally {
      r.close();
    }
  });

  it('drops a stream whose recorded volume is missing or resized, and reports it', async () => {
    const { m, store, path } = await scenario();
    const victim = m.chainFor('tank/docs')[1]!;
    m.close();
    rmSync(path);
    await store.deleteMany([victim.volumes[1]!.key]);
    const target = join(tmp.dir, `rebuilt${n++}.db`);
    const report = await rebuildManifest({ store, keyring, targetPath: target });
    assert.ok(report.unplaced.some((u) => u.key === streamRecordKey(victim.streamId) && /missing/.test(u.reason)));
    assert.ok(report.unplaced.some((u) => u.key === victim.volumes[0]!.key));
    const r = Manifest.open(target, { readonly: true });
    try {
      assert.equal(r.lastPushedSnapshot('tank/docs')?.name, 'tank/docs@x');
    } finally {
      r.close();
    }
  });

  it('a stream the manifest refuses is reported and the other streams are still rebuilt', async () => {
    const { m, store, path } = await scenario();
    const victim = m.chainFor('tank/docs')[1]!;
    m.close();
    rmSync(path);
    const original = Manifest.prototype.importCompleteStream;
    Manifest.prototype.importCompleteStream = function (this: Manifest, input) {
      if (input.streamId === victim.streamId) throw new ManifestError(`stream ${input.streamId} cannot be imported: test`, 'INCOMPLETE_STREAM');
      return original.call(this, input);
    };
    const target = join(tmp.dir, `rebuilt${n++}.db`);
    let report;
    try {
      report = await rebuildManifest({ store, keyring, targetPath: target });
    } finally {
      Manifest.prototype.importCompleteStream = original;
    }
    assert.equal(report.streams, 4);
    assert.ok(report.unplaced.some((u) => u.key === streamRecordKey(victim.streamId) && /not imported.*test/.test(u.reason)));
    for (const v of victim.volumes) assert.ok(report.unplaced.some((u) => u.key === v.key));
    const r = Manifest.open(target, { readonly: true });
    try {
      assert.equal(r.lastPushedSnapshot('tank/docs')?.name, 'tank/docs@x');
      assert.equal(r.lastPushedSnapshot('tank/photos')?.name, 'tank/photos@d3');
    } finally {
      r.close();
    }
  });

  it('refuses an existing target unless forced, then moves it aside', async () => {
    const { m, store, path } = await scenario();
    m.close();
    await assert.rejects(rebuildManifest({ store, keyring, targetPath: path }), (e: unknown) => e instanceof ManifestError && e.code === 'MANIFEST_EXISTS');
    writeFileSync(path, 'corrupted beyond repair');
    const report = await rebuildManifest({ store, keyring, targetPath: path, force: true });
    assert.ok(report.movedAside);
    assert.equal(readFileSync(report.movedAside, 'utf8'), 'corrupted beyond repair');
    assert.ok(existsSync(path));
    const r = Manifest.open(path, { readonly: true });
    try {
      assert.equal(r.datasets().length, 2);
    } finally {
      r.close();
    }
    assert.ok((await store.list(DATA_PREFIX)[Symbol.asyncIterator]().next()).value);
  });
});

describe('manifest rebuild: send flags', () => {
  it('come back from the stream records (from the bucket alone, and merged after a mirror); a record without them rebuilds as unknown (null)', async () => {
    const path = join(tmp.dir, `flags${n++}.db`);
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const m = Manifest.open(path);
    m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
    const s = [snap('tank/enc@1', 101n, 10n), snap('tank/enc@2', 102n, 20n), snap('tank/enc@3', 103n, 30n)];
    // Pushed by a zbk that did not record flags, then raw-less incremental and a raw full from later ones.
    await simulatePush(m, store, keyring, { dataset: 'tank/enc', from: null, to: s[0]!, volumes: [16], at: day(1) });
    await simulatePush(m, store, keyring, { dataset: 'tank/enc', from: s[0]!, to: s[1]!, volumes: [8], at: day(2), sendFlags: ['-c', '-L', '-e'] });
    await writeMirror(m, store, keyring, { storageClass: 'STANDARD', now: () => day(2) });
    await simulatePush(m, store, keyring, { dataset: 'tank/enc', from: null, to: s[2]!, volumes: [24], at: day(3), sendFlags: ['-w', '-c', '-L', '-e'] });
    const flagsOf = (db: Manifest): unknown => db.streams('tank/enc').map((x) => [x.to.name, x.sendFlags]);
    const expected = [['tank/enc@1', null], ['tank/enc@2', ['-c', '-L', '-e']], ['tank/enc@3', ['-w', '-c', '-L', '-e']]];
    assert.deepEqual(flagsOf(m), expected);
    m.close();

    for (const ignoreMirrors of [true, false]) {
      const target = join(tmp.dir, `flags-rebuilt${n++}.db`);
      const report = await rebuildManifest({ store, keyring, targetPath: target, ignoreMirrors });
      assert.equal(report.source, ignoreMirrors ? 'listing' : 'mirror');
      assert.equal(report.streamsFromRecords, ignoreMirrors ? 3 : 1);
      const r = Manifest.open(target, { readonly: true });
      try {
        assert.deepEqual(flagsOf(r), expected, `ignoreMirrors: ${ignoreMirrors}`);
      } finally {
        r.close();
      }
    }
  });

  it('a stream record whose sendFlags is not a list of options is not imported', async () => {
    const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
    const m = Manifest.open(join(tmp.dir, `badflags${n++}.db`));
    const s = await simulatePush(m, store, keyring, { dataset: 'tank/x', from: null, to: snap('tank/x@1', 5n, 10n), volumes: [8], at: day(1), sendFlags: ['-c'] });
    m.close();
    const key = streamRecordKey(s!.streamId);
    const rec = JSON.parse(Buffer.from(keyring.openBlob(BLOB_STREAM_RECORD, await store.getBytes(key))).toString('utf8')) as Record<string, unknown>;
    await store.put(key, keyring.sealBlob(BLOB_STREAM_RECORD, new TextEncoder().encode(JSON.stringify({ ...rec, sendFlags: '-c' }))));
    const report = await rebuildManifest({ store, keyring, targetPath: join(tmp.dir, `badflags-rebuilt${n++}.db`), ignoreMirrors: true });
    assert.equal(report.streams, 0);
    assert.match(report.unplaced.find((u) => u.key === key)?.reason ?? '', /malformed stream record: sendFlags/);
  });
});
