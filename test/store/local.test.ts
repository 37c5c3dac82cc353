import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalStore } from '../../src/store/local-store.js';
import { StoreError } from '../../src/store/errors.js';
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
});
