/**
 * The contract test suite every `ObjectStore` must pass: memory, local
 * directory, S3 against the test server, and S3 against any endpoint
 * (LocalStack, MinIO, AWS). Each test gets a fresh fixture and works under
 * its own random key prefix, so runs against a shared bucket do not collide.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { ObjectStore, UploadedPart } from '../../src/store/object-store.js';
import type { RestoreSemantics } from '../../src/cost/providers/index.js';
import {
  ArchivedError,
  NoSuchUploadError,
  NotFoundError,
  PermanentStoreError,
  PreconditionFailedError,
  RestoreInProgressError,
  StoreError,
} from '../../src/store/errors.js';

export interface StoreCaps {
  /** The store enforces archive classes (GET needs a restore). */
  archive: boolean;
  /** The minimum size of all parts but the last that the store enforces. */
  minPartSize: number;
  /** Move the store's clock forward (required for the restore flow when `archive`). */
  advanceClock?(ms: number): void;
  /** Clock time a restore takes (with `advanceClock`). */
  restoreDelayMs?: number;
  /** Run tests that write more than 1,000 keys (default true). */
  manyKeys?: boolean;
  /**
   * The storage classes the suite writes: a provider profile's
   * `dataStorageClass` / `metaStorageClass` (src/cost/providers), plus
   * `other`, one more class to round-trip. Default AWS's: DEEP_ARCHIVE,
   * STANDARD and STANDARD_IA.
   */
  classes?: { data: string; meta: string; other?: string };
  /**
   * How the store thaws `classes.data` (the profile's `restore.semantics`;
   * default `tiered`). With `none` the data class is readable at once and
   * `requestRestore` answers not-archived.
   */
  restore?: RestoreSemantics;
  /** A listing with OptionalObjectAttributes=RestoreStatus reports restore states (default true; S3-compatible services may ignore it). */
  listsRestoreStatus?: boolean;
}

const AWS_CLASSES = { data: 'DEEP_ARCHIVE', meta: 'STANDARD', other: 'STANDARD_IA' };

function classesOf(caps: StoreCaps): { data: string; meta: string; other?: string } {
  return caps.classes ?? AWS_CLASSES;
}

export interface StoreFixture {
  store: ObjectStore;
  cleanup(): Promise<void>;
  caps: StoreCaps;
  /**
   * A new store instance over the same data, as a process would open after a
   * crash. When absent, the resume test reuses `store`.
   */
  reopen?(): Promise<ObjectStore>;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

export function sha256b64(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Run `fn` in pools of `n` concurrent calls (keeps real endpoints and 2 shared cores happy). */
async function pool<T>(items: readonly T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof StoreError && err.code === code;
}

const DAY = 86_400_000;

export function runStoreSuite(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    /** Fresh fixture + unique prefix; cleans up everything under the prefix afterwards. */
    async function withStore(fn: (f: StoreFixture, p: string) => Promise<void>): Promise<void> {
      const f = await makeStore();
      const p = `suite-${randomBytes(6).toString('hex')}/`;
      try {
        await fn(f, p);
      } finally {
        try {
          for (const u of await f.store.listMultipartUploads(p)) await f.store.abortMultipartUpload(u.key, u.uploadId);
          const keys = (await collect(f.store.list(p))).map((e) => e.key);
          await f.store.deleteMany(keys);
        } finally {
          await f.cleanup();
        }
      }
    }

    it('put/get/getBytes round trip, overwrite and empty objects', () =>
      withStore(async ({ store }, p) => {
        const a = randomBytes(10_000);
        await store.put(`${p}a`, a);
        assert.deepEqual(await readAll(await store.get(`${p}a`)), a);
        assert.deepEqual(Buffer.from(await store.getBytes(`${p}a`)), a);
        const b = randomBytes(777);
        await store.put(`${p}a`, b);
        assert.deepEqual(Buffer.from(await store.getBytes(`${p}a`)), b);
        await store.put(`${p}empty`, new Uint8Array(0));
        assert.equal((await store.getBytes(`${p}empty`)).length, 0);
        assert.equal((await store.head(`${p}empty`)).size, 0);
      }));

    it('putConditional: if-none-match creates once; if-match replaces only the version read; a refused write changes nothing', () =>
      withStore(async ({ store }, p) => {
        const k = `${p}lease`;
        const first = await store.putConditional(k, Buffer.from('one'), { ifNoneMatch: '*' });
        assert.equal((await store.head(k)).etag, first);
        await assert.rejects(store.putConditional(k, Buffer.from('two'), { ifNoneMatch: '*' }), PreconditionFailedError);
        assert.equal(Buffer.from(await store.getBytes(k)).toString(), 'one');
        const second = await store.putConditional(k, Buffer.from('two'), { ifMatch: first });
        assert.notEqual(second, first);
        await assert.rejects(store.putConditional(k, Buffer.from('three'), { ifMatch: first }), PreconditionFailedError, 'a stale ETag loses');
        assert.equal(Buffer.from(await store.getBytes(k)).toString(), 'two');
        await assert.rejects(store.putConditional(`${p}missing`, Buffer.from('x'), { ifMatch: first }), PreconditionFailedError);
        await assert.rejects(store.head(`${p}missing`), NotFoundError);
        // Two writers racing on one version: exactly one wins.
        const race = await Promise.allSettled([
          store.putConditional(k, Buffer.from('A'), { ifMatch: second }),
          store.putConditional(k, Buffer.from('B'), { ifMatch: second }),
        ]);
        assert.deepEqual(race.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
        const winner = race[0]!.status === 'fulfilled' ? 'A' : 'B';
        assert.equal(Buffer.from(await store.getBytes(k)).toString(), winner);
      }));

    it('ranged get returns exactly the inclusive range and clamps the end', () =>
      withStore(async ({ store }, p) => {
        const a = randomBytes(4096);
        await store.put(`${p}r`, a);
        assert.deepEqual(await readAll(await store.get(`${p}r`, { start: 100, end: 1099 })), a.subarray(100, 1100));
        assert.deepEqual(await readAll(await store.get(`${p}r`, { start: 0, end: 0 })), a.subarray(0, 1));
        assert.deepEqual(await readAll(await store.get(`${p}r`, { start: 4000, end: 999_999 })), a.subarray(4000));
      }));

    it('head reports size, class, etag and metadata; missing objects are NotFoundError', () =>
      withStore(async ({ store }, p) => {
        const a = randomBytes(1234);
        await store.put(`${p}h`, a, { metadata: { 'zbk-meta': 'abc123==', other: 'x y' } });
        const info = await store.head(`${p}h`);
        assert.equal(info.key, `${p}h`);
        assert.equal(info.size, 1234);
        assert.equal(info.storageClass, 'STANDARD');
        assert.deepEqual(info.metadata, { 'zbk-meta': 'abc123==', other: 'x y' });
        assert.deepEqual(info.restore, { state: 'not-archived' });
        assert.ok(info.etag && !info.etag.includes('"'), 'etag present, unquoted');
        assert.ok(info.lastModified instanceof Date && !Number.isNaN(info.lastModified.getTime()));
        await assert.rejects(store.head(`${p}missing`), NotFoundError);
        await assert.rejects(store.get(`${p}missing`), NotFoundError);
        await assert.rejects(store.getBytes(`${p}missing`), NotFoundError);
      }));

    it('list filters by prefix and returns key order', () =>
      withStore(async ({ store }, p) => {
        const keys = ['b/2', 'a/1', 'a/10', 'a/2', 'ab', 'c'];
        for (const k of keys) await store.put(`${p}${k}`, Buffer.from(k));
        const all = await collect(store.list(p));
        assert.deepEqual(
          all.map((e) => e.key),
          [...keys].sort().map((k) => `${p}${k}`),
        );
        const a = all.find((e) => e.key === `${p}a/10`)!;
        assert.equal(a.size, 4);
        assert.equal(a.storageClass, 'STANDARD');
        assert.deepEqual(
          (await collect(store.list(`${p}a/`))).map((e) => e.key),
          [`${p}a/1`, `${p}a/10`, `${p}a/2`],
        );
        assert.deepEqual(await collect(store.list(`${p}zzz`)), []);
      }));

    it('deleteMany is idempotent and ignores missing keys', () =>
      withStore(async ({ store }, p) => {
        await store.put(`${p}x`, Buffer.from('x'));
        await store.put(`${p}y`, Buffer.from('y'));
        await store.deleteMany([`${p}x`, `${p}nope`]);
        await store.deleteMany([`${p}x`]);
        await store.deleteMany([]);
        assert.deepEqual(
          (await collect(store.list(p))).map((e) => e.key),
          [`${p}y`],
        );
      }));

    it('list and deleteMany handle more than 1,000 keys (pagination, batching)', async (t) => {
      const probe = await makeStore();
      const many = probe.caps.manyKeys ?? true;
      await probe.cleanup();
      if (!many) {
        t.skip('manyKeys disabled for this store');
        return;
      }
      await withStore(async ({ store }, p) => {
        const keys = Array.from({ length: 1005 }, (_, i) => `${p}k/${String(i).padStart(5, '0')}`);
        await pool(keys, 8, (k) => store.put(k, Buffer.from('1')));
        const listed = (await collect(store.list(`${p}k/`))).map((e) => e.key);
        assert.deepEqual(listed, keys);
        if (store.listRestoreStates) {
          const states = await store.listRestoreStates(`${p}k/`);
          assert.deepEqual([...states.keys()].sort(), keys, 'listRestoreStates reads every page');
          assert.ok([...states.values()].every((e) => e.restore?.state === 'not-archived'));
        }
        await store.deleteMany(keys);
        assert.deepEqual(await collect(store.list(p)), []);
      });
    });

    it('multipart: create, upload, list, complete; bytes, class and metadata preserved', () =>
      withStore(async ({ store, caps }, p) => {
        const key = `${p}mp/obj`;
        const parts = [randomBytes(caps.minPartSize), randomBytes(caps.minPartSize + 17), randomBytes(1000)];
        const id = await store.createMultipartUpload(key, { metadata: { 'zbk-meta': 'volume-1' } });
        assert.ok(id.length > 0);
        const ups = (await store.listMultipartUploads(`${p}mp/`)).filter((u) => u.uploadId === id);
        assert.equal(ups.length, 1);
        assert.equal(ups[0]!.key, key);
        assert.ok(ups[0]!.initiated instanceof Date);
        const acked: UploadedPart[] = [];
        // Upload out of order: parts are independent.
        for (const n of [2, 1, 3]) {
          const part = await store.uploadPart(key, id, n, parts[n - 1]!, sha256b64(parts[n - 1]!));
          assert.equal(part.partNumber, n);
          assert.equal(part.size, parts[n - 1]!.length);
          assert.ok(part.etag && !part.etag.includes('"'));
          acked.push(part);
        }
        const listed = await store.listParts(key, id);
        assert.deepEqual(
          listed.map((x) => [x.partNumber, x.size, x.etag]),
          [...acked].sort((a, b) => a.partNumber - b.partNumber).map((x) => [x.partNumber, x.size, x.etag]),
        );
        await store.completeMultipartUpload(key, id, listed);
        assert.deepEqual(await readAll(await store.get(key)), Buffer.concat(parts));
        const info = await store.head(key);
        assert.equal(info.size, parts.reduce((n, b) => n + b.length, 0));
        assert.deepEqual(info.metadata, { 'zbk-meta': 'volume-1' });
        assert.equal(info.storageClass, 'STANDARD');
        await assert.rejects(store.listParts(key, id), NoSuchUploadError);
        assert.equal((await store.listMultipartUploads(`${p}mp/`)).filter((u) => u.uploadId === id).length, 0);
      }));

    it('resume: a new store instance lists acknowledged parts and completes the upload', () =>
      withStore(async (f, p) => {
        const key = `${p}resume/obj`;
        const parts = [randomBytes(f.caps.minPartSize), randomBytes(f.caps.minPartSize), randomBytes(4321)];
        const id = await f.store.createMultipartUpload(key);
        await f.store.uploadPart(key, id, 1, parts[0]!, sha256b64(parts[0]!));
        await f.store.uploadPart(key, id, 2, parts[1]!, sha256b64(parts[1]!));
        // The "crashed" process kept only the upload id.
        const store2 = f.reopen ? await f.reopen() : f.store;
        const uploads = await store2.listMultipartUploads(`${p}resume/`);
        assert.ok(uploads.some((u) => u.uploadId === id && u.key === key));
        const have = await store2.listParts(key, id);
        assert.deepEqual(
          have.map((x) => [x.partNumber, x.size]),
          [
            [1, parts[0]!.length],
            [2, parts[1]!.length],
          ],
        );
        const p3 = await store2.uploadPart(key, id, 3, parts[2]!, sha256b64(parts[2]!));
        await store2.completeMultipartUpload(key, id, [...have, p3]);
        assert.deepEqual(Buffer.from(await store2.getBytes(key)), Buffer.concat(parts));
        assert.deepEqual(Buffer.from(await f.store.getBytes(key)), Buffer.concat(parts));
      }));

    it('re-uploading a part number replaces it (idempotent retry)', () =>
      withStore(async ({ store }, p) => {
        const key = `${p}replace`;
        const id = await store.createMultipartUpload(key);
        const a = randomBytes(100);
        const b = randomBytes(200);
        await store.uploadPart(key, id, 1, a, sha256b64(a));
        const pb = await store.uploadPart(key, id, 1, b, sha256b64(b));
        const listed = await store.listParts(key, id);
        assert.equal(listed.length, 1);
        assert.equal(listed[0]!.size, 200);
        await store.completeMultipartUpload(key, id, [pb]);
        assert.deepEqual(Buffer.from(await store.getBytes(key)), b);
      }));

    it('a partSize hint is only a hint: equal parts in any order, a replaced part, then parts of other sizes all complete to the same bytes', () =>
      withStore(async (f, p) => {
        const P = f.caps.minPartSize;
        // Equal parts, uploaded last first, part 2 replaced by other bytes of the same size, resumed by a new instance.
        const key = `${p}hint/equal`;
        const parts = [randomBytes(P), randomBytes(P), randomBytes(777)];
        const id = await f.store.createMultipartUpload(key, { partSize: P });
        for (const n of [3, 2, 1]) await f.store.uploadPart(key, id, n, parts[n - 1]!, sha256b64(parts[n - 1]!));
        parts[1] = randomBytes(P);
        await f.store.uploadPart(key, id, 2, parts[1], sha256b64(parts[1]));
        const store2 = f.reopen ? await f.reopen() : f.store;
        const listed = await store2.listParts(key, id);
        assert.deepEqual(listed.map((x) => [x.partNumber, x.size, x.checksumSha256]), parts.map((b, i) => [i + 1, b.length, sha256b64(b)]));
        await store2.completeMultipartUpload(key, id, listed);
        assert.deepEqual(Buffer.from(await store2.getBytes(key)), Buffer.concat(parts));
        assert.equal((await store2.head(key)).size, 2 * P + 777);

        // Against the hint: a part larger than it, a middle part smaller, a part left out of the complete.
        const odd = `${p}hint/odd`;
        const oddParts = [randomBytes(P + 5), randomBytes(P), randomBytes(P), randomBytes(10)];
        const id2 = await f.store.createMultipartUpload(odd, { partSize: P + 1 });
        const acks = [];
        for (const [i, b] of oddParts.entries()) acks.push(await f.store.uploadPart(odd, id2, i + 1, b, sha256b64(b)));
        await f.store.completeMultipartUpload(odd, id2, [acks[0]!, acks[1]!, acks[3]!]);
        assert.deepEqual(Buffer.from(await f.store.getBytes(odd)), Buffer.concat([oddParts[0]!, oddParts[1]!, oddParts[3]!]));
      }));

    it('abort is idempotent; a gone upload is NoSuchUploadError', () =>
      withStore(async ({ store }, p) => {
        const key = `${p}abort`;
        const id = await store.createMultipartUpload(key);
        const a = randomBytes(100);
        await store.uploadPart(key, id, 1, a, sha256b64(a));
        await store.abortMultipartUpload(key, id);
        await store.abortMultipartUpload(key, id);
        await assert.rejects(store.listParts(key, id), NoSuchUploadError);
        await assert.rejects(store.uploadPart(key, id, 2, a, sha256b64(a)), NoSuchUploadError);
        await assert.rejects(store.completeMultipartUpload(key, id, [{ partNumber: 1, size: 100, etag: 'x' }]), NoSuchUploadError);
        assert.equal((await store.listMultipartUploads(p)).filter((u) => u.uploadId === id).length, 0);
        await assert.rejects(store.head(key), NotFoundError);
      }));

    it('listMultipartUploads filters by prefix', () =>
      withStore(async ({ store }, p) => {
        const id1 = await store.createMultipartUpload(`${p}u/one`);
        const id2 = await store.createMultipartUpload(`${p}v/two`);
        const u = await store.listMultipartUploads(`${p}u/`);
        assert.deepEqual(
          u.map((x) => [x.key, x.uploadId]),
          [[`${p}u/one`, id1]],
        );
        const all = await store.listMultipartUploads(p);
        assert.deepEqual(all.map((x) => x.uploadId).sort(), [id1, id2].sort());
      }));

    it('a part with a wrong checksum is rejected (BAD_DIGEST) and not stored', () =>
      withStore(async ({ store }, p) => {
        const key = `${p}digest`;
        const id = await store.createMultipartUpload(key);
        const a = randomBytes(1000);
        await assert.rejects(store.uploadPart(key, id, 1, a, sha256b64(randomBytes(1000))), (err) => err instanceof PermanentStoreError && err.code === 'BAD_DIGEST');
        assert.deepEqual(await store.listParts(key, id), []);
        const ok = await store.uploadPart(key, id, 1, a, sha256b64(a));
        assert.equal(ok.size, 1000);
      }));

    it('a part sent without a checksum gets one computed by the store, reported back and kept', () =>
      withStore(async ({ store, caps }, p) => {
        const key = `${p}no-digest`;
        const id = await store.createMultipartUpload(key);
        const a = randomBytes(caps.minPartSize);
        const b = randomBytes(1000);
        const pa = await store.uploadPart(key, id, 1, a);
        const pb = await store.uploadPart(key, id, 2, b);
        assert.equal(pa.checksumSha256, sha256b64(a));
        assert.equal(pb.checksumSha256, sha256b64(b));
        const listed = await store.listParts(key, id);
        assert.deepEqual(
          listed.map((x) => [x.partNumber, x.size, x.etag]),
          [
            [1, a.length, pa.etag],
            [2, b.length, pb.etag],
          ],
        );
        // Where the server reports checksums in the listing, they are the computed ones.
        for (const [i, x] of listed.entries()) if (x.checksumSha256 !== undefined) assert.equal(x.checksumSha256, [pa, pb][i]!.checksumSha256);
        await store.completeMultipartUpload(key, id, [pa, pb]);
        assert.deepEqual(Buffer.from(await store.getBytes(key)), Buffer.concat([a, b]));
      }));

    it('complete enforces EntityTooSmall, InvalidPart and InvalidPartOrder; the upload survives', () =>
      withStore(async ({ store, caps }, p) => {
        const key = `${p}bad-complete`;
        const id = await store.createMultipartUpload(key);
        const small = randomBytes(Math.min(1024, caps.minPartSize - 1));
        const big = randomBytes(caps.minPartSize);
        const p1 = await store.uploadPart(key, id, 1, small, sha256b64(small));
        const p2 = await store.uploadPart(key, id, 2, big, sha256b64(big));
        await assert.rejects(store.completeMultipartUpload(key, id, [p2, p1]), isCode('INVALID_PART_ORDER'));
        await assert.rejects(store.completeMultipartUpload(key, id, [p1, { ...p2, etag: 'deadbeefdeadbeefdeadbeefdeadbeef' }]), isCode('INVALID_PART'));
        await assert.rejects(store.completeMultipartUpload(key, id, [p1, { ...p2, partNumber: 3 }]), isCode('INVALID_PART'));
        await assert.rejects(store.completeMultipartUpload(key, id, [p1, p2]), isCode('ENTITY_TOO_SMALL'));
        await assert.rejects(store.head(key), NotFoundError);
        // The failed completes left the upload usable.
        const p1b = await store.uploadPart(key, id, 1, big, sha256b64(big));
        await store.completeMultipartUpload(key, id, [p1b, p2]);
        assert.deepEqual(Buffer.from(await store.getBytes(key)), Buffer.concat([big, big]));
      }));

    it('storage class and metadata round trip through put (the data, meta and other classes)', () =>
      withStore(async ({ store, caps }, p) => {
        const { data, meta, other } = classesOf(caps);
        const classes = [...new Set([meta, data, ...(other ? [other] : [])])];
        for (const cls of classes) {
          await store.put(`${p}c/${cls}`, Buffer.from('meta'), { storageClass: cls, metadata: { a: '1', 'b-c': 'two words' } });
          const info = await store.head(`${p}c/${cls}`);
          assert.equal(info.storageClass, cls);
          assert.deepEqual(info.metadata, { a: '1', 'b-c': 'two words' });
        }
        const listed = await collect(store.list(`${p}c/`));
        assert.deepEqual(
          listed.map((e) => [e.key, e.storageClass]),
          [...classes].sort().map((cls) => [`${p}c/${cls}`, cls]),
        );
      }));

    it('requestRestore on a readable object is not-archived; on a missing one NotFoundError', () =>
      withStore(async ({ store }, p) => {
        await store.put(`${p}std`, Buffer.from('x'));
        assert.equal(await store.requestRestore(`${p}std`, 1, 'Bulk'), 'not-archived');
        await assert.rejects(store.requestRestore(`${p}missing`, 1, 'Bulk'), NotFoundError);
      }));

    it('no restore step (restore: none): the data class is readable at once and a restore request answers not-archived', async (t) => {
      const probe = await makeStore();
      const none = probe.caps.restore === 'none';
      await probe.cleanup();
      if (!none) {
        t.skip('the store has a restore step');
        return;
      }
      await withStore(async ({ store, caps }, p) => {
        const { data: cls } = classesOf(caps);
        const key = `${p}cold`;
        const data = randomBytes(3000);
        await store.put(key, data, { storageClass: cls });
        const h = await store.head(key);
        assert.equal(h.storageClass, cls);
        assert.deepEqual(h.restore, { state: 'not-archived' });
        assert.deepEqual(Buffer.from(await store.getBytes(key)), data);
        assert.equal(await store.requestRestore(key, 2, 'Bulk'), 'not-archived');
        assert.deepEqual(await readAll(await store.get(key, { start: 10, end: 19 })), data.subarray(10, 20));
      });
    });

    it('archive flow: archived → started → in-progress → restored → readable → expired', async (t) => {
      const probe = await makeStore();
      const { archive, advanceClock } = probe.caps;
      await probe.cleanup();
      if (!archive || !advanceClock) {
        t.skip('store does not enforce archive classes or has no controllable clock');
        return;
      }
      await withStore(async ({ store, caps }, p) => {
        const advance = caps.advanceClock!;
        const { data: cls } = classesOf(caps);
        const key = `${p}deep`;
        const data = randomBytes(3000);
        await store.put(key, data, { storageClass: cls, metadata: { v: '1' } });
        const h0 = await store.head(key);
        assert.equal(h0.storageClass, cls);
        assert.deepEqual(h0.restore, { state: 'archived' });
        assert.deepEqual(h0.metadata, { v: '1' });
        await assert.rejects(store.get(key), (e) => e instanceof ArchivedError && e.storageClass === cls);
        await assert.rejects(store.getBytes(key), ArchivedError);
        assert.equal(await store.requestRestore(key, 2, 'Bulk'), 'started');
        assert.equal(await store.requestRestore(key, 2, 'Bulk'), 'in-progress');
        assert.deepEqual((await store.head(key)).restore, { state: 'in-progress' });
        await assert.rejects(store.get(key), RestoreInProgressError);
        advance((caps.restoreDelayMs ?? 0) + 1000);
        const h1 = await store.head(key);
        assert.equal(h1.restore.state, 'restored');
        assert.equal(h1.storageClass, cls);
        const expiry = h1.restore.state === 'restored' ? h1.restore.expiry : new Date(0);
        assert.ok(expiry.getTime() > h1.lastModified.getTime(), 'expiry after the object was written');
        assert.equal(expiry.getUTCHours() * 3600 + expiry.getUTCMinutes() * 60 + expiry.getUTCSeconds(), 0, 'expiry at midnight UTC');
        assert.deepEqual(Buffer.from(await store.getBytes(key)), data);
        assert.deepEqual(await readAll(await store.get(key, { start: 10, end: 19 })), data.subarray(10, 20));
        assert.equal(await store.requestRestore(key, 2, 'Bulk'), 'already-restored');
        advance(5 * DAY);
        assert.deepEqual((await store.head(key)).restore, { state: 'archived' });
        await assert.rejects(store.get(key), ArchivedError);
      });
    });

    it('listRestoreStates (optional): every object under the prefix, sizes, classes; a state it tells is the one head reports', async (t) => {
      const probe = await makeStore();
      const has = typeof probe.store.listRestoreStates === 'function';
      await probe.cleanup();
      if (!has) {
        t.skip('store has no listRestoreStates (callers HEAD each object)');
        return;
      }
      await withStore(async ({ store, caps }, p) => {
        const listStates = store.listRestoreStates!.bind(store);
        await store.put(`${p}v/std`, Buffer.from('standard'));
        const { data: cls, meta, other } = classesOf(caps);
        await store.put(`${p}v/deep`, randomBytes(3000), { storageClass: cls });
        await store.put(`${p}v/sub/ia`, Buffer.from('ia'), { storageClass: other ?? meta });
        await store.put(`${p}v0`, Buffer.from('not under v/'));
        await store.put(`${p}w/other`, Buffer.from('other'));
        const listed = await listStates(`${p}v/`);
        assert.deepEqual([...listed.keys()].sort(), [`${p}v/deep`, `${p}v/std`, `${p}v/sub/ia`]);
        for (const [key, e] of listed) {
          const h = await store.head(key);
          assert.equal(e.size, h.size, key);
          assert.equal(e.storageClass, h.storageClass, key);
          if (e.restore !== null) assert.deepEqual(e.restore, h.restore, `${key}: the listing agrees with head`);
        }
        assert.deepEqual(listed.get(`${p}v/std`)!.restore, { state: 'not-archived' });
        assert.deepEqual(listed.get(`${p}v/sub/ia`)!.restore, { state: 'not-archived' });
        // An archived object without a restore: 'archived', or null when the listing cannot tell (S3 sends no status then).
        const deep = listed.get(`${p}v/deep`)!.restore;
        if (caps.restore === 'none') assert.deepEqual(deep, { state: 'not-archived' }, 'no restore step: the data class is readable');
        else if (caps.archive) assert.ok(deep === null || deep.state === 'archived', JSON.stringify(deep));
        else assert.ok(deep === null || deep.state === 'archived' || deep.state === 'not-archived', JSON.stringify(deep));
        assert.equal((await listStates(`${p}nothing/`)).size, 0);
      });
    });

    it('listRestoreStates follows the archive flow: in-progress, restored until the expiry head reports, archived again', async (t) => {
      const probe = await makeStore();
      const { archive, advanceClock } = probe.caps;
      const has = typeof probe.store.listRestoreStates === 'function';
      await probe.cleanup();
      if (!has || !archive || !advanceClock) {
        t.skip('store has no listRestoreStates, does not enforce archive classes or has no controllable clock');
        return;
      }
      await withStore(async ({ store, caps }, p) => {
        const listStates = store.listRestoreStates!.bind(store);
        const advance = caps.advanceClock!;
        const [a, b, c] = ['a', 'b', 'c'].map((n) => `${p}deep/${n}`) as [string, string, string];
        for (const k of [a, b, c]) await store.put(k, randomBytes(100), { storageClass: classesOf(caps).data });
        // An endpoint that ignores OptionalObjectAttributes cannot tell: every state is null (unknown), never a wrong one.
        const told = caps.listsRestoreStatus ?? true;
        const expect = (got: unknown, state: unknown, what: string): void => assert.deepEqual(got, told ? state : null, what);
        assert.equal(await store.requestRestore(a, 2, 'Bulk'), 'started');
        let listed = await listStates(`${p}deep/`);
        expect(listed.get(a)!.restore, { state: 'in-progress' }, 'a in progress');
        // The listing shows a status on `a`: the endpoint honours the parameter, so `b` and `c` are archived.
        expect(listed.get(b)!.restore, { state: 'archived' }, 'b archived');
        advance((caps.restoreDelayMs ?? 0) + 1000);
        assert.equal(await store.requestRestore(b, 3, 'Bulk'), 'started');
        listed = await listStates(`${p}deep/`);
        const ha = await store.head(a);
        assert.equal(ha.restore.state, 'restored');
        expect(listed.get(a)!.restore, ha.restore, 'the same expiry as head');
        expect(listed.get(b)!.restore, { state: 'in-progress' }, 'b in progress');
        expect(listed.get(c)!.restore, { state: 'archived' }, 'c archived');
        assert.deepEqual((await store.head(b)).restore, { state: 'in-progress' });
        advance(10 * DAY);
        // Every copy expired: no status anywhere, so a listing may not tell (null) — never a wrong state.
        listed = await listStates(`${p}deep/`);
        for (const k of [a, b, c]) {
          const r = listed.get(k)!.restore;
          assert.ok(r === null || r.state === 'archived', `${k}: ${JSON.stringify(r)}`);
          assert.deepEqual((await store.head(k)).restore, { state: 'archived' });
        }
      });
    });

    it('rejects keys that could escape the store', () =>
      withStore(async ({ store }) => {
        for (const bad of ['../x', 'a/../../x', '/abs', 'a\u0000b', '']) {
          await assert.rejects(store.put(bad, Buffer.from('x')), StoreError, JSON.stringify(bad));
        }
      }));
  });
}
