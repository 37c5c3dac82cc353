import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalStore } from '../../src/store/local-store.js';
import { NotFoundError, StoreError } from '../../src/store/errors.js';
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

  it('keeps objects as plain files with a sidecar and leaves no temp files', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await s.put('data/x/1.zbkv', Buffer.from('hello'), { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'm' } });
      const names = (await readdir(join(dir, 'data', 'x'))).sort();
      assert.deepEqual(names, ['1.zbkv', '1.zbkv.zbk-meta.json']);
      const info = await s.head('data/x/1.zbkv');
      assert.equal(info.storageClass, 'DEEP_ARCHIVE');
      assert.deepEqual(info.restore, { state: 'not-archived' });
      assert.equal(Buffer.from(await s.getBytes('data/x/1.zbkv')).toString(), 'hello');
      assert.equal(await s.requestRestore('data/x/1.zbkv', 1, 'Bulk'), 'not-archived');
    }));

  it('rejects reserved names and file/directory conflicts', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await assert.rejects(s.put('a.zbk-meta.json', Buffer.from('x')), { code: 'INVALID_KEY' });
      await assert.rejects(s.put('.zbk-uploads/x', Buffer.from('x')), { code: 'INVALID_KEY' });
      await s.put('a', Buffer.from('x'));
      await assert.rejects(s.put('a/b', Buffer.from('x')), { code: 'KEY_CONFLICT' });
      await s.put('c/d', Buffer.from('x'));
      await assert.rejects(s.put('c', Buffer.from('x')), (e) => e instanceof StoreError && e.code === 'KEY_CONFLICT');
    }));

  it('detects a torn write (data replaced, sidecar not) instead of reporting stale metadata', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir);
      await s.put('k', Buffer.from('old'), { metadata: { v: '1' } });
      // Simulate a crash between the data rename and the sidecar rename.
      const tmp = join(dir, 'k.new');
      await writeFile(tmp, 'newer data');
      const { rename } = await import('node:fs/promises');
      await rename(tmp, join(dir, 'k'));
      await assert.rejects(s.head('k'), { code: 'INCOMPLETE_WRITE' });
      await s.put('k', Buffer.from('newer data'), { metadata: { v: '2' } });
      assert.deepEqual((await s.head('k')).metadata, { v: '2' });
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
      assert.deepEqual(await readdir(dir), []);
    }));

  it('completes a multipart upload without copying: ranged gets across part boundaries, sizes, overwrite and delete clean up', () =>
    withDir(async (dir) => {
      const s = new LocalStore(dir, { minPartSize: 10 });
      const parts = [randomBytes(37_000), randomBytes(41_000), randomBytes(13_000)];
      const whole = Buffer.concat(parts);
      const id = await s.createMultipartUpload('v/obj', { storageClass: 'DEEP_ARCHIVE', metadata: { m: '1' } });
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('v/obj', id, i + 1, b, sha256b64(b)));
      await s.completeMultipartUpload('v/obj', id, acks);
      // The object is a descriptor plus a part directory, not a copy.
      const names = (await readdir(join(dir, 'v'))).sort();
      assert.equal(names.length, 3);
      assert.ok(names.some((n) => n.startsWith('.zbk-mp-')));
      assert.ok((await readFile(join(dir, 'v', 'obj'))).length < whole.length);
      const r = await new LocalStore(dir).head('v/obj');
      assert.equal(r.size, whole.length);
      assert.deepEqual(r.metadata, { m: '1' });
      assert.deepEqual(
        (await collect(new LocalStore(dir).list('v/'))).map((e) => [e.key, e.size]),
        [['v/obj', whole.length]],
      );
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(whole));
      assert.ok((await readAll(await s.get('v/obj'))).equals(whole));
      const edges = [0, 1, 36_998, 36_999, 37_000, 37_001, 77_999, 78_000, 78_001, whole.length - 1];
      for (const start of edges) {
        for (const end of [...edges, whole.length + 10]) {
          if (end < start) continue;
          const got = await readAll(await s.get('v/obj', { start, end }));
          assert.ok(got.equals(whole.subarray(start, Math.min(end, whole.length - 1) + 1)), `range ${start}-${end}`);
        }
      }
      // A reader opened before an overwrite keeps the old bytes.
      const early = await s.get('v/obj', { start: 30_000, end: 80_000 });
      await s.put('v/obj', Buffer.from('plain now'));
      assert.ok((await readAll(early)).equals(whole.subarray(30_000, 80_001)));
      assert.deepEqual((await readdir(join(dir, 'v'))).sort(), ['obj', 'obj.zbk-meta.json']);
      assert.equal(Buffer.from(await s.getBytes('v/obj')).toString(), 'plain now');
      // Complete over a composite object, then delete.
      const id2 = await s.createMultipartUpload('v/obj');
      const a2 = await s.uploadPart('v/obj', id2, 1, parts[0]!, sha256b64(parts[0]!));
      const b2 = await s.uploadPart('v/obj', id2, 2, parts[2]!, sha256b64(parts[2]!));
      await s.completeMultipartUpload('v/obj', id2, [a2, b2]);
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(Buffer.concat([parts[0]!, parts[2]!])));
      await s.deleteMany(['v/obj', 'v/obj']);
      assert.deepEqual(await readdir(dir), ['.zbk-uploads']);
      assert.deepEqual(await readdir(join(dir, '.zbk-uploads')), []);
      await assert.rejects(s.get('v/obj'), NotFoundError);
    }));

  it('a complete interrupted before its commit leaves the upload resumable and no object', () =>
    withDir(async (dir) => {
      const parts = [randomBytes(20), randomBytes(15)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      await s.put('obj', Buffer.from('previous'));
      const id = await s.createMultipartUpload('obj');
      const acks = [];
      for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('obj', id, i + 1, b, sha256b64(b)));
      const crashing = new LocalStore(dir, {
        minPartSize: 10,
        testHookBeforeCommit: () => {
          throw new Error('simulated crash after linking the parts');
        },
      });
      await assert.rejects(crashing.completeMultipartUpload('obj', id, acks), /simulated crash/);
      // Old object intact, upload still listed with all its parts.
      assert.equal(Buffer.from(await s.getBytes('obj')).toString(), 'previous');
      assert.deepEqual((await s.listMultipartUploads('')).map((u) => u.uploadId), [id]);
      assert.deepEqual((await s.listParts('obj', id)).map((p) => p.size), [20, 15]);
      // A crash that also skipped the cleanup: an orphan part directory is ignored.
      const { mkdir, link } = await import('node:fs/promises');
      const orphan = join(dir, `.zbk-mp-${'0'.repeat(32)}`);
      await mkdir(orphan);
      const file = (await readdir(join(dir, '.zbk-uploads', id))).find((f) => f.startsWith('00001.'))!;
      await link(join(dir, '.zbk-uploads', id, file), join(orphan, file));
      assert.deepEqual((await collect(s.list(''))).map((e) => e.key), ['obj']);
      // Resume: completing again (fresh instance) yields the whole object.
      await new LocalStore(dir, { minPartSize: 10 }).completeMultipartUpload('obj', id, acks);
      assert.ok(Buffer.from(await s.getBytes('obj')).equals(Buffer.concat(parts)));
      assert.equal((await s.head('obj')).size, 35);
      assert.deepEqual(await s.listMultipartUploads(''), []);
    }));

  it('a crash inside complete leaks no part directory: a repeated complete or an abort cleans up', () =>
    withDir(async (dir) => {
      const { cp, link, mkdir, rename } = await import('node:fs/promises');
      const parts = [randomBytes(20), randomBytes(15)];
      const s = new LocalStore(dir, { minPartSize: 10 });
      const upload = async (): Promise<[string, Awaited<ReturnType<LocalStore['uploadPart']>>[]]> => {
        const id = await s.createMultipartUpload('v/obj');
        const acks = [];
        for (const [i, b] of parts.entries()) acks.push(await s.uploadPart('v/obj', id, i + 1, b, sha256b64(b)));
        return [id, acks];
      };
      /** What a kill between linking the parts and committing the descriptor leaves. */
      const linkedOnly = async (id: string): Promise<void> => {
        await mkdir(join(dir, 'v'), { recursive: true });
        const data = join(dir, 'v', `.zbk-mp-${id}`);
        await mkdir(data);
        for (const f of (await readdir(join(dir, '.zbk-uploads', id))).filter((f) => /^\d{5}\./.test(f))) await link(join(dir, '.zbk-uploads', id, f), join(data, f));
      };
      const entries = async (): Promise<string[]> => (await readdir(join(dir, 'v'))).sort();

      // Killed before the commit, then aborted: nothing of the upload remains.
      const [id1] = await upload();
      await linkedOnly(id1);
      await s.abortMultipartUpload('v/obj', id1);
      assert.deepEqual(await entries(), []);
      assert.deepEqual(await s.listMultipartUploads(''), []);

      // Killed before the commit, then completed again: one part directory, the whole object.
      const [id2, acks2] = await upload();
      await linkedOnly(id2);
      await s.completeMultipartUpload('v/obj', id2, acks2);
      assert.deepEqual(await entries(), [`.zbk-mp-${id2}`, 'obj', 'obj.zbk-meta.json']);
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(Buffer.concat(parts)));

      // Killed after the commit but before the upload directory was removed: a repeated
      // complete finishes the cleanup and keeps the object; an abort would keep it too.
      await s.deleteMany(['v/obj']);
      const [id3, acks3] = await upload();
      const saved = join(dir, 'saved-upload');
      await cp(join(dir, '.zbk-uploads', id3), saved, { recursive: true });
      await s.completeMultipartUpload('v/obj', id3, acks3);
      await rename(saved, join(dir, '.zbk-uploads', id3));
      await s.abortMultipartUpload('v/obj', id3);
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(Buffer.concat(parts)));
      await s.deleteMany(['v/obj']);
      const [id4, acks4] = await upload();
      await cp(join(dir, '.zbk-uploads', id4), saved, { recursive: true });
      await s.completeMultipartUpload('v/obj', id4, acks4);
      await rename(saved, join(dir, '.zbk-uploads', id4));
      await s.completeMultipartUpload('v/obj', id4, acks4);
      assert.deepEqual(await entries(), [`.zbk-mp-${id4}`, 'obj', 'obj.zbk-meta.json']);
      assert.deepEqual(await s.listMultipartUploads(''), []);
      assert.ok(Buffer.from(await s.getBytes('v/obj')).equals(Buffer.concat(parts)));
    }));

  it('a complete killed between the descriptor rename and the sidecar rename is finished by the next complete', () =>
    withDir(async (dir) => {
      const { link, mkdir, unlink } = await import('node:fs/promises');
      const parts = [randomBytes(20), randomBytes(15)];
      const whole = Buffer.concat(parts);
      // The key was new, held a plain object, or held a composite object of another upload.
      for (const before of ['none', 'plain', 'composite'] as const) {
        const s = new LocalStore(dir, { minPartSize: 10 });
        const key = `v/${before}`;
        const path = join(dir, 'v', before);
        if (before === 'plain') await s.put(key, Buffer.from('previous'));
        if (before === 'composite') {
          const id0 = await s.createMultipartUpload(key);
          await s.completeMultipartUpload(key, id0, [await s.uploadPart(key, id0, 1, parts[1]!)]);
        }
        const oldSidecar = before === 'none' ? null : await readFile(`${path}.zbk-meta.json`);
        const id = await s.createMultipartUpload(key, { storageClass: 'DEEP_ARCHIVE', metadata: { m: before } });
        const acks = [];
        for (const [i, b] of parts.entries()) acks.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
        const record = await readFile(join(dir, '.zbk-uploads', id, 'upload.json'));
        await s.completeMultipartUpload(key, id, acks);
        const committed = await s.head(key);
        // What a kill right after rename(tmp, key) leaves: the descriptor in place, the sidecar
        // still the previous object's (or none), the upload directory with its part files (hard
        // links of the part directory's) and its record.
        if (oldSidecar) await writeFile(`${path}.zbk-meta.json`, oldSidecar);
        else await unlink(`${path}.zbk-meta.json`);
        const upload = join(dir, '.zbk-uploads', id);
        await mkdir(upload);
        const data = join(dir, 'v', `.zbk-mp-${id}`);
        for (const f of await readdir(data)) await link(join(data, f), join(upload, f));
        await writeFile(join(upload, 'upload.json'), record);
        await assert.rejects(s.head(key), { code: 'INCOMPLETE_WRITE' });

        // The next push: the upload is still there with every part, so it completes again.
        const again = new LocalStore(dir, { minPartSize: 10 });
        const listed = await again.listParts(key, id);
        assert.deepEqual(
          listed.map((p) => p.etag),
          acks.map((p) => p.etag),
        );
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
        // No temp file left beside the key by the second commit.
        assert.deepEqual(
          (await readdir(join(dir, 'v'))).filter((n) => n.startsWith('.zbk-tmp-')),
          [],
        );
      }
    }));

  it('the other windows of a complete: a kill while the upload is removed leaves no upload; a sidecar ahead of its data is repaired by the next complete', () =>
    withDir(async (dir) => {
      const { link, mkdir, rename, unlink } = await import('node:fs/promises');
      const parts = [randomBytes(20), randomBytes(15)];
      const whole = Buffer.concat(parts);
      const s = new LocalStore(dir, { minPartSize: 10 });
      const upload = async (key: string): Promise<[string, Awaited<ReturnType<LocalStore['uploadPart']>>[]]> => {
        const id = await s.createMultipartUpload(key, { metadata: { k: key } });
        const acks = [];
        for (const [i, b] of parts.entries()) acks.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
        return [id, acks];
      };

      // Killed while the upload directory was removed: its record goes first, so what is left
      // is an upload that is gone (the pipeline adopts the object), never one missing parts.
      const [id1, acks1] = await upload('a');
      await s.completeMultipartUpload('a', id1, acks1);
      const leftover = join(dir, '.zbk-uploads', id1);
      await mkdir(leftover);
      for (const f of await readdir(join(dir, `.zbk-mp-${id1}`))) await link(join(dir, `.zbk-mp-${id1}`, f), join(leftover, f));
      await assert.rejects(s.listParts('a', id1), { code: 'NO_SUCH_UPLOAD' });
      await assert.rejects(s.completeMultipartUpload('a', id1, acks1), { code: 'NO_SUCH_UPLOAD' });
      assert.deepEqual((await s.head('a')).metadata, { k: 'a' });
      await s.abortMultipartUpload('a', id1);
      assert.ok(Buffer.from(await s.getBytes('a')).equals(whole));

      // The sidecar renamed but not the descriptor (only a power loss that reorders the two
      // renames could leave this): the old data is still the object; the next complete commits.
      await s.put('b', Buffer.from('previous'));
      const oldData = join(dir, 'b.old');
      await link(join(dir, 'b'), oldData);
      const [id2, acks2] = await upload('b');
      const saved = join(dir, 'saved-upload');
      const { cp } = await import('node:fs/promises');
      await cp(join(dir, '.zbk-uploads', id2), saved, { recursive: true });
      await s.completeMultipartUpload('b', id2, acks2);
      await rename(oldData, join(dir, 'b'));
      await rename(saved, join(dir, '.zbk-uploads', id2));
      await assert.rejects(s.head('b'), { code: 'INCOMPLETE_WRITE' });
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
