/**
 * A file:// store is a plain copy of a bucket: `cp -r` of it (nothing
 * preserved: new inodes, new times) is the same repository, and so is the
 * directory `aws s3 sync s3://bucket DIR` gives (no sidecars, no marker):
 * same keys, same sizes, same bytes; without sidecars head says STANDARD, no
 * metadata, no ETag. Such a copy opens read-only too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalStore } from '../../src/store/local-store.js';
import type { ObjectInfo } from '../../src/store/object-store.js';
import { readAll, sha256b64 } from './suite.js';
import { treeFiles } from './local-v1.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A store with puts of several classes, an empty object, nested keys and two multipart objects. */
async function populated(dir: string): Promise<Map<string, Buffer>> {
  const s = new LocalStore(dir, { minPartSize: 1000 });
  const objects = new Map<string, Buffer>();
  const put = async (key: string, body: Buffer, storageClass?: string, metadata?: Record<string, string>): Promise<void> => {
    await s.put(key, body, { ...(storageClass ? { storageClass } : {}), ...(metadata ? { metadata } : {}) });
    objects.set(key, body);
  };
  await put('zbk.key', Buffer.from('{"key":1}'), 'STANDARD', { kind: 'key' });
  await put('manifest/20250101T000000Z-1.zbkm', randomBytes(5000), 'STANDARD_IA');
  await put('streams/aa.zbks', randomBytes(9000), 'GLACIER_IR', { 'zbk-meta': 'r' });
  await put('empty', Buffer.alloc(0));
  for (const [key, sizes] of [['data/aa/000000.zbkv', [3000, 3000, 17]], ['data/aa/000001.zbkv', [2500]]] as const) {
    const id = await s.createMultipartUpload(key, { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': key } });
    const bodies = sizes.map((n) => randomBytes(n));
    const acks = [];
    for (const [i, b] of bodies.entries()) acks.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
    await s.completeMultipartUpload(key, id, acks);
    objects.set(key, Buffer.concat(bodies));
  }
  return objects;
}

function withDirs(fn: (src: string, copy: string) => Promise<void>): Promise<void> {
  const src = mkdtempSync(join(tmpdir(), 'zbk-local-copy-src-'));
  const copy = join(mkdtempSync(join(tmpdir(), 'zbk-local-copy-dst-')), 'store');
  return fn(src, copy).finally(() => {
    rmSync(src, { recursive: true, force: true });
    rmSync(join(copy, '..'), { recursive: true, force: true });
  });
}

async function heads(s: LocalStore, keys: Iterable<string>): Promise<Map<string, Omit<ObjectInfo, 'lastModified'>>> {
  const out = new Map<string, Omit<ObjectInfo, 'lastModified'>>();
  for (const k of keys) {
    const { lastModified: _lm, ...rest } = await s.head(k);
    out.set(k, rest);
  }
  return out;
}

async function assertSameObjects(copy: LocalStore, objects: Map<string, Buffer>): Promise<void> {
  const listed = await collect(copy.list(''));
  assert.deepEqual(
    listed.map((e) => [e.key, e.size]),
    [...objects].map(([k, b]) => [k, b.length]).sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
  );
  for (const [k, b] of objects) {
    assert.ok(Buffer.from(await copy.getBytes(k)).equals(b), `${k} reads back byte-identical`);
    if (b.length > 10) assert.ok((await readAll(await copy.get(k, { start: 3, end: b.length - 4 }))).equals(b.subarray(3, b.length - 3)), `${k} ranged`);
  }
}

test('cp -r of a store (nothing preserved) is the same repository: keys, sizes, bytes, classes, ETags, metadata', () =>
  withDirs(async (src, copy) => {
    const objects = await populated(src);
    const before = await heads(new LocalStore(src), objects.keys());
    cpSync(src, copy, { recursive: true });
    assert.notEqual(statSync(join(copy, 'data/aa/000000.zbkv')).ino, statSync(join(src, 'data/aa/000000.zbkv')).ino);
    const s = new LocalStore(copy);
    await assertSameObjects(s, objects);
    assert.deepEqual(await heads(s, objects.keys()), before);
    assert.deepEqual(
      (await collect(s.list(''))).map((e) => e.storageClass),
      (await collect(new LocalStore(src).list(''))).map((e) => e.storageClass),
    );
    // And it keeps working as a store.
    await s.put('new', Buffer.from('x'));
    assert.equal((await s.head('new')).size, 1);
  }));

test('a copy without sidecars and marker (what aws s3 sync s3://bucket DIR gives) opens: same keys, sizes and bytes; head STANDARD, {}, no ETag', () =>
  withDirs(async (src, copy) => {
    const objects = await populated(src);
    cpSync(src, copy, { recursive: true });
    for (const f of treeFiles(copy)) if (f.endsWith('.zbk-meta.json')) unlinkSync(join(copy, f));
    rmSync(join(copy, '.zbk-layout'));
    rmSync(join(copy, '.zbk-uploads'), { recursive: true });
    assert.deepEqual(treeFiles(copy).filter((f) => !f.endsWith('/')), [...objects.keys()].sort(), 'one file per object at its key, nothing else');

    // Read-only first: it works without writing the marker.
    const ro = new LocalStore(copy, {
      testHookMigrate: (step) => {
        if (step === 'lock') throw Object.assign(new Error('read-only file system'), { code: 'EROFS' });
      },
    });
    await assertSameObjects(ro, objects);
    assert.ok(!existsSync(join(copy, '.zbk-layout')));

    const s = new LocalStore(copy);
    await assertSameObjects(s, objects);
    for (const [k, info] of await heads(s, objects.keys())) {
      assert.deepEqual(info, { key: k, size: objects.get(k)!.length, storageClass: 'STANDARD', metadata: {}, restore: { state: 'not-archived' } }, k);
      assert.equal(info.etag, undefined);
    }
    assert.ok((await collect(s.list(''))).every((e) => e.storageClass === 'STANDARD'));
    assert.ok(existsSync(join(copy, '.zbk-layout')), 'a writable copy gets the marker');
    assert.deepEqual(readdirSync(copy).filter((n) => n.startsWith('.zbk-') && n !== '.zbk-layout'), []);
  }));

test('a new store directory gets the marker on first write; an empty one on open', async () => {
  const base = mkdtempSync(join(tmpdir(), 'zbk-local-new-'));
  try {
    const fresh = join(base, 'a', 'b');
    const s = new LocalStore(fresh);
    assert.deepEqual(await collect(s.list('')), []);
    assert.ok(!existsSync(fresh), 'reading creates nothing');
    await s.put('k', Buffer.from('v'));
    assert.deepEqual(readdirSync(fresh).sort(), ['.zbk-layout', 'k', 'k.zbk-meta.json']);
    const empty = join(base, 'empty');
    cpSync(join(base, 'a'), empty, { recursive: true }); // any existing directory
    rmSync(join(empty, 'b'), { recursive: true });
    await new LocalStore(empty).listMultipartUploads('');
    assert.deepEqual(readdirSync(empty), ['.zbk-layout']);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a marker of another layout is refused (a newer zbk wrote the store)', () =>
  withDirs(async (src) => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(src, '.zbk-layout'), '3\n');
    await assert.rejects(new LocalStore(src).head('k'), { code: 'LAYOUT_UNKNOWN' });
    await assert.rejects(collect(new LocalStore(src).list('')), { code: 'LAYOUT_UNKNOWN' });
  }));
