/**
 * Builds, by hand, file:// store directories in layout 1 (what zbk wrote
 * before the store became a plain copy of a bucket): a multipart object as a
 * descriptor `zbk-local-composite-v1\n{"dir":".zbk-mp-<id>","parts":[…]}\n`
 * naming part files in `.zbk-mp-<id>/` beside the key, and sidecars
 * `{"v":1,…,"ino":<data file's inode>}` (`composite: true` for descriptors).
 * Also the trees' expected contents, and a check that no layout-1 artifact
 * remains. Used by the store's migration tests and the recovery test.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { multipartEtag } from '../../src/store/internal.js';

export const V1_MAGIC = 'zbk-local-composite-v1\n';

export interface V1Part {
  file: string;
  etag: string;
  sha256b64: string;
  body: Buffer;
}

/** A part as the layout-1 (and layout-2) upload writes it: `<nnnnn>.<etag>.<sha256 hex>`, etag = first 16 bytes of the SHA-256. */
export function v1Part(partNumber: number, body: Buffer): V1Part {
  const sha = createHash('sha256').update(body).digest();
  const etag = sha.subarray(0, 16).toString('hex');
  return { file: `${String(partNumber).padStart(5, '0')}.${etag}.${sha.toString('hex')}`, etag, sha256b64: sha.toString('base64'), body };
}

function pathOf(root: string, key: string): string {
  return join(root, ...key.split('/'));
}

function sidecar(path: string, fields: Record<string, unknown>): void {
  writeFileSync(`${path}.zbk-meta.json`, JSON.stringify({ v: 1, ...fields }));
}

/** A plain layout-1 object with its sidecar (inode recorded). */
export function writeV1Plain(root: string, key: string, body: Buffer, meta: { storageClass?: string; metadata?: Record<string, string> } = {}): void {
  const path = pathOf(root, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
  const etag = createHash('md5').update(body).digest('hex');
  sidecar(path, { storageClass: meta.storageClass ?? 'STANDARD', metadata: meta.metadata ?? {}, etag, size: body.length, ino: statSync(path).ino });
}

/**
 * A layout-1 composite object: descriptor + `.zbk-mp-<id>/` part files;
 * with `sidecar: false` no sidecar of its own (a torn complete). Returns its
 * multipart ETag.
 */
export function writeV1Composite(
  root: string,
  key: string,
  bodies: Buffer[],
  meta: { storageClass?: string; metadata?: Record<string, string>; sidecar?: boolean; id?: string } = {},
): string {
  const path = pathOf(root, key);
  mkdirSync(dirname(path), { recursive: true });
  const dir = `.zbk-mp-${meta.id ?? randomBytes(16).toString('hex')}`;
  mkdirSync(join(dirname(path), dir));
  const parts = bodies.map((b, i) => v1Part(i + 1, b));
  for (const p of parts) writeFileSync(join(dirname(path), dir, p.file), p.body);
  writeFileSync(path, V1_MAGIC + JSON.stringify({ dir, parts: parts.map((p) => ({ file: p.file, size: p.body.length })) }) + '\n');
  const etag = multipartEtag(parts.map((p) => p.etag));
  const size = bodies.reduce((n, b) => n + b.length, 0);
  if (meta.sidecar !== false) {
    sidecar(path, { storageClass: meta.storageClass ?? 'STANDARD', metadata: meta.metadata ?? {}, etag, size, ino: statSync(path).ino, composite: true });
  }
  return etag;
}

/** An upload in flight (same format in both layouts). */
export function writeUpload(root: string, uploadId: string, key: string, bodies: Buffer[], meta: { storageClass?: string; metadata?: Record<string, string> } = {}): V1Part[] {
  const dir = join(root, '.zbk-uploads', uploadId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'upload.json'), JSON.stringify({ key, storageClass: meta.storageClass ?? 'STANDARD', metadata: meta.metadata ?? {}, initiated: new Date().toISOString() }));
  const parts = bodies.map((b, i) => v1Part(i + 1, b));
  for (const p of parts) writeFileSync(join(dir, p.file), p.body);
  return parts;
}

export interface Expected {
  bytes: Buffer;
  storageClass: string;
  metadata: Record<string, string>;
  /** undefined: the store has no ETag to report (a torn write's stale sidecar was dropped). */
  etag: string | undefined;
}

/**
 * A layout-1 store with every case the conversion knows, built under `root`:
 * two composites (one with its sidecar, one torn: its sidecar still the
 * previous plain object's), plain objects (one whose sidecar describes it,
 * one torn), a crashed complete's orphan part directory, an orphan sidecar,
 * a leftover temp file, and an upload in flight.
 */
export function buildV1Store(root: string): { objects: Map<string, Expected>; upload: { id: string; key: string; parts: V1Part[] } } {
  const objects = new Map<string, Expected>();
  const partSize = 70_000;
  const vol = [randomBytes(partSize), randomBytes(partSize), randomBytes(12_345)];
  const volEtag = writeV1Composite(root, 'data/aa/000000.zbkv', vol, { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'sealed-volume-0' } });
  objects.set('data/aa/000000.zbkv', { bytes: Buffer.concat(vol), storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'sealed-volume-0' }, etag: volEtag });

  // Torn complete: the descriptor renamed over a plain object, whose sidecar is still there.
  const torn = [randomBytes(partSize), randomBytes(5)];
  const key2 = 'data/bb/000001.zbkv';
  writeV1Plain(root, key2, Buffer.from('the previous object'), { metadata: { stale: 'yes' } });
  const sidecar2 = readFileSync(`${pathOf(root, key2)}.zbk-meta.json`);
  const tornEtag = writeV1Composite(root, key2, torn, { sidecar: false });
  writeFileSync(`${pathOf(root, key2)}.zbk-meta.json`, sidecar2);
  objects.set(key2, { bytes: Buffer.concat(torn), storageClass: 'STANDARD', metadata: {}, etag: tornEtag });

  const plain = Buffer.from(`{"keyfile":"${randomBytes(8).toString('hex')}"}`);
  writeV1Plain(root, 'zbk.key', plain, { storageClass: 'STANDARD_IA', metadata: { kind: 'key' } });
  objects.set('zbk.key', { bytes: plain, storageClass: 'STANDARD_IA', metadata: { kind: 'key' }, etag: createHash('md5').update(plain).digest('hex') });

  const empty = Buffer.alloc(0);
  writeV1Plain(root, 'manifest/empty', empty, { metadata: { e: '1' } });
  objects.set('manifest/empty', { bytes: empty, storageClass: 'STANDARD', metadata: { e: '1' }, etag: createHash('md5').update(empty).digest('hex') });

  // Torn put: the data replaced (another inode), the sidecar still the old object's.
  const key5 = 'streams/cc.zbks';
  writeV1Plain(root, key5, Buffer.from('old record'), { storageClass: 'GLACIER_IR', metadata: { old: '1' } });
  const newer = randomBytes(300);
  writeFileSync(`${pathOf(root, key5)}.new`, newer);
  renameSync(`${pathOf(root, key5)}.new`, pathOf(root, key5));
  objects.set(key5, { bytes: newer, storageClass: 'STANDARD', metadata: {}, etag: undefined });

  // A crashed complete's part directory nothing refers to, an orphan sidecar, a killed write's temp file.
  mkdirSync(join(root, 'data', 'aa', `.zbk-mp-${'0'.repeat(32)}`));
  writeFileSync(join(root, 'data', 'aa', `.zbk-mp-${'0'.repeat(32)}`, v1Part(1, Buffer.from('x')).file), 'x');
  writeFileSync(join(root, 'data', 'aa', 'gone.zbkv.zbk-meta.json'), JSON.stringify({ v: 1, storageClass: 'STANDARD', metadata: {}, etag: 'e', size: 1, ino: 1 }));
  writeFileSync(join(root, 'data', 'aa', '.zbk-tmp-0123456789abcdef'), randomBytes(1000));

  const id = 'f'.repeat(32);
  const parts = writeUpload(root, id, 'data/dd/000000.zbkv', [randomBytes(partSize), randomBytes(777)], { storageClass: 'DEEP_ARCHIVE', metadata: { 'zbk-meta': 'in-flight' } });
  return { objects, upload: { id, key: 'data/dd/000000.zbkv', parts } };
}

/** Every file under `root`, relative, sorted. */
export function treeFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(`${r}/`, ...treeFiles(root, r));
    else out.push(r);
  }
  return out.sort();
}

/** No layout-1 artifact under `root`: no `.zbk-mp-*`, no descriptor, no v1 sidecar, no inode, no temp file, no lock. */
export function assertNoV1Artifacts(root: string): void {
  for (const f of treeFiles(root)) {
    assert.ok(!/(^|\/)\.zbk-mp-/.test(f), `no part directory: ${f}`);
    assert.ok(!/(^|\/)\.zbk-tmp-/.test(f), `no temp file: ${f}`);
    assert.ok(!/\.zbk-migrate\.lock/.test(f), `no lock: ${f}`);
    if (f.endsWith('/') || f.startsWith('.zbk-uploads/')) continue;
    const bytes = readFileSync(join(root, f));
    assert.ok(!bytes.subarray(0, V1_MAGIC.length).equals(Buffer.from(V1_MAGIC)), `no descriptor: ${f}`);
    if (f.endsWith('.zbk-meta.json')) {
      const side = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      assert.equal(side.v, 2, f);
      assert.ok(!('ino' in side) && !('composite' in side), `no inode in ${f}`);
    }
  }
}
