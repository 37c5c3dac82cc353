import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalStore } from '../../src/store/local-store.js';
import { NotFoundError, StoreError } from '../../src/store/errors.js';
import { multipartEtag } from '../../src/store/internal.js';
import { runStoreSuite, sha256b64 } from './suite.js';

const MIN = 64 * 1024;

runStoreSuite('LocalStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zbk-local-store-'));
  const store = new LocalStore(dir, { minPartSize: MIN });
  return {
    store,
    cleanup: () => rm(dir, { recursive: true, force: true }),
    caps: { archive: false, minPartSize: MIN },
    reopen: async () => new LocalStore(dir, { minPartSize: MIN }),
  };
});

/** A store on `dir` whose completes die right before the commit's rename (a kill at that point). */
function crashingBeforeCommit(dir: string, message: string): LocalStore {
  return new LocalStore(dir, {
    minPartSize: 10,
    testHookBeforeCommit: () => {
      throw new Error(message);
    },
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zbk-local-store-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('LocalStore specifics', () => {
  it('url is a file URL of the directory', () =>
    withDir(async (dir) => {
      assert.equal(new LocalStore(dir).url, `file://${dir}`);
    }));

  it('keeps objects as plain files with a v2 sidecar (no inode), writes the layout marker, leaves no temp files', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await s.put('data/x/1.zbkv', Buffer.from('hello'), { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'm' } });
      const names = (await readdir(join(dir, 'data', 'x'))).sort();
      assert.deepEqual(names, ['1.zbkv', '1.zbkv.zbk-meta.json']);
      assert.deepEqual((await readdir(dir)).sort(), ['.zbk-layout', 'data']);
      assert.equal(await readFile(join(dir, '.zbk-layout'), 'utf8'), '2\n');
      const side = JSON.parse(await readFile(join(dir, 'data', 'x', '1.zbkv.zbk-meta.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(side).sort(), ['etag', 'fingerprint', 'metadata', 'size', 'storageClass', 'v']);
      assert.equal(side.v, 2);
      assert.equal(side.fingerprint, fingerprint(Buffer.from('hello')));
      const info = await s.head('data/x/1.zbkv');
      assert.equal(info.storageClass, 'DEEP_ARCHIVE');
      assert.equal(info.etag, side.etag);
      assert.deepEqual(info.restore, { state: 'not-archived' });
      assert.equal(Buffer.from(await s.getBytes('data/x/1.zbkv')).toString(), 'hello');
      assert.equal(await s.requestRestore('data/x/1.zbkv', 1, 'Bulk'), 'not-archived');
    }));

  it('the fingerprint is SHA-256 of the size, a newline, the first and the last min(4096, size) bytes', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      for (const n of [0, 1, 4095, 4096, 4097, 8191, 8192, 20_000]) {
        const body = randomBytes(n);
        await s.put(`k${n}`, body);
        const side = JSON.parse(await readFile(join(dir, `k${n}.zbk-meta.json`), 'utf8')) as { fingerprint: string; size: number };
        assert.equal(side.size, n);
        assert.equal(side.fingerprint, fingerprint(body), `size ${n}`);
      }
    }));

  it('rejects reserved names and file/directory conflicts', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await assert.rejects(s.put('a.zbk-meta.json', Buffer.from('x')), { code: 'INVALID_KEY' });
      await assert.rejects(s.put('.zbk-uploads/x', Buffer.from('x')), { code: 'INVALID_KEY' });
      await assert.rejects(s.put('.zbk-layout', Buffer.from('x')), { code: 'INVALID_KEY' });
      await s.put('a', Buffer.from('x'));
      await assert.rejects(s.put('a/b', Buffer.from('x')), { code: 'KEY_CONFLICT' });
      await s.put('c/d', Buffer.from('x'));
      await assert.rejects(s.put('c', Buffer.from('x')), (e) => e instanceof StoreError && e.code === 'KEY_CONFLICT');
    }));

  it('detects a torn write by content (data renamed, sidecar of the previous object left): no stale ETag or metadata', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      const old = randomBytes(10_000);
      // Other sizes, and the same size with other bytes at either end (no inode to tell them apart).
      const same = (edit: (b: Buffer) => void): Buffer => {
        const b = Buffer.from(old);
        edit(b);
        return b;
      };
      const newer = [randomBytes(3), same((b) => (b[0] = b[0]! ^ 1)), same((b) => (b[b.length - 1] = b[b.length - 1]! ^ 1)), same((b) => (b[5000] = b[5000]! ^ 1))];
      for (const [i, body] of newer.entries()) {
        await s.put('k', old, { storageClass: 'DEEP_ARCHIVE', metadata: { v: '1' } });
        const before = await s.head('k');
        assert.ok(before.etag);
        // A crash between the data rename and the sidecar rename.
        await writeFile(join(dir, 'k.new'), body);
        await rename(join(dir, 'k.new'), join(dir, 'k'));
        const info = await new LocalStore(dir).head('k');
        if (i === 3) {
          // A change inside the object, away from both ends, is not seen by the fingerprint (the documented limit).
          assert.equal(info.etag, before.etag);
          continue;
        }
        assert.deepEqual([info.size, info.storageClass, info.etag, info.metadata], [body.length, 'STANDARD', undefined, {}], `case ${i}`);
        assert.deepEqual(await collect(s.list('k')).then((l) => l.map((e) => [e.size, e.storageClass])), [[body.length, i === 0 ? 'STANDARD' : 'DEEP_ARCHIVE']]);
        assert.ok(Buffer.from(await s.getBytes('k')).equals(body));
        await s.put('k', body, { metadata: { v: '2' } });
        assert.deepEqual((await s.head('k')).metadata, { v: '2' });
      }
    }));

  it('a missing or unparseable sidecar leaves the file an object: STANDARD, no ETag, no metadata', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await s.put('a', Buffer.from('aaa'), { storageClass: 'DEEP_ARCHIVE', metadata: { m: '1' } });
      await s.put('b', Buffer.from('bbbb'), { storageClass: 'DEEP_ARCHIVE', metadata: { m: '1' } });
      await unlink(join(dir, 'a.zbk-meta.json'));
      await writeFile(join(dir, 'b.zbk-meta.json'), '{"v":2,');
      for (const [k, n] of [['a', 3], ['b', 4]] as const) {
        const info = await s.head(k);
        assert.deepEqual([info.size, info.storageClass, info.etag, info.metadata, info.restore], [n, 'STANDARD', undefined, {}, { state: 'not-archived' }]);
      }
      assert.deepEqual((await collect(s.list(''))).map((e) => [e.key, e.size, e.storageClass]), [['a', 3, 'STANDARD'], ['b', 4, 'STANDARD']]);
    }));

  it('ignores part files of unknown shape and picks the part files from disk after reopening', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir, { minPartSize: 10 });
      const id = await s.createMultipartUpload('obj');
      const a = randomBytes(50);
      await s.uploadPart('obj', id, 1, a, sha256b64(a));
      await writeFile(join(dir, '.zbk-uploads', id, '.zbk-tmp-leftover'), 'junk');
      const parts = await new LocalStore(dir, { minPartSize: 10 }).listParts('obj', id);
      assert.deepEqual(
        parts.map((p) => [p.partNumber, p.size, p.checksumSha256]),
        [[1, 50, sha256b64(a)]],
      );
    }));

  it('an upload id that is not ours cannot reach outside the uploads directory', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await assert.rejects(s.listParts('k', '../../etc'), { code: 'NO_SUCH_UPLOAD' });
      await s.abortMultipartUpload('k', '../..');
      assert.deepEqual(await readdir(dir), ['.zbk-layout']);
    }));

  it('a completed multipart object is one plain file of the parts concatenated: no part directory, no descriptor, sidecar v2 without inode', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir, { minPartSize: 10 });
      const parts = [randomBytes(37_000), randomBytes(41_000), randomBytes(13_000)];
      const whole = Buffer.concat(parts);
      const id = await s.createMultipartUpload('v/obj', { storageClass: 'DEEP_ARCHIVE', metadata: { m: '1' } });
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('v/obj', id, i + 1, b, sha256b64(b)));
      await s.completeMultipartUpload('v/obj', id, acks);
      assert.deepEqual((await readdir(join(dir, 'v'))).sort(), ['obj', 'obj.zbk-meta.json']);
      assert.ok((await readFile(join(dir, 'v', 'obj'))).equals(whole), 'the file is the object');
      assert.equal((await stat(join(dir, 'v', 'obj'))).nlink, 1, 'not a hard link of a part');
      assert.deepEqual(await readdir(join(dir, '.zbk-uploads')), []);
      const side = JSON.parse(await readFile(join(dir, 'v', 'obj.zbk-meta.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(side, { v: 2, storageClass: 'DEEP_ARCHIVE', metadata: { m: '1' }, etag: multipartEtag(acks.map((a) => a.etag)), size: whole.length, fingerprint: fingerprint(whole) });
      const r = await new LocalStore(dir).head('v/obj');
      assert.deepEqual([r.size, r.etag, r.storageClass, r.metadata], [whole.length, side.etag, 'DEEP_ARCHIVE', { m: '1' }]);
      assert.deepEqual(
        (await collect(new LocalStore(dir).list('v/'))).map((e) => [e.key, e.size, e.storageClass]),
        [['v/obj', whole.length, 'DEEP_ARCHIVE']],
      );
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(whole));
      assert.ok((await readAll(await s.get('v/obj'))).equals(whole));
      for (const [start, end] of [[0, 0], [36_999, 37_001], [77_999, whole.length + 10], [whole.length - 1, whole.length - 1]] as const) {
        const got = await readAll(await s.get('v/obj', { start, end }));
        assert.ok(got.equals(whole.subarray(start, Math.min(end, whole.length - 1) + 1)), `range ${start}-${end}`);
      }
      // A reader opened before an overwrite keeps the old bytes.
      const early = await s.get('v/obj', { start: 30_000, end: 80_000 });
      await s.put('v/obj', Buffer.from('plain now'));
      assert.ok((await readAll(early)).equals(whole.subarray(30_000, 80_001)));
      assert.equal(Buffer.from(await s.getBytes('v/obj')).toString(), 'plain now');
      await s.deleteMany(['v/obj', 'v/obj']);
      assert.deepEqual((await readdir(dir)).sort(), ['.zbk-layout', '.zbk-uploads']);
      await assert.rejects(s.get('v/obj'), NotFoundError);
    }));

  it('a complete interrupted before its commit leaves the old object, the upload resumable and no temp file', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(15)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      await s.put('obj', Buffer.from('previous'));
      const id = await s.createMultipartUpload('obj');
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('obj', id, i + 1, b, sha256b64(b)));
      const crashing = crashingBeforeCommit(dir, 'simulated crash after writing the temp file');
      await assert.rejects(crashing.completeMultipartUpload('obj', id, acks), /simulated crash/);
      assert.equal(Buffer.from(await s.getBytes('obj')).toString(), 'previous');
      assert.equal((await s.head('obj')).etag, md5(Buffer.from('previous')));
      assert.deepEqual((await s.listMultipartUploads('')).map((u) => u.uploadId), [id]);
      assert.deepEqual((await s.listParts('obj', id)).map((p) => p.size), [20, 15]);
      assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.zbk-tmp-')), []);
      await new LocalStore(dir, { minPartSize: 10 }).completeMultipartUpload('obj', id, acks);
      assert.ok(Buffer.from(await s.getBytes('obj')).equals(Buffer.concat(parts)));
      assert.equal((await s.head('obj')).size, 35);
      assert.deepEqual(await s.listMultipartUploads(''), []);
    }));

  it('a complete killed between the data rename and the sidecar rename is finished by the next complete', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(15)];
      const whole = Buffer.concat(parts);
      // The key was new, held a plain object, or held another multipart object.
      for (const before of ['none', 'plain', 'multipart'] as const) {
        const s = new LocalStore(dir, { minPartSize: 10 });
        const key = `v/${before}`;
        const path = join(dir, 'v', before);
        if (before === 'plain') await s.put(key, Buffer.from('previous'));
        if (before === 'multipart') {
          const id0 = await s.createMultipartUpload(key);
          await s.completeMultipartUpload(key, id0, [await s.uploadPart(key, id0, 1, parts[1]!)]);
        }
        const oldSidecar = before === 'none' ? null : await readFile(`${path}.zbk-meta.json`);
        const id = await s.createMultipartUpload(key, { storageClass: 'DEEP_ARCHIVE', metadata: { m: before } });
        const acks = [];
        for (const [i, b] of parts.entries()) acks.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
        const saved = join(dir, 'saved-upload');
        await cp(join(dir, '.zbk-uploads', id), saved, { recursive: true });
        await s.completeMultipartUpload(key, id, acks);
        const committed = await s.head(key);
        // What a kill right after rename(tmp, key) leaves: the new data, the previous sidecar
        // (or none), the upload with its record and its part files.
        if (oldSidecar) await writeFile(`${path}.zbk-meta.json`, oldSidecar);
        else await unlink(`${path}.zbk-meta.json`);
        await rename(saved, join(dir, '.zbk-uploads', id));
        const torn = await s.head(key);
        assert.deepEqual([torn.size, torn.etag, torn.metadata], [whole.length, undefined, {}], 'no stale metadata');

        const again = new LocalStore(dir, { minPartSize: 10 });
        const listed = await again.listParts(key, id);
        assert.deepEqual(listed.map((p) => p.etag), acks.map((p) => p.etag));
        await again.completeMultipartUpload(key, id, listed);
        const info = await again.head(key);
        assert.deepEqual(
          [info.size, info.etag, info.storageClass, info.metadata],
          [committed.size, committed.etag, 'DEEP_ARCHIVE', { m: before }],
          before,
        );
        assert.ok(Buffer.from(await again.getBytes(key)).equals(whole));
        assert.deepEqual(await again.listMultipartUploads(key), []);
        await assert.rejects(again.listParts(key, id), { code: 'NO_SUCH_UPLOAD' });
        assert.deepEqual((await readdir(join(dir, 'v'))).filter((n) => n.startsWith('.zbk-tmp-')), []);
      }
    }));

  it('a complete repeated after its object committed does not copy again: it only removes the upload', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(15)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      const id = await s.createMultipartUpload('obj', { metadata: { m: '1' } });
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('obj', id, i + 1, b, sha256b64(b)));
      const saved = join(dir, 'saved-upload');
      await cp(join(dir, '.zbk-uploads', id), saved, { recursive: true });
      await s.completeMultipartUpload('obj', id, acks);
      // Killed before the upload was removed; its part files (names unchanged) now hold other
      // bytes of the same size, so a second copy would show.
      for (const f of (await readdir(saved)).filter((f) => /^\d{5}\./.test(f))) {
        const b = await readFile(join(saved, f));
        await writeFile(join(saved, f), Buffer.alloc(b.length, 0x55));
      }
      await rename(saved, join(dir, '.zbk-uploads', id));
      await s.completeMultipartUpload('obj', id, acks);
      assert.ok(Buffer.from(await s.getBytes('obj')).equals(Buffer.concat(parts)));
      assert.deepEqual((await s.head('obj')).metadata, { m: '1' });
      assert.deepEqual(await s.listMultipartUploads(''), []);
      // An abort of another upload of the key leaves the object alone.
      const id2 = await s.createMultipartUpload('obj');
      await s.abortMultipartUpload('obj', id2);
      assert.ok(Buffer.from(await s.getBytes('obj')).equals(Buffer.concat(parts)));
    }));

  it('equal parts given a partSize are placed in one file and completed by renaming it: the object is that file, each byte written once', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(20), randomBytes(7)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      const id = await s.createMultipartUpload('v/obj', { partSize: 20, metadata: { m: 'placed' } });
      const acks = [];
      for (const n of [3, 1, 2]) acks[n - 1] = await s.uploadPart('v/obj', id, n, parts[n - 1]!, sha256b64(parts[n - 1]!));
      const up = join(dir, '.zbk-uploads', id);
      assert.deepEqual((await readdir(up)).filter((f) => /^\d{5}\./.test(f)).every((f) => f.endsWith('.placed')), true, 'no part files');
      const placed = await stat(join(up, 'placed.data'));
      assert.equal(placed.size, 47);
      await s.completeMultipartUpload('v/obj', id, acks);
      const obj = await stat(join(dir, 'v', 'obj'));
      assert.equal(obj.ino, placed.ino, 'the object is the placed file, renamed (not a copy)');
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(Buffer.concat(parts)));
      const info = await s.head('v/obj');
      assert.deepEqual([info.etag, info.metadata], [multipartEtag(acks.map((a) => a!.etag)), { m: 'placed' }]);
      assert.deepEqual(await readdir(join(dir, '.zbk-uploads')), []);
    }));

  it('placed bytes that no longer match their entry (another writer, a cut by an earlier complete) are never committed under the ETag', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(20), randomBytes(20), randomBytes(5)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      const id = await s.createMultipartUpload('obj', { partSize: 20 });
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('obj', id, i + 1, b, sha256b64(b)));
      const data = join(dir, '.zbk-uploads', id, 'placed.data');
      // A second writer's bytes over part 2: the complete refuses, nothing is committed.
      const bytes = await readFile(data);
      await writeFile(data, Buffer.concat([bytes.subarray(0, 20), randomBytes(20), bytes.subarray(40)]));
      await assert.rejects(s.completeMultipartUpload('obj', id, acks), { code: 'NO_SUCH_UPLOAD' });
      await assert.rejects(s.head('obj'), NotFoundError);
      acks[1] = await s.uploadPart('obj', id, 2, parts[1]!, sha256b64(parts[1]!));
      // A complete of parts 1–2 killed before its rename cuts the file: the entries of parts 3 and 4 go with their bytes.
      const crashing = crashingBeforeCommit(dir, 'simulated crash before the rename');
      await assert.rejects(crashing.completeMultipartUpload('obj', id, acks.slice(0, 2)), /simulated crash/);
      assert.deepEqual((await s.listParts('obj', id)).map((p) => p.partNumber), [1, 2]);
      await assert.rejects(s.completeMultipartUpload('obj', id, acks), { code: 'INVALID_PART' });
      acks[3] = await s.uploadPart('obj', id, 4, parts[3]!, sha256b64(parts[3]!));
      acks[2] = await s.uploadPart('obj', id, 3, parts[2]!, sha256b64(parts[2]!));
      await s.completeMultipartUpload('obj', id, acks);
      assert.ok(Buffer.from(await s.getBytes('obj')).equals(Buffer.concat(parts)));
    }));

  it('a placed complete killed before its rename leaves the old object and its sidecar; killed after it, the next complete checks the bytes and writes the sidecar', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(9)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      await s.put('obj', Buffer.from('previous'), { metadata: { m: 'old' } });
      const id = await s.createMultipartUpload('obj', { partSize: 20, metadata: { m: 'new' } });
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('obj', id, i + 1, b, sha256b64(b)));
      const crashing = crashingBeforeCommit(dir, 'simulated crash before the rename');
      await assert.rejects(crashing.completeMultipartUpload('obj', id, acks), /simulated crash/);
      assert.equal(Buffer.from(await s.getBytes('obj')).toString(), 'previous');
      assert.deepEqual([(await s.head('obj')).etag, (await s.head('obj')).metadata], [md5(Buffer.from('previous')), { m: 'old' }]);
      assert.deepEqual((await s.listParts('obj', id)).map((p) => p.size), [20, 9]);

      // Killed right after rename(placed.data, key): the new bytes, the old sidecar, the upload without placed.data.
      const saved = join(dir, 'saved-upload');
      await cp(join(dir, '.zbk-uploads', id), saved, { recursive: true });
      const oldSidecar = await readFile(join(dir, 'obj.zbk-meta.json'));
      await s.completeMultipartUpload('obj', id, acks);
      await writeFile(join(dir, 'obj.zbk-meta.json'), oldSidecar);
      await unlink(join(saved, 'placed.data'));
      const restoreUpload = async (): Promise<void> => {
        await rm(join(dir, '.zbk-uploads', id), { recursive: true, force: true });
        await cp(saved, join(dir, '.zbk-uploads', id), { recursive: true });
      };
      await restoreUpload();
      assert.equal((await s.head('obj')).etag, undefined, 'torn: no stale ETag');
      await new LocalStore(dir, { minPartSize: 10 }).completeMultipartUpload('obj', id, acks);
      const info = await s.head('obj');
      assert.deepEqual([info.size, info.etag, info.metadata], [29, multipartEtag(acks.map((a) => a.etag)), { m: 'new' }]);
      assert.deepEqual(await s.listMultipartUploads(''), []);

      // The same torn state, but the object no longer holds the parts: the bytes are gone, nothing is described as them.
      await writeFile(join(dir, 'obj.zbk-meta.json'), oldSidecar);
      const bytes = await readFile(join(dir, 'obj'));
      bytes[3] = bytes[3]! ^ 1;
      await writeFile(join(dir, 'obj'), bytes);
      await restoreUpload();
      await assert.rejects(s.completeMultipartUpload('obj', id, acks), { code: 'NO_SUCH_UPLOAD' });
      assert.equal((await s.head('obj')).etag, undefined);
    }));

  it('the other windows of a complete: a kill while the upload is removed leaves no upload; a sidecar ahead of its data is repaired by the next complete', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(15)];
      const whole = Buffer.concat(parts);
      const s = new LocalStore(dir, { minPartSize: 10 });
      const upload = async (key: string): Promise<[string, Awaited<ReturnType<LocalStore['uploadPart']>>[]]> => {
        const id = await s.createMultipartUpload(key, { metadata: { k: key } });
        const acks = [];
        for (const [i, b] of parts.entries()) acks.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
        return [id, acks];
      };
      const saved = join(dir, 'saved-upload');

      // Killed while the upload directory was removed: its record goes first, so what is left
      // is an upload that is gone (the pipeline adopts the object), never one missing parts.
      const [id1, acks1] = await upload('a');
      await cp(join(dir, '.zbk-uploads', id1), saved, { recursive: true });
      await s.completeMultipartUpload('a', id1, acks1);
      await unlink(join(saved, 'upload.json'));
      await rename(saved, join(dir, '.zbk-uploads', id1));
      await assert.rejects(s.listParts('a', id1), { code: 'NO_SUCH_UPLOAD' });
      await assert.rejects(s.completeMultipartUpload('a', id1, acks1), { code: 'NO_SUCH_UPLOAD' });
      assert.deepEqual((await s.head('a')).metadata, { k: 'a' });
      await s.abortMultipartUpload('a', id1);
      assert.ok(Buffer.from(await s.getBytes('a')).equals(whole));

      // The sidecar renamed but not the data (only a power loss that reorders the two renames
      // could leave this): the old data is still the object, without metadata; the next complete commits.
      await s.put('b', Buffer.from('previous'));
      const oldData = join(dir, 'b.old');
      await cp(join(dir, 'b'), oldData);
      const [id2, acks2] = await upload('b');
      await cp(join(dir, '.zbk-uploads', id2), saved, { recursive: true });
      await s.completeMultipartUpload('b', id2, acks2);
      await rename(oldData, join(dir, 'b'));
      await rename(saved, join(dir, '.zbk-uploads', id2));
      const stale = await s.head('b');
      assert.deepEqual([stale.size, stale.etag, stale.metadata], [8, undefined, {}]);
      await s.completeMultipartUpload('b', id2, await s.listParts('b', id2));
      assert.deepEqual((await s.head('b')).metadata, { k: 'b' });
      assert.ok(Buffer.from(await s.getBytes('b')).equals(whole));
      // The same with no data file at all (the key was new): not found until completed again.
      const [id3, acks3] = await upload('c');
      await cp(join(dir, '.zbk-uploads', id3), saved, { recursive: true });
      await s.completeMultipartUpload('c', id3, acks3);
      await unlink(join(dir, 'c'));
      await rename(saved, join(dir, '.zbk-uploads', id3));
      await assert.rejects(s.head('c'), NotFoundError);
      assert.deepEqual((await collect(s.list('c'))).map((e) => e.key), []);
      await s.completeMultipartUpload('c', id3, acks3);
      assert.ok(Buffer.from(await s.getBytes('c')).equals(whole));
      assert.deepEqual(await s.listMultipartUploads(''), []);
    }));
});

/** The sidecar fingerprint as docs/FORMAT.md states it. */
function fingerprint(body: Buffer): string {
  const n = Math.min(4096, body.length);
  return createHash('sha256').update(`${body.length}\n`).update(body.subarray(0, n)).update(body.subarray(body.length - n)).digest('hex');
}

function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}

async function readAll(r: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
