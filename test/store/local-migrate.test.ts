/**
 * Conversion of a layout-1 file:// store (descriptors + hard-linked part
 * directories, sidecars with inode numbers) on first open: every object
 * reads the same, heads keep ETag, class and metadata, no layout-1 artifact
 * remains, an upload in flight can still be completed; a conversion killed
 * at any step is finished by the next open (also past a dead process's
 * lock); a live process's lock is waited for; two processes opening at once
 * both get the converted store; a read-only layout-1 store is refused with a
 * one-line command and left untouched.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AccessDeniedError, TransientStoreError } from '../../src/store/errors.js';
import { LocalStore, type LocalStoreOptions, type MigrateStep } from '../../src/store/local-store.js';
import { readAll } from './suite.js';
import { assertNoV1Artifacts, buildV1Store, treeFiles, writeUpload, writeV1Composite, type Expected } from './local-v1.js';

const MIN = 1000;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'zbk-local-migrate-'));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir();
  try {
    await fn(dir);
  } finally {
    chmodSync(dir, 0o755);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A pid that is not running (a child that has exited). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

function snapshot(dir: string): Map<string, string> {
  return new Map(treeFiles(dir).map((f) => [f, f.endsWith('/') ? '' : readFileSync(join(dir, f)).toString('base64')]));
}

/** The converted store holds exactly `objects`, byte for byte with their heads, and nothing of layout 1. */
async function assertConverted(dir: string, objects: Map<string, Expected>, options: LocalStoreOptions = {}): Promise<LocalStore> {
  const s = new LocalStore(dir, { minPartSize: MIN, ...options });
  for (const [key, want] of objects) {
    assert.ok(Buffer.from(await s.getBytes(key)).equals(want.bytes), `${key} reads the same`);
    assert.ok(readFileSync(join(dir, key)).equals(want.bytes), `${key} is a plain file of its bytes`);
    if (want.bytes.length > 2) assert.ok((await readAll(await s.get(key, { start: 1, end: want.bytes.length - 2 }))).equals(want.bytes.subarray(1, -1)), `${key} ranged`);
    const info = await s.head(key);
    assert.deepEqual([info.size, info.storageClass, info.etag, info.metadata], [want.bytes.length, want.storageClass, want.etag, want.metadata], key);
  }
  assert.deepEqual(
    (await collect(s.list(''))).map((e) => [e.key, e.size, e.storageClass]),
    [...objects].map(([k, w]) => [k, w.bytes.length, w.storageClass]).sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
  );
  assertNoV1Artifacts(dir);
  assert.equal(readFileSync(join(dir, '.zbk-layout'), 'utf8'), '2\n');
  return s;
}

test('a layout-1 store is converted on first open: same bytes and heads, no layout-1 artifact, the upload in flight completes', () =>
  withDir(async (dir) => {
    const { objects, upload } = buildV1Store(dir);
    assert.ok(treeFiles(dir).some((f) => f.includes('.zbk-mp-')), 'the fixture is layout 1');
    const s = await assertConverted(dir, objects);
    assert.equal(statSync(join(dir, 'data/aa/000000.zbkv')).nlink, 1);

    assert.deepEqual((await s.listMultipartUploads('')).map((u) => [u.key, u.uploadId]), [[upload.key, upload.id]]);
    const listed = await s.listParts(upload.key, upload.id);
    assert.deepEqual(listed.map((p) => [p.etag, p.checksumSha256]), upload.parts.map((p) => [p.etag, p.sha256b64]));
    await s.completeMultipartUpload(upload.key, upload.id, listed);
    assert.ok(Buffer.from(await s.getBytes(upload.key)).equals(Buffer.concat(upload.parts.map((p) => p.body))));
    const info = await s.head(upload.key);
    assert.deepEqual([info.storageClass, info.metadata], ['DEEP_ARCHIVE', { 'zbk-meta': 'in-flight' }]);

    // Later opens read the marker and walk nothing.
    const steps: MigrateStep[] = [];
    await new LocalStore(dir, { testHookMigrate: (step) => void steps.push(step) }).head('zbk.key');
    assert.deepEqual(steps, []);
  }));

test('a conversion killed at any step is finished by the next open, past the dead process lock', async () => {
  // Count the steps of one conversion.
  const counted = tempDir();
  let total = 0;
  try {
    buildV1Store(counted);
    await collect(new LocalStore(counted, { testHookMigrate: () => void total++ }).list(''));
  } finally {
    rmSync(counted, { recursive: true, force: true });
  }
  assert.ok(total >= 8, `steps counted: ${total}`);
  for (let k = 1; k <= total; k++) {
    await withDir(async (dir) => {
      const { objects } = buildV1Store(dir);
      let calls = 0;
      const killed = new LocalStore(dir, {
        testHookMigrate: (step, path) => {
          if (++calls === k) throw new Error(`killed at step ${k} (${step} ${path})`);
        },
      });
      await assert.rejects(killed.head('zbk.key'), /killed at step/);
      assert.ok(!existsSync(join(dir, '.zbk-layout')), 'no marker before the conversion is complete');
      // A kill leaves the lock behind, with a pid that no longer runs.
      writeFileSync(join(dir, '.zbk-migrate.lock'), `${deadPid()} ${hostname()}\n`);
      await assertConverted(dir, objects);
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.zbk-migrate')), [], `step ${k}: the lock is gone`);
    });
  }
});

test('a lock held by a live process is waited for: TransientStoreError after the wait; taken over when it dies; done when the marker appears', () =>
  withDir(async (dir) => {
    const { objects } = buildV1Store(dir);
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const lock = join(dir, '.zbk-migrate.lock');
      writeFileSync(lock, `${holder.pid} ${hostname()}\n`);
      const t0 = Date.now();
      await assert.rejects(new LocalStore(dir, { migrateWaitMs: 600 }).head('zbk.key'), (e) => e instanceof TransientStoreError && e.message.includes(lock));
      assert.ok(Date.now() - t0 >= 600);
      // The holder dies while we wait: its lock is taken over and the conversion done here.
      const waiting = new LocalStore(dir).head('zbk.key');
      setTimeout(() => holder.kill('SIGKILL'), 300);
      await waiting;
      await assertConverted(dir, objects);
    } finally {
      holder.kill('SIGKILL');
    }
    // Another process finishing the conversion while we wait: the marker ends the wait.
    const other = tempDir();
    const holder2 = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      writeFileSync(join(other, '.zbk-migrate.lock'), `${holder2.pid} ${hostname()}\n`);
      writeV1Composite(other, 'v', [Buffer.from('abc')]);
      const waiting = new LocalStore(other).listMultipartUploads('');
      setTimeout(() => writeFileSync(join(other, '.zbk-layout'), '2\n'), 300);
      await waiting;
      assert.ok(existsSync(join(other, '.zbk-migrate.lock')), 'the live holder keeps its lock');
    } finally {
      holder2.kill('SIGKILL');
      rmSync(other, { recursive: true, force: true });
    }
  }));

test('two processes (and two instances in one) opening the same layout-1 store at once both get the converted store', () =>
  withDir(async (dir) => {
    const { objects } = buildV1Store(dir);
    // A bigger volume, so the conversions overlap.
    const big = [randomBytes(3 << 20), randomBytes(3 << 20), randomBytes(100)];
    const etag = writeV1Composite(dir, 'data/ee/000000.zbkv', big, { storageClass: 'DEEP_ARCHIVE', metadata: { m: 'big' } });
    objects.set('data/ee/000000.zbkv', { bytes: Buffer.concat(big), storageClass: 'DEEP_ARCHIVE', metadata: { m: 'big' }, etag });
    const moduleUrl = new URL('../../src/store/local-store.js', import.meta.url).href;
    const script = `
      import { createHash } from 'node:crypto';
      const { LocalStore } = await import(${JSON.stringify(moduleUrl)});
      const s = new LocalStore(process.argv[1]);
      const out = {};
      for await (const e of s.list('')) {
        const h = await s.head(e.key);
        out[e.key] = [createHash('sha256').update(await s.getBytes(e.key)).digest('hex'), h.storageClass, h.etag ?? null, h.metadata];
      }
      process.stdout.write(JSON.stringify(out));
    `;
    const runOne = (): Promise<string> =>
      new Promise((done, fail) => {
        const c = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('error', fail);
        c.on('close', (code) => (code === 0 ? done(out) : fail(new Error(`child exited ${code}: ${err}`))));
      });
    const [a, b] = await Promise.all([runOne(), runOne()]);
    assert.equal(a, b);
    const seen = JSON.parse(a) as Record<string, [string, string, string | null, Record<string, string>]>;
    assert.deepEqual(
      Object.entries(seen).sort(),
      [...objects].map(([k, w]) => [k, [createHash('sha256').update(w.bytes).digest('hex'), w.storageClass, w.etag ?? null, w.metadata]]).sort(),
    );
    await assertConverted(dir, objects);

    // In one process, instances over one directory share one conversion.
    const again = tempDir();
    try {
      const built = buildV1Store(again);
      const stores = [new LocalStore(again), new LocalStore(again), new LocalStore(again)];
      await Promise.all(stores.map((s) => s.head('zbk.key')));
      await assertConverted(again, built.objects);
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  }));

test('a read-only layout-1 store is refused with a one-line command that converts a copy, and left untouched', async (t) => {
  await withDir(async (dir) => {
    buildV1Store(dir);
    const before = snapshot(dir);
    const readOnly = new LocalStore(dir, {
      testHookMigrate: (step) => {
        if (step === 'lock') throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
      },
    });
    for (const call of [() => readOnly.head('zbk.key'), () => collect(readOnly.list('')), () => readOnly.getBytes('zbk.key')]) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof AccessDeniedError);
        assert.match(e.message, /layout of an older zbk/);
        assert.match(e.message, new RegExp(`cp -r '${dir}' \\S+ && zbk status`));
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      });
    }
    assert.deepEqual(snapshot(dir), before, 'nothing written');
    // The command it gives works: a writable copy converts.
    const copy = tempDir();
    try {
      spawnSync('cp', ['-r', `${dir}/.`, copy]);
      await new LocalStore(copy).head('zbk.key');
      assertNoV1Artifacts(copy);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
  await t.test('with a directory of mode 0555 (not as root)', async (t) => {
    if (process.getuid?.() === 0) return t.skip('root writes through mode 0555');
    await withDir(async (dir) => {
      buildV1Store(dir);
      chmodSync(dir, 0o555);
      await assert.rejects(new LocalStore(dir).head('zbk.key'), /layout of an older zbk/);
    });
  });
});

test('a descriptor whose part files are gone is left as it is; the rest converts', () =>
  withDir(async (dir) => {
    const { objects } = buildV1Store(dir);
    const damagedKey = 'data/bb/000001.zbkv';
    const desc = JSON.parse(readFileSync(join(dir, damagedKey), 'utf8').split('\n')[1]!) as { dir: string; parts: { file: string }[] };
    const partsDir = join(dir, 'data', 'bb', desc.dir);
    unlinkSync(join(partsDir, desc.parts[0]!.file));
    const descriptor = readFileSync(join(dir, damagedKey));
    objects.delete(damagedKey);
    const s = new LocalStore(dir);
    for (const [key, want] of objects) assert.ok(Buffer.from(await s.getBytes(key)).equals(want.bytes), key);
    // The object is what is on disk (verify will find its size wrong); its parts stay for a human.
    assert.ok(Buffer.from(await s.getBytes(damagedKey)).equals(descriptor));
    const info = await s.head(damagedKey);
    assert.deepEqual([info.size, info.etag, info.metadata], [descriptor.length, undefined, {}]);
    assert.ok(existsSync(partsDir));
    assert.equal(readFileSync(join(dir, '.zbk-layout'), 'utf8'), '2\n');
  }));

test('a layout-1 complete torn before its sidecar, upload still there: after the conversion the repeated complete gives the upload class and metadata without copying', () =>
  withDir(async (dir) => {
    const bodies = [randomBytes(3000), randomBytes(40)];
    const id = 'a'.repeat(32);
    const key = 'data/ff/000000.zbkv';
    // The v1 complete linked the parts, renamed the descriptor, and died before the sidecar (none: the key was new).
    const parts = writeUpload(dir, id, key, bodies, { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'vol' } });
    writeV1Composite(dir, key, bodies, { sidecar: false, id });
    const s = new LocalStore(dir, { minPartSize: MIN });
    const converted = await s.head(key);
    assert.deepEqual([converted.storageClass, converted.metadata], ['STANDARD', {}]);
    const listed = await s.listParts(key, id);
    assert.deepEqual(listed.map((p) => p.etag), parts.map((p) => p.etag));
    const inode = statSync(join(dir, key)).ino;
    await s.completeMultipartUpload(key, id, listed);
    const info = await s.head(key);
    assert.deepEqual([info.storageClass, info.metadata, info.etag], ['DEEP_ARCHIVE', { 'zbk-meta': 'vol' }, converted.etag]);
    assert.equal(statSync(join(dir, key)).ino, inode, 'the data file was not copied again');
    assert.ok(Buffer.from(await s.getBytes(key)).equals(Buffer.concat(bodies)));
    assert.deepEqual(await s.listMultipartUploads(''), []);
    assertNoV1Artifacts(dir);
  }));
