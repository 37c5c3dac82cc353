/**
 * A file:// store whose directory someone else can write to (a NAS share, a
 * USB disk) but who cannot write to the machine: nothing placed there makes
 * zbk read or write outside the store, or hang. Symlinks (at a key, a
 * sidecar, a directory on the way to a key, a part file, an upload
 * directory, `.zbk-uploads`, a layout-1 part or part directory, the
 * marker) are never followed: SYMLINK for the operation, skipped by
 * listings, refused (left as is, reported) by the layout-1 conversion;
 * FIFOs never block an open: NOT_A_REGULAR_FILE. Lock files dated in the
 * future, or not regular files (never read through a link), are stale; a
 * migrate lock naming another host is taken once nobody has touched it for
 * the stale limit, and the converting process keeps its own touched.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NotFoundError, StoreError } from '../../src/store/errors.js';
import { LocalStore, type LocalStoreOptions } from '../../src/store/local-store.js';
import type { UploadedPart } from '../../src/store/object-store.js';
import { collect, readAll, sha256b64 } from './suite.js';
import { V1_MAGIC, assertNoV1Artifacts, buildV1Store, v1Part, writeV1Composite } from './local-v1.js';

const SECRET = 'TOP-SECRET-PASSPHRASE'; // 21 bytes

/** A store directory and, beside it, a directory "outside" holding a secret file. */
async function withDirs(fn: (dir: string, outside: string) => Promise<void>): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'zbk-local-hostile-'));
  const dir = join(base, 'store');
  const outside = join(base, 'outside');
  mkdirSync(dir);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), SECRET);
  try {
    await fn(dir, outside);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  assert.equal(r.status, 0, `mkfifo ${path}: ${r.stderr?.toString()}`);
}

/** `p`, or a failure if it has not settled in 3 s; then a reader blocked on `fifo` is released (so the test ends). */
async function noHang<T>(p: Promise<T>, fifo: string, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader blocked on it
      }
      reject(new Error(`${what} blocked on the FIFO ${fifo}`));
    }, 3000);
  });
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
  }
}

function isCode(code: string, name?: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof StoreError, `a StoreError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (name !== undefined) assert.ok(e.message.includes(`${name} is `), `the message names ${name}: ${e.message}`);
    assert.ok(!e.message.includes(SECRET), 'the secret is not in the message');
    return true;
  };
}

async function keys(s: LocalStore, prefix = ''): Promise<string[]> {
  return (await collect(s.list(prefix))).map((e) => e.key);
}

/** Upload `bodies` as parts of a new upload of `key`; its id and the parts. */
async function upload(s: LocalStore, key: string, bodies: Buffer[]): Promise<[string, UploadedPart[]]> {
  const id = await s.createMultipartUpload(key);
  const parts: UploadedPart[] = [];
  for (const [i, b] of bodies.entries()) parts.push(await s.uploadPart(key, id, i + 1, b, sha256b64(b)));
  return [id, parts];
}

describe('LocalStore on a directory others can write to: symlinks are never followed', () => {
  it('a directory on the way to a key that is a symlink: every operation is SYMLINK and nothing outside is read, written or deleted', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir, { minPartSize: 1 });
      await s.put('zbk.key', Buffer.from('k'));
      await s.put('data/aa/000000.zbkv', Buffer.from('v'));
      symlinkSync(outside, join(dir, 'manifest'));
      symlinkSync(outside, join(dir, 'data', 'bb'));
      const untouched = (): void => assert.deepEqual(readdirSync(outside), ['secret'], 'nothing written or deleted outside');

      for (const [key, name] of [['manifest/secret', 'manifest'], ['data/bb/secret', 'data/bb']] as const) {
        await assert.rejects(s.get(key), isCode('SYMLINK', name));
        await assert.rejects(s.getBytes(key), isCode('SYMLINK', name));
        await assert.rejects(s.head(key), isCode('SYMLINK', name));
        await assert.rejects(s.requestRestore(key, 1, 'Bulk'), isCode('SYMLINK', name));
        await assert.rejects(s.put(key.replace('secret', 'new'), Buffer.from('x')), isCode('SYMLINK', name));
        await assert.rejects(s.putConditional(key.replace('secret', 'lease'), Buffer.from('x'), { ifNoneMatch: '*' }), isCode('SYMLINK', name));
        await assert.rejects(s.deleteMany([key]), isCode('SYMLINK', name));
        await assert.rejects(collect(s.list(`${name}/`)), isCode('SYMLINK', name));
        const [id, parts] = await upload(s, key.replace('secret', 'big'), [Buffer.from('part one'), Buffer.from('two')]);
        await assert.rejects(s.completeMultipartUpload(key.replace('secret', 'big'), id, parts), isCode('SYMLINK', name));
        untouched();
      }
      // A listing of the whole store does not descend into the links.
      assert.deepEqual(await keys(s), ['data/aa/000000.zbkv', 'zbk.key']);
      assert.deepEqual(await keys(s, 'data/'), ['data/aa/000000.zbkv']);
      // A new directory is not made through a link either (mkdir -p would).
      await assert.rejects(s.put('manifest/deep/er/x', Buffer.from('x')), isCode('SYMLINK', 'manifest'));
      untouched();
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    }));

  it('an object or sidecar that is a symlink: reads, writes and deletes are SYMLINK; list skips the link; the target is unchanged', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir);
      await s.put('a', Buffer.from('aaa'), { storageClass: 'DEEP_ARCHIVE' });
      symlinkSync(join(outside, 'secret'), join(dir, 'zbk.key'));
      await assert.rejects(s.get('zbk.key'), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.get('zbk.key', { start: 0, end: 3 }), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.getBytes('zbk.key'), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.head('zbk.key'), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.requestRestore('zbk.key', 1, 'Bulk'), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.put('zbk.key', Buffer.from('overwrite')), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.putConditional('zbk.key', Buffer.from('x'), { ifNoneMatch: '*' }), isCode('SYMLINK', 'zbk.key'));
      await assert.rejects(s.deleteMany(['zbk.key']), isCode('SYMLINK', 'zbk.key'));
      assert.ok(lstatSync(join(dir, 'zbk.key')).isSymbolicLink(), 'the link is left for a human');
      assert.deepEqual(await keys(s), ['a']);

      // The sidecar a link to a file outside (here one that would parse as a sidecar).
      const side = join(dir, 'a.zbk-meta.json');
      writeFileSync(join(outside, 'side.json'), readFileSync(side));
      unlinkSync(side);
      symlinkSync(join(outside, 'side.json'), side);
      await assert.rejects(s.head('a'), isCode('SYMLINK', 'a.zbk-meta.json'));
      assert.deepEqual((await collect(s.list(''))).map((e) => [e.key, e.storageClass]), [['a', 'STANDARD']], 'list takes the linked sidecar as missing');
      assert.equal(Buffer.from(await s.getBytes('a')).toString(), 'aaa');
      await assert.rejects(s.put('a', Buffer.from('bb')), isCode('SYMLINK', 'a.zbk-meta.json'));
      await assert.rejects(s.deleteMany(['a']), isCode('SYMLINK', 'a.zbk-meta.json'));
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
      assert.deepEqual(readdirSync(outside).sort(), ['secret', 'side.json']);
    }));

  it('the root itself may be a symlink: resolved once, used as the directory it names', () =>
    withDirs(async (dir) => {
      const link = `${dir}-link`;
      symlinkSync(dir, link);
      try {
        const s = new LocalStore(link);
        assert.equal(s.url, `file://${link}`);
        await s.put('manifest/m', Buffer.from('m'));
        assert.deepEqual(await keys(s), ['manifest/m']);
        assert.equal(readFileSync(join(dir, 'manifest', 'm'), 'utf8'), 'm');
        assert.equal(Buffer.from(await new LocalStore(link).getBytes('manifest/m')).toString(), 'm');
      } finally {
        unlinkSync(link);
      }
    }));

  it('the marker a symlink: SYMLINK on open, its target never read', () =>
    withDirs(async (dir, outside) => {
      symlinkSync(join(outside, 'secret'), join(dir, '.zbk-layout'));
      await assert.rejects(new LocalStore(dir).head('x'), isCode('SYMLINK', '.zbk-layout'));
    }));
});

describe('LocalStore on a directory others can write to: multipart uploads', () => {
  it('a part file replaced by a symlink is never copied into the object: listParts and complete are SYMLINK', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir, { minPartSize: 1 });
      const bodies = [Buffer.from('x'.repeat(SECRET.length)), Buffer.from('last')];
      const [id, parts] = await upload(s, 'data/v', bodies);
      const updir = join(dir, '.zbk-uploads', id);
      const part1 = readdirSync(updir).find((f) => f.startsWith('00001.'))!;
      unlinkSync(join(updir, part1));
      symlinkSync(join(outside, 'secret'), join(updir, part1));
      await assert.rejects(s.listParts('data/v', id), isCode('SYMLINK', `.zbk-uploads/${id}/${part1}`));
      await assert.rejects(s.completeMultipartUpload('data/v', id, parts), isCode('SYMLINK', `.zbk-uploads/${id}/${part1}`));
      await assert.rejects(s.head('data/v'), NotFoundError);
      assert.ok(!existsSync(join(dir, 'data', 'v')));
      // A FIFO there: no hang.
      unlinkSync(join(updir, part1));
      mkfifo(join(updir, part1));
      await assert.rejects(noHang(s.listParts('data/v', id), join(updir, part1), 'listParts'), isCode('NOT_A_REGULAR_FILE', `.zbk-uploads/${id}/${part1}`));
      await assert.rejects(noHang(s.completeMultipartUpload('data/v', id, parts), join(updir, part1), 'complete'), isCode('NOT_A_REGULAR_FILE'));
      // Aborting removes the upload (the FIFO with it), and nothing outside.
      await s.abortMultipartUpload('data/v', id);
      assert.deepEqual(await s.listMultipartUploads(''), []);
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    }));

  it('placed.data replaced by a symlink or a FIFO: parts are not written through it, complete neither reads nor renames it', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir, { minPartSize: 1 });
      const part = Buffer.from('x'.repeat(SECRET.length));
      const id = await s.createMultipartUpload('data/v', { partSize: part.length });
      const acked = [await s.uploadPart('data/v', id, 1, part, sha256b64(part))];
      const data = join(dir, '.zbk-uploads', id, 'placed.data');
      unlinkSync(data);
      symlinkSync(join(outside, 'secret'), data);
      await assert.rejects(s.uploadPart('data/v', id, 1, part, sha256b64(part)), isCode('SYMLINK', `.zbk-uploads/${id}/placed.data`));
      // The entry of part 1 went before its bytes were to be rewritten: re-place it, then swap the file again.
      unlinkSync(data);
      acked[0] = await s.uploadPart('data/v', id, 1, part, sha256b64(part));
      unlinkSync(data);
      symlinkSync(join(outside, 'secret'), data);
      await assert.rejects(s.completeMultipartUpload('data/v', id, acked), isCode('SYMLINK', `.zbk-uploads/${id}/placed.data`));
      assert.ok(!existsSync(join(dir, 'data', 'v')));
      unlinkSync(data);
      mkfifo(data);
      await assert.rejects(noHang(s.completeMultipartUpload('data/v', id, acked), data, 'complete'), isCode('NOT_A_REGULAR_FILE'));
      assert.ok(!existsSync(join(dir, 'data', 'v')));
      // A hard link to a file elsewhere (O_NOFOLLOW does not see it): nothing is written into it.
      unlinkSync(data);
      linkSync(join(outside, 'secret'), data);
      await assert.rejects(s.uploadPart('data/v', id, 1, part, sha256b64(part)), isCode('HARD_LINK', `.zbk-uploads/${id}/placed.data`));
      await s.abortMultipartUpload('data/v', id);
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    }));

  it('an upload directory, or .zbk-uploads, that is a symlink: SYMLINK for the upload, skipped by listMultipartUploads, nothing written or removed outside', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir, { minPartSize: 1 });
      const [id, parts] = await upload(s, 'data/v', [Buffer.from('one'), Buffer.from('two')]);
      const [other] = await upload(s, 'data/w', [Buffer.from('w')]);
      // The upload's directory moved outside and a link left in its place.
      const moved = join(outside, 'upload');
      renameSync(join(dir, '.zbk-uploads', id), moved);
      symlinkSync(moved, join(dir, '.zbk-uploads', id));
      const before = readdirSync(moved).sort();
      const name = `.zbk-uploads/${id}`;
      await assert.rejects(s.listParts('data/v', id), isCode('SYMLINK', name));
      await assert.rejects(s.uploadPart('data/v', id, 3, Buffer.from('3'), sha256b64(Buffer.from('3'))), isCode('SYMLINK', name));
      await assert.rejects(s.completeMultipartUpload('data/v', id, parts), isCode('SYMLINK', name));
      await assert.rejects(s.abortMultipartUpload('data/v', id), isCode('SYMLINK', name));
      assert.deepEqual((await s.listMultipartUploads('')).map((u) => u.uploadId), [other]);
      assert.deepEqual(readdirSync(moved).sort(), before, 'nothing written or removed outside');
      assert.ok(!existsSync(join(dir, 'data', 'v')));

      // .zbk-uploads itself a link to a directory outside.
      rmSync(join(dir, '.zbk-uploads'), { recursive: true });
      symlinkSync(outside, join(dir, '.zbk-uploads'));
      await assert.rejects(s.createMultipartUpload('data/x'), isCode('SYMLINK', '.zbk-uploads'));
      await assert.rejects(s.listMultipartUploads(''), isCode('SYMLINK', '.zbk-uploads'));
      await assert.rejects(s.listParts('data/v', id), isCode('SYMLINK', '.zbk-uploads'));
      assert.deepEqual(readdirSync(outside).sort(), ['secret', 'upload']);
    }));
});

describe('LocalStore on a directory others can write to: FIFOs and special files never block', () => {
  it('a FIFO at an object key, at a sidecar, as the marker: NOT_A_REGULAR_FILE at once (a conditional put too: zbk lease)', () =>
    withDirs(async (dir) => {
      const s = new LocalStore(dir);
      await s.put('b', Buffer.from('bbb'));
      const fifo = join(dir, 'lease');
      mkfifo(fifo);
      const name = 'lease';
      await assert.rejects(noHang(s.get('lease'), fifo, 'get'), isCode('NOT_A_REGULAR_FILE', name));
      await assert.rejects(noHang(s.getBytes('lease'), fifo, 'getBytes'), isCode('NOT_A_REGULAR_FILE', name));
      await assert.rejects(noHang(s.head('lease'), fifo, 'head'), isCode('NOT_A_REGULAR_FILE', name));
      await assert.rejects(noHang(s.requestRestore('lease', 1, 'Bulk'), fifo, 'requestRestore'), isCode('NOT_A_REGULAR_FILE', name));
      await assert.rejects(noHang(s.putConditional('lease', Buffer.from('x'), { ifNoneMatch: '*' }), fifo, 'putConditional'), isCode('NOT_A_REGULAR_FILE', name));
      await assert.rejects(noHang(s.put('lease', Buffer.from('x')), fifo, 'put'), isCode('NOT_A_REGULAR_FILE', name));
      assert.deepEqual(await noHang(keys(s), fifo, 'list'), ['b']);

      const side = join(dir, 'b.zbk-meta.json');
      unlinkSync(side);
      mkfifo(side);
      await assert.rejects(noHang(s.head('b'), side, 'head'), isCode('NOT_A_REGULAR_FILE', 'b.zbk-meta.json'));
      assert.deepEqual(await noHang(keys(s), side, 'list'), ['b']);
      assert.equal(Buffer.from(await noHang(s.getBytes('b'), side, 'getBytes')).toString(), 'bbb');

      const other = join(dir, 'other');
      mkdirSync(other);
      mkfifo(join(other, '.zbk-layout'));
      await assert.rejects(noHang(new LocalStore(other).head('x'), join(other, '.zbk-layout'), 'open'), isCode('NOT_A_REGULAR_FILE', '.zbk-layout'));
    }));
});

describe('LocalStore on a directory others can write to: layout-1 conversion', () => {
  it('a descriptor whose part is a symlink (to a file outside of the same size), a FIFO, or whose part directory is a symlink, is not converted: left as is, reported; the rest converts', () =>
    withDirs(async (dir, outside) => {
      const { objects } = buildV1Store(dir);
      const same = Buffer.from('p'.repeat(SECRET.length));
      // A part linked to the secret.
      writeV1Composite(dir, 'data/zz/000000.zbkv', [same, Buffer.from('tail')], { id: '1'.repeat(32) });
      const linkedPart = join(dir, 'data', 'zz', `.zbk-mp-${'1'.repeat(32)}`, v1Part(1, same).file);
      unlinkSync(linkedPart);
      symlinkSync(join(outside, 'secret'), linkedPart);
      // A part that is a FIFO.
      writeV1Composite(dir, 'data/zz/000001.zbkv', [same], { id: '2'.repeat(32) });
      const fifoPart = join(dir, 'data', 'zz', `.zbk-mp-${'2'.repeat(32)}`, v1Part(1, same).file);
      unlinkSync(fifoPart);
      mkfifo(fifoPart);
      // The part directory a link to a directory outside holding the (right-sized) part.
      writeV1Composite(dir, 'data/zz/000002.zbkv', [same], { id: '3'.repeat(32) });
      const partsDir = join(dir, 'data', 'zz', `.zbk-mp-${'3'.repeat(32)}`);
      renameSync(partsDir, join(outside, 'parts'));
      symlinkSync(join(outside, 'parts'), partsDir);
      const descriptors = new Map(['000000', '000001', '000002'].map((n) => [`data/zz/${n}.zbkv`, readFileSync(join(dir, 'data', 'zz', `${n}.zbkv`))]));

      const warnings: string[] = [];
      const s = new LocalStore(dir, { onWarning: (m) => void warnings.push(m) });
      for (const [key, want] of objects) assert.ok(Buffer.from(await noHang(s.getBytes(key), fifoPart, 'open')).equals(want.bytes), `${key} converted`);
      for (const [key, bytes] of descriptors) {
        const got = Buffer.from(await s.getBytes(key));
        assert.ok(!got.toString('latin1').includes(SECRET), `${key}: the secret was not copied in`);
        assert.ok(got.equals(bytes), `${key} is left as it is (the descriptor)`);
        assert.ok(got.subarray(0, V1_MAGIC.length).equals(Buffer.from(V1_MAGIC)));
      }
      assert.equal(warnings.length, 3, warnings.join('\n'));
      assert.match(warnings.find((w) => w.includes('data/zz/000000.zbkv'))!, /part \.zbk-mp-1+\/00001\.\S+ is a symbolic link/);
      assert.match(warnings.find((w) => w.includes('data/zz/000001.zbkv'))!, /is not a regular file/);
      assert.match(warnings.find((w) => w.includes('data/zz/000002.zbkv'))!, /part directory \.zbk-mp-3+ is a symbolic link/);
      for (const w of warnings) assert.ok(!w.includes('\n') && !w.includes(SECRET));
      assert.ok(lstatSync(linkedPart).isSymbolicLink() && lstatSync(fifoPart).isFIFO() && lstatSync(partsDir).isSymbolicLink(), 'left as they are');
      assert.deepEqual(readdirSync(join(outside, 'parts')), [v1Part(1, same).file], 'nothing removed outside');
      assert.equal(readFileSync(join(dir, '.zbk-layout'), 'utf8'), '2\n');
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
      // A later open reads the marker: no warning again.
      const later: string[] = [];
      await new LocalStore(dir, { onWarning: (m) => void later.push(m) }).head('zbk.key');
      assert.deepEqual(later, []);
    }));
});

describe('LocalStore on a directory others can write to: lock files', () => {
  it('a conditional put lock dated in the future, a symlink or a FIFO is stale and taken at once; a directory there is NOT_A_REGULAR_FILE at once', () =>
    withDirs(async (dir, outside) => {
      const s = new LocalStore(dir);
      await s.put('other', Buffer.from('o'));
      const lock = join(dir, '.zbk-lock-lease');
      const quick = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
        const t0 = Date.now();
        await fn();
        assert.ok(Date.now() - t0 < 2000, `${what}: taken at once (${Date.now() - t0} ms)`);
        assert.ok(!existsSync(lock), `${what}: the lock is released`);
        await s.deleteMany(['lease']);
      };
      writeFileSync(lock, '1\n');
      const future = new Date('2100-01-01T00:00:00Z');
      utimesSync(lock, future, future);
      await quick('dated 2100', () => s.putConditional('lease', Buffer.from('1'), { ifNoneMatch: '*' }));
      writeFileSync(lock, '1\n');
      const old = new Date(Date.now() - 60_000);
      utimesSync(lock, old, old);
      await quick('a minute old', () => s.putConditional('lease', Buffer.from('2'), { ifNoneMatch: '*' }));
      symlinkSync(join(outside, 'secret'), lock);
      await quick('a symlink', () => s.putConditional('lease', Buffer.from('3'), { ifNoneMatch: '*' }));
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET, 'the link target is not written');
      mkfifo(lock);
      await quick('a FIFO', () => s.putConditional('lease', Buffer.from('4'), { ifNoneMatch: '*' }));
      mkdirSync(lock);
      const t0 = Date.now();
      await assert.rejects(s.putConditional('lease', Buffer.from('5'), { ifNoneMatch: '*' }), isCode('NOT_A_REGULAR_FILE', '.zbk-lock-lease'));
      assert.ok(Date.now() - t0 < 2000);
      // A fresh lock (a live writer) is still waited for.
      rmSync(lock, { recursive: true });
      writeFileSync(lock, '1\n');
      const waiting = s.putConditional('lease', Buffer.from('6'), { ifNoneMatch: '*' });
      setTimeout(() => unlinkSync(lock), 300);
      await waiting;
      assert.equal(Buffer.from(await s.getBytes('lease')).toString(), '6');
    }));

  it('a migrate lock naming another host: taken at once when untouched for the stale limit (marker deleted too), dated ahead, or a symlink; a fresh one once it stays untouched that long', () =>
    withDirs(async (dir, outside) => {
      const lockAt = (d: string): string => join(d, '.zbk-migrate.lock');
      const quick = async (what: string, d: string, options: LocalStoreOptions, max: number): Promise<void> => {
        const t0 = Date.now();
        await new LocalStore(d, { migrateWaitMs: 20_000, ...options }).head('zbk.key');
        assert.ok(Date.now() - t0 < max, `${what}: ${Date.now() - t0} ms`);
        assert.equal(readFileSync(join(d, '.zbk-layout'), 'utf8'), '2\n', what);
        assert.ok(!existsSync(lockAt(d)), `${what}: the lock is gone`);
        assertNoV1Artifacts(d);
      };
      const cases: [string, (lock: string) => void][] = [
        [
          'untouched for 10 minutes',
          (lock) => {
            writeFileSync(lock, `4242 not-${hostname()}\n`);
            const t = new Date(Date.now() - 10 * 60_000);
            utimesSync(lock, t, t);
          },
        ],
        [
          'dated 2100',
          (lock) => {
            writeFileSync(lock, `4242 not-${hostname()}\n`);
            const t = new Date('2100-01-01T00:00:00Z');
            utimesSync(lock, t, t);
          },
        ],
        ['a symlink', (lock) => symlinkSync(join(outside, 'secret'), lock)],
      ];
      for (const [i, [what, plant]] of cases.entries()) {
        const d = join(dir, `case${i}`);
        mkdirSync(d);
        buildV1Store(d);
        plant(lockAt(d));
        await quick(what, d, {}, 3000);
      }
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);

      // A converted store whose marker was deleted, with an old lock of another host beside it.
      const d = join(dir, 'deleted-marker');
      const s = new LocalStore(d);
      await s.put('zbk.key', Buffer.from('k'));
      unlinkSync(join(d, '.zbk-layout'));
      writeFileSync(lockAt(d), `4242 not-${hostname()}\n`);
      const t = new Date(Date.now() - 10 * 60_000);
      utimesSync(lockAt(d), t, t);
      await quick('marker deleted', d, {}, 3000);

      // A fresh lock of another host that nobody touches: waited for, then taken after the stale limit.
      const f = join(dir, 'fresh');
      mkdirSync(f);
      buildV1Store(f);
      writeFileSync(lockAt(f), `4242 not-${hostname()}\n`);
      const t0 = Date.now();
      await quick('fresh, untouched', f, { migrateLockStaleMs: 800 }, 5000);
      assert.ok(Date.now() - t0 >= 700, 'waited for the stale limit');
    }));

  it('the converting process keeps its migrate lock touched, so that a long conversion is not taken over', () =>
    withDirs(async (dir) => {
      buildV1Store(dir);
      const lock = join(dir, '.zbk-migrate.lock');
      let checked = false;
      const s = new LocalStore(dir, {
        migrateLockStaleMs: 600,
        testHookMigrate: async (step) => {
          if (step !== 'object' || checked) return;
          checked = true;
          const t = new Date(Date.now() - 60 * 60_000);
          utimesSync(lock, t, t);
          await new Promise((r) => setTimeout(r, 400));
          const age = Date.now() - statSync(lock).mtimeMs;
          assert.ok(age < 300, `touched ${age} ms ago`);
          assert.equal(readFileSync(lock, 'utf8'), `${process.pid} ${hostname()}\n`);
        },
      });
      await s.head('zbk.key');
      assert.ok(checked);
      assert.ok(!existsSync(lock));
      assertNoV1Artifacts(dir);
    }));
});

describe('LocalStore on a directory others can write to: what is not tampering still works', () => {
  it('objects, ranges, listings, deletes and uploads over real nested directories', () =>
    withDirs(async (dir) => {
      const s = new LocalStore(dir, { minPartSize: 1 });
      const body = randomBytes(5000);
      await s.put('data/aa/bb/000000.zbkv', body);
      assert.ok((await readAll(await s.get('data/aa/bb/000000.zbkv', { start: 10, end: 19 }))).equals(body.subarray(10, 20)));
      const [id, parts] = await upload(s, 'data/aa/cc/000001.zbkv', [body, Buffer.from('end')]);
      await s.completeMultipartUpload('data/aa/cc/000001.zbkv', id, parts);
      assert.deepEqual(await keys(s, 'data/aa/'), ['data/aa/bb/000000.zbkv', 'data/aa/cc/000001.zbkv']);
      await s.deleteMany(['data/aa/bb/000000.zbkv', 'data/aa/cc/000001.zbkv', 'data/none/x', 'data/aa/bb/000000.zbkv/x']);
      assert.deepEqual(await keys(s), []);
      assert.deepEqual(readdirSync(dir).sort(), ['.zbk-layout', '.zbk-uploads']);
    }));
});
