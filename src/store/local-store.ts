/**
 * `ObjectStore` on a local directory (`file:///dir`): a USB disk, a NAS
 * mount, or a directory another tool syncs elsewhere.
 *
 * Layout under the root:
 *   <key>                          object bytes (keys map to relative paths)
 *   <key>.zbk-meta.json            sidecar: class, user metadata, etag, size, inode
 *   .zbk-uploads/<id>/upload.json  multipart upload: key, class, metadata, initiated
 *   .zbk-uploads/<id>/<nnnnn>.<md5>.<sha256>  one file per part (name = its identity)
 *   **∕.zbk-tmp-*                  temp files of writes in progress (same directory
 *                                  as the target, so the final rename is atomic)
 *   **∕.zbk-mp-<upload id>/<part file>  data of a composite (multipart) object, beside its key
 *
 * A completed multipart upload is not copied: its part files are hard-linked
 * (O(1)) into a fresh `.zbk-mp-*` directory beside the key, and `<key>` becomes
 * a small descriptor (magic line + JSON list of part files and sizes) whose
 * sidecar says `composite: true` and records the total size. The descriptor
 * commits exactly like a plain object, so readers see the old object or the
 * new one; a crash before that rename leaves the upload intact (plus an
 * unreferenced `.zbk-mp-<upload id>` directory, which the next complete of
 * that upload replaces and its abort removes). A crash after it leaves the
 * upload directory, and a repeated complete finishes the commit: it writes
 * the sidecar again if the crash came before the sidecar's rename, then
 * removes the upload. The upload goes only after its object is fully
 * committed, its record first, so a crash while it is removed leaves an
 * upload that is gone (NoSuchUpload), never one missing some parts.
 * Overwrites and deletes remove the old
 * part directory after the new state is committed. Where hard links are not
 * supported (FAT/exFAT, some NAS shares), complete falls back to copying the
 * parts into one file, the layout older versions wrote (still read as is).
 *
 * Every write goes temp file → fsync → rename → fsync directory. Part files
 * carry their ETag and checksum in their names, so one rename makes a part
 * durable with its identity and a new instance lists parts from disk alone.
 * Objects are never archived: `requestRestore` answers 'not-archived' and
 * `head` reports `{ state: 'not-archived' }` whatever class was recorded.
 *
 * Two limits of a file system: a key cannot be both an object and a
 * "directory" of other keys (`a` and `a/b`) — the second write fails with
 * PermanentStoreError 'KEY_CONFLICT'; and segments starting with `.zbk-` or
 * keys ending in `.zbk-meta.json` are reserved ('INVALID_KEY').
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type {
  ByteRange,
  ListEntry,
  MultipartUploadInfo,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  RestoreOutcome,
  RestoreTier,
  UploadedPart,
} from './object-store.js';
import { AccessDeniedError, NoSuchUploadError, NotFoundError, PermanentStoreError, StoreError, TransientStoreError } from './errors.js';
import {
  DEFAULT_MIN_PART_SIZE,
  checkCompleteParts,
  compareKeys,
  md5Hex,
  multipartEtag,
  normalizePutOptions,
  resolveRange,
  validateKey,
  validatePartNumber,
  validatePrefix,
  validateRestoreDays,
  verifyChecksum,
} from './internal.js';

const META_SUFFIX = '.zbk-meta.json';
const RESERVED = '.zbk-';
const UPLOADS = '.zbk-uploads';
const UPLOAD_ID = /^[0-9a-f]{32}$/;
const PART_FILE = /^(\d{5})\.([0-9a-f]{32})\.([0-9a-f]{64})$/;
const DATA_DIR = /^\.zbk-mp-[0-9a-f]{32}$/;
/** First line of a composite object's descriptor file. */
const COMPOSITE_MAGIC = 'zbk-local-composite-v1\n';
/** A descriptor is at most ~100 bytes per part; anything larger is plain data. */
const MAX_DESCRIPTOR = 2 * 1024 * 1024;

export interface LocalStoreOptions {
  /** Minimum size of all parts but the last at complete (default 5 MiB, like S3). */
  minPartSize?: number;
  /** Tests only: called inside complete after the parts are linked, before the object commits. */
  testHookBeforeCommit?: () => Promise<void> | void;
}

interface Composite {
  /** Name of the `.zbk-mp-*` directory beside the key. */
  dir: string;
  parts: { file: string; size: number }[];
}

interface Sidecar {
  v: 1;
  storageClass: string;
  metadata: Record<string, string>;
  etag: string;
  size: number;
  /** Inode of the data file this sidecar describes, to detect a torn write. */
  ino: number;
  /** The data file is a composite descriptor; `size` is the object's (sum of parts). */
  composite?: true;
}

interface UploadRecord {
  key: string;
  storageClass: string;
  metadata: Record<string, string>;
  initiated: string;
}

interface DiskPart extends UploadedPart {
  checksumSha256: string;
  file: string;
  mtimeMs: number;
}

export class LocalStore implements ObjectStore {
  readonly url: string;
  readonly root: string;
  readonly minPartSize: number;
  private readonly testHookBeforeCommit: (() => Promise<void> | void) | undefined;

  /** @param dir absolute path of the store's directory (created on first write). */
  constructor(dir: string, options: LocalStoreOptions = {}) {
    this.root = resolve(dir);
    this.url = pathToFileURL(this.root).href;
    this.minPartSize = options.minPartSize ?? DEFAULT_MIN_PART_SIZE;
    this.testHookBeforeCommit = options.testHookBeforeCommit;
  }

  /** Atomic, durable, idempotent. */
  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    const path = this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    await this.mkdirFor(key, path);
    const old = await this.compositeOf(path);
    await this.commitObject(key, path, storageClass, metadata, md5Hex(body), body.length, async (fh) => {
      await fh.writeFile(body);
    });
    await this.removeDataDir(path, old);
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw mapFsError(err, key);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new NotFoundError(key);
      const comp = await this.compositeFromHandle(path, fh, st);
      if (comp) {
        await fh.close();
        return await this.compositeStream(key, path, comp, range);
      }
      if (range === undefined) return createReadStream('', { fd: fh, autoClose: true });
      const r = resolveRange(range, st.size);
      // The stream owns the descriptor: a concurrent replace (rename) does not
      // change what this reader sees.
      return createReadStream('', { fd: fh, start: r.start, end: r.end, autoClose: true });
    } catch (err) {
      await fh.close();
      throw err instanceof StoreError ? err : mapFsError(err, key);
    }
  }

  async getBytes(key: string): Promise<Uint8Array> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new NotFoundError(key);
      if (st.size <= MAX_DESCRIPTOR) {
        const bytes = await readFile(path);
        if (!startsWithMagic(bytes)) return new Uint8Array(bytes);
        // Possibly a composite descriptor: read through get(), which decides.
        const chunks: Buffer[] = [];
        for await (const c of await this.get(key)) chunks.push(c as Buffer);
        return new Uint8Array(Buffer.concat(chunks));
      }
      return new Uint8Array(await readFile(path));
    } catch (err) {
      throw err instanceof StoreError ? err : mapFsError(err, key);
    }
  }

  /**
   * @throws NotFoundError; PermanentStoreError 'INCOMPLETE_WRITE' when the
   * sidecar does not describe the data file (a put or complete was
   * interrupted between its two renames: repeat it).
   */
  async head(key: string): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    let st: Stats;
    let side: Sidecar;
    try {
      st = await stat(path);
      if (!st.isFile()) throw new NotFoundError(key);
      side = JSON.parse(await readFile(path + META_SUFFIX, 'utf8')) as Sidecar;
    } catch (err) {
      if (err instanceof StoreError) throw err;
      if (err instanceof SyntaxError || isErrno(err, 'ENOENT')) {
        try {
          await stat(path);
        } catch (e) {
          throw mapFsError(e, key);
        }
        throw new PermanentStoreError(`object ${key} has no valid metadata sidecar (interrupted write?): write it again`, 'INCOMPLETE_WRITE');
      }
      throw mapFsError(err, key);
    }
    if (side.ino !== st.ino || (side.composite ? st.size > MAX_DESCRIPTOR : side.size !== st.size)) {
      throw new PermanentStoreError(`object ${key} and its metadata sidecar disagree (interrupted write?): write it again`, 'INCOMPLETE_WRITE');
    }
    return {
      key,
      size: side.size,
      storageClass: side.storageClass,
      lastModified: st.mtime,
      etag: side.etag,
      metadata: { ...side.metadata },
      restore: { state: 'not-archived' },
    };
  }

  async *list(prefix: string): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    // Walk only the deepest directory the prefix names.
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const found: ListEntry[] = [];
    await this.walk(base, prefix, found);
    found.sort((a, b) => compareKeys(a.key, b.key));
    yield* found;
  }

  /** Idempotent; removes emptied directories (best effort). */
  async deleteMany(keys: readonly string[]): Promise<void> {
    const paths = keys.map((k) => [k, this.pathOf(k)] as const);
    for (const [key, path] of paths) {
      const old = await this.compositeOf(path);
      for (const p of [path, path + META_SUFFIX]) {
        try {
          await unlink(p);
        } catch (err) {
          if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR') && !isErrno(err, 'EISDIR')) throw mapFsError(err, key);
        }
      }
      await this.removeDataDir(path, old);
      await this.pruneDirs(dirname(path));
    }
  }

  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    const uploadId = randomBytes(16).toString('hex');
    const dir = join(this.root, UPLOADS, uploadId);
    const rec: UploadRecord = { key, storageClass, metadata, initiated: new Date().toISOString() };
    try {
      await mkdir(dir, { recursive: true });
      await writeAtomic(dir, join(dir, 'upload.json'), Buffer.from(JSON.stringify(rec)));
      await fsyncDir(dirname(dir));
    } catch (err) {
      throw mapFsError(err, key);
    }
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, sentChecksum?: string): Promise<UploadedPart> {
    const dir = await this.uploadDir(key, uploadId);
    validatePartNumber(partNumber);
    const checksumSha256 = verifyChecksum(body, sentChecksum);
    // A part's ETag only has to identify its bytes: derive it from the SHA-256
    // just verified instead of paying for a second (MD5) pass over the part.
    const etag = Buffer.from(checksumSha256, 'base64').subarray(0, 16).toString('hex');
    const num = String(partNumber).padStart(5, '0');
    const name = `${num}.${etag}.${Buffer.from(checksumSha256, 'base64').toString('hex')}`;
    try {
      await writeAtomic(dir, join(dir, name), body);
      // Replacing a part number: drop the older files of that number.
      for (const f of await readdir(dir)) {
        if (f.startsWith(`${num}.`) && f !== name) await unlink(join(dir, f)).catch(() => undefined);
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
      throw mapFsError(err, key);
    }
    return { partNumber, size: body.length, etag, checksumSha256 };
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    const dir = await this.uploadDir(key, uploadId);
    return (await this.diskParts(key, uploadId, dir)).map(({ partNumber, size, etag, checksumSha256 }) => ({ partNumber, size, etag, checksumSha256 }));
  }

  /**
   * Hard-links the chosen part files into a new `.zbk-mp-*` directory beside
   * the key and commits a descriptor naming them (no byte is copied). Falls
   * back to streaming the parts into one file where hard links fail.
   */
  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    const dir = await this.uploadDir(key, uploadId);
    const rec = await this.uploadRecord(key, uploadId, dir);
    const stored = new Map((await this.diskParts(key, uploadId, dir)).map((p) => [p.partNumber, p]));
    const chosen = checkCompleteParts(parts, stored, this.minPartSize);
    const path = this.pathOf(key);
    await this.mkdirFor(key, path);
    const size = chosen.reduce((n, p) => n + p.size, 0);
    const etag = multipartEtag(chosen.map((p) => p.etag));
    const old = await this.compositeOf(path);
    // Named after the upload, so a crashed complete's directory is found and replaced by the
    // next complete (or removed by an abort) instead of leaking the parts' disk space.
    let dataName = dataDirName(uploadId);
    if (old?.dir === dataName) {
      if (sameParts(old, chosen)) {
        // This upload's descriptor is in place: a crash cut the commit short after the
        // descriptor's rename. If the sidecar is not this descriptor's yet (killed between
        // the two renames), commit the same descriptor again; then finish the cleanup.
        if (!(await this.committedComposite(path, etag, size))) await this.commitComposite(key, path, rec, etag, size, old);
        await this.removeUpload(key, dir);
        return;
      }
      dataName = `${RESERVED}mp-${randomBytes(16).toString('hex')}`;
    }
    const dataDir = join(dirname(path), dataName);
    let linked = false;
    try {
      await rm(dataDir, { recursive: true, force: true });
      await mkdir(dataDir);
      for (const p of chosen) await link(join(dir, p.file), join(dataDir, p.file));
      await fsyncDir(dataDir);
      linked = true;
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
      if (!isErrno(err, 'EPERM') && !isErrno(err, 'ENOTSUP') && !isErrno(err, 'EOPNOTSUPP') && !isErrno(err, 'EXDEV') && !isErrno(err, 'EMLINK') && !isErrno(err, 'ENOSYS')) {
        if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
        throw mapFsError(err, key);
      }
    }
    if (linked) {
      try {
        await this.testHookBeforeCommit?.();
        await this.commitComposite(key, path, rec, etag, size, { dir: dataName, parts: chosen });
      } catch (err) {
        await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
    } else {
      await this.commitObject(key, path, rec.storageClass, rec.metadata, etag, size, async (fh) => {
        const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
        for (const p of chosen) {
          const src = await open(join(dir, p.file), 'r');
          try {
            for (;;) {
              const { bytesRead } = await src.read(buf, 0, buf.length, null);
              if (bytesRead === 0) break;
              await fh.write(buf, 0, bytesRead);
            }
          } finally {
            await src.close();
          }
        }
      });
    }
    await this.removeUpload(key, dir);
    await this.removeDataDir(path, old);
  }

  /**
   * Idempotent: an unknown upload id is not an error. Also removes the part
   * directory a crashed complete of this upload may have left beside the key
   * (unless the key's object is that complete's, committed).
   */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    const path = this.pathOf(key);
    if (!UPLOAD_ID.test(uploadId)) return;
    const dir = join(this.root, UPLOADS, uploadId);
    try {
      const rec = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as UploadRecord;
      if (rec.key !== key) return;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      if (!(err instanceof SyntaxError)) throw mapFsError(err, key);
    }
    const dataName = dataDirName(uploadId);
    if ((await this.compositeOf(path))?.dir !== dataName) {
      await rm(join(dirname(path), dataName), { recursive: true, force: true }).catch(() => undefined);
    }
    await this.removeUpload(key, dir);
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    validatePrefix(prefix);
    let ids: string[];
    try {
      ids = await readdir(join(this.root, UPLOADS));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw mapFsError(err, prefix);
    }
    const out: MultipartUploadInfo[] = [];
    for (const id of ids) {
      if (!UPLOAD_ID.test(id)) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.root, UPLOADS, id, 'upload.json'), 'utf8')) as UploadRecord;
        if (rec.key.startsWith(prefix)) out.push({ key: rec.key, uploadId: id, initiated: new Date(rec.initiated) });
      } catch {
        // Aborted concurrently, or a directory left by a crash before upload.json landed.
      }
    }
    return out.sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  /** Local objects are always readable: 'not-archived' for any existing object. @throws NotFoundError */
  async requestRestore(key: string, days: number, _tier: RestoreTier): Promise<RestoreOutcome> {
    validateRestoreDays(days);
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new NotFoundError(key);
    } catch (err) {
      throw err instanceof StoreError ? err : mapFsError(err, key);
    }
    return 'not-archived';
  }

  /** Validate a key (contract rules + reserved names) and map it under the root. */
  private pathOf(key: string): string {
    validateKey(key);
    if (key.endsWith(META_SUFFIX) || key.split('/').some((s) => s.startsWith(RESERVED))) {
      throw new PermanentStoreError(`invalid object key (reserved by the local store): ${JSON.stringify(key)}`, 'INVALID_KEY');
    }
    const path = join(this.root, ...key.split('/'));
    if (!path.startsWith(this.root + sep)) throw new PermanentStoreError(`invalid object key: ${JSON.stringify(key)}`, 'INVALID_KEY');
    return path;
  }

  private async mkdirFor(key: string, path: string): Promise<void> {
    try {
      await mkdir(dirname(path), { recursive: true });
    } catch (err) {
      if (isErrno(err, 'EEXIST') || isErrno(err, 'ENOTDIR')) throw keyConflict(key);
      throw mapFsError(err, key);
    }
  }

  /**
   * Write the data through `fill` into a temp file, fsync, rename over the
   * key, then the sidecar the same way, then fsync the directory. The data
   * rename is the commit point for readers of bytes; `head` detects the
   * window before the sidecar lands by the inode recorded in it.
   */
  private async commitObject(
    key: string,
    path: string,
    storageClass: string,
    metadata: Record<string, string>,
    etag: string,
    size: number,
    fill: (fh: FileHandle) => Promise<void>,
    compositeSize?: number,
  ): Promise<void> {
    const dir = dirname(path);
    const tmp = join(dir, `${RESERVED}tmp-${randomBytes(8).toString('hex')}`);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, 'wx', 0o600);
      await fill(fh);
      await fh.sync();
      const st = await fh.stat();
      if (st.size !== size) throw new PermanentStoreError(`local store wrote ${st.size} bytes for ${key}, expected ${size}`, 'IO');
      await fh.close();
      fh = undefined;
      const side: Sidecar =
        compositeSize === undefined
          ? { v: 1, storageClass, metadata, etag, size, ino: st.ino }
          : { v: 1, storageClass, metadata, etag, size: compositeSize, ino: st.ino, composite: true };
      await rename(tmp, path);
      await writeAtomic(dir, path + META_SUFFIX, Buffer.from(JSON.stringify(side)), false);
      await fsyncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (err instanceof StoreError) throw err;
      if (isErrno(err, 'EISDIR')) throw keyConflict(key);
      throw mapFsError(err, key);
    }
  }

  /** Commit the descriptor of `comp` at the key (the part directory is already linked). */
  private async commitComposite(key: string, path: string, rec: UploadRecord, etag: string, size: number, comp: Composite): Promise<void> {
    const desc: Composite = { dir: comp.dir, parts: comp.parts.map((p) => ({ file: p.file, size: p.size })) };
    const body = Buffer.from(COMPOSITE_MAGIC + JSON.stringify(desc) + '\n');
    await this.commitObject(key, path, rec.storageClass, rec.metadata, etag, body.length, async (fh) => {
      await fh.writeFile(body);
    }, size);
  }

  /** Whether the sidecar at the key describes the descriptor now there as this composite object. */
  private async committedComposite(path: string, etag: string, size: number): Promise<boolean> {
    let st: Stats;
    try {
      st = await stat(path);
    } catch {
      return false;
    }
    const side = await readSidecar(path + META_SUFFIX);
    return side !== undefined && side.ino === st.ino && side.composite === true && side.size === size && side.etag === etag;
  }

  /**
   * Remove an upload's directory, its record first (durably): a crash midway
   * leaves no upload (NoSuchUpload), only part files, never an upload that
   * lost some of its parts.
   */
  private async removeUpload(key: string, dir: string): Promise<void> {
    try {
      await unlink(join(dir, 'upload.json'));
      await fsyncDir(dir);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw mapFsError(err, key);
    }
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      throw mapFsError(err, key);
    }
  }

  private async uploadDir(key: string, uploadId: string): Promise<string> {
    this.pathOf(key);
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUploadError(key, uploadId);
    const dir = join(this.root, UPLOADS, uploadId);
    await this.uploadRecord(key, uploadId, dir);
    return dir;
  }

  private async uploadRecord(key: string, uploadId: string, dir: string): Promise<UploadRecord> {
    let rec: UploadRecord;
    try {
      rec = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as UploadRecord;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || err instanceof SyntaxError) throw new NoSuchUploadError(key, uploadId);
      throw mapFsError(err, key);
    }
    if (rec.key !== key) throw new NoSuchUploadError(key, uploadId);
    return rec;
  }

  /** Parts from the directory; if a replaced part left two files (crash), the newest wins. */
  private async diskParts(key: string, uploadId: string, dir: string): Promise<DiskPart[]> {
    const byNumber = new Map<number, DiskPart>();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
      throw mapFsError(err, key);
    }
    for (const file of names) {
      const m = PART_FILE.exec(file);
      if (!m) continue;
      let st: Stats;
      try {
        st = await stat(join(dir, file));
      } catch {
        continue; // replaced concurrently
      }
      const part: DiskPart = {
        partNumber: Number(m[1]),
        size: st.size,
        etag: m[2]!,
        checksumSha256: Buffer.from(m[3]!, 'hex').toString('base64'),
        file,
        mtimeMs: st.mtimeMs,
      };
      const prev = byNumber.get(part.partNumber);
      if (!prev || prev.mtimeMs < part.mtimeMs) byNumber.set(part.partNumber, part);
    }
    return [...byNumber.values()].sort((a, b) => a.partNumber - b.partNumber);
  }

  /**
   * The composite descriptor in the open data file `fh`, or undefined for a
   * plain object. Composite when the sidecar of this inode says so; when the
   * sidecar does not describe this inode (interrupted or concurrent write),
   * when the file starts with the descriptor magic.
   */
  private async compositeFromHandle(path: string, fh: FileHandle, st: Stats): Promise<Composite | undefined> {
    if (st.size > MAX_DESCRIPTOR || st.size < COMPOSITE_MAGIC.length) return undefined;
    const side = await readSidecar(path + META_SUFFIX);
    if (side && side.ino === st.ino && !side.composite) return undefined;
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return parseComposite(buf.subarray(0, bytesRead));
  }

  /** The composite descriptor at `path`, if any (best effort: undefined on any error). */
  private async compositeOf(path: string): Promise<Composite | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const st = await fh.stat();
      return st.isFile() ? await this.compositeFromHandle(path, fh, st) : undefined;
    } catch {
      return undefined;
    } finally {
      await fh.close();
    }
  }

  /** Remove the part directory of a replaced or deleted composite object (best effort). */
  private async removeDataDir(path: string, comp: Composite | undefined): Promise<void> {
    if (!comp) return;
    // Still referenced (e.g. the same complete repeated)? Keep it.
    const now = await this.compositeOf(path);
    if (now?.dir === comp.dir) return;
    await rm(join(dirname(path), comp.dir), { recursive: true, force: true }).catch(() => undefined);
  }

  /**
   * Open every part file the range touches up front (so a concurrent
   * overwrite or delete does not change what this reader sees), then stream.
   */
  private async compositeStream(key: string, path: string, comp: Composite, range: ByteRange | undefined): Promise<Readable> {
    const total = comp.parts.reduce((n, p) => n + p.size, 0);
    const r = range === undefined ? (total === 0 ? undefined : { start: 0, end: total - 1 }) : resolveRange(range, total);
    const pieces: { fh: FileHandle; pos: number; len: number }[] = [];
    try {
      if (r) {
        let off = 0;
        for (const p of comp.parts) {
          const pStart = off;
          off += p.size;
          if (off <= r.start || pStart > r.end) continue;
          const fh = await open(join(dirname(path), comp.dir, p.file), 'r');
          pieces.push({ fh, pos: 0, len: 0 });
          const st = await fh.stat();
          if (st.size !== p.size) throw new PermanentStoreError(`object ${key}: part file ${p.file} has ${st.size} bytes, expected ${p.size}`, 'INCOMPLETE_WRITE');
          const from = Math.max(r.start, pStart) - pStart;
          const to = Math.min(r.end, off - 1) - pStart;
          pieces[pieces.length - 1] = { fh, pos: from, len: to - from + 1 };
        }
      }
    } catch (err) {
      for (const p of pieces) await p.fh.close().catch(() => undefined);
      throw err instanceof StoreError ? err : mapFsError(err, key);
    }
    async function* gen(): AsyncGenerator<Buffer> {
      try {
        for (const piece of pieces) {
          let { pos, len } = piece;
          while (len > 0) {
            const buf = Buffer.allocUnsafe(Math.min(len, 1024 * 1024));
            let bytesRead: number;
            try {
              ({ bytesRead } = await piece.fh.read(buf, 0, buf.length, pos));
            } catch (err) {
              throw mapFsError(err, key);
            }
            if (bytesRead === 0) throw new PermanentStoreError(`object ${key}: part file ended early`, 'IO');
            pos += bytesRead;
            len -= bytesRead;
            yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
          }
        }
      } finally {
        for (const p of pieces) await p.fh.close().catch(() => undefined);
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  private async walk(rel: string, prefix: string, out: ListEntry[]): Promise<void> {
    const abs = rel === '' ? this.root : join(this.root, ...rel.split('/'));
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw mapFsError(err, prefix);
    }
    for (const e of entries) {
      if (e.name.startsWith(RESERVED) || e.name.endsWith(META_SUFFIX)) continue;
      const key = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        // Descend only where keys under this directory can match the prefix.
        const dirKey = `${key}/`;
        if (dirKey.startsWith(prefix) || prefix.startsWith(dirKey)) await this.walk(key, prefix, out);
      } else if (e.isFile() && key.startsWith(prefix)) {
        try {
          const st = await stat(join(abs, e.name));
          const side = await readSidecar(join(abs, e.name + META_SUFFIX));
          const size = side?.composite && side.ino === st.ino ? side.size : st.size;
          out.push({ key, size, storageClass: side?.storageClass ?? 'STANDARD', lastModified: st.mtime });
        } catch {
          // Deleted while listing.
        }
      }
    }
  }

  private async pruneDirs(dir: string): Promise<void> {
    while (dir.startsWith(this.root + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or gone): stop
      }
      dir = dirname(dir);
    }
  }
}

function startsWithMagic(bytes: Uint8Array): boolean {
  return bytes.length >= COMPOSITE_MAGIC.length && Buffer.from(bytes.buffer, bytes.byteOffset, COMPOSITE_MAGIC.length).toString('latin1') === COMPOSITE_MAGIC;
}

/** A validated descriptor (names cannot leave the key's directory), or undefined. */
function parseComposite(bytes: Uint8Array): Composite | undefined {
  if (!startsWithMagic(bytes)) return undefined;
  let c: Composite;
  try {
    c = JSON.parse(Buffer.from(bytes).subarray(COMPOSITE_MAGIC.length).toString('utf8')) as Composite;
  } catch {
    return undefined;
  }
  if (typeof c !== 'object' || c === null || typeof c.dir !== 'string' || !DATA_DIR.test(c.dir) || !Array.isArray(c.parts)) return undefined;
  for (const p of c.parts as unknown[]) {
    const q = p as { file?: unknown; size?: unknown };
    if (typeof q !== 'object' || q === null || typeof q.file !== 'string' || !PART_FILE.test(q.file) || !Number.isSafeInteger(q.size) || (q.size as number) < 0) return undefined;
  }
  return c;
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Sidecar;
  } catch {
    return undefined;
  }
}

/** Temp file in `dir`, fsync, rename to `path`, and (unless told not to) fsync `dir`. */
async function writeAtomic(dir: string, path: string, data: Uint8Array, syncDir = true): Promise<void> {
  const tmp = join(dir, `${RESERVED}tmp-${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (syncDir) await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function keyConflict(key: string): PermanentStoreError {
  return new PermanentStoreError(`key ${key} conflicts with an existing object or key prefix in the local store`, 'KEY_CONFLICT');
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Translate a file-system error into the store's typed errors. */
function mapFsError(err: unknown, key: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = typeof err === 'object' && err !== null ? String((err as { code?: unknown }).code ?? '') : '';
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
      return new NotFoundError(key);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new AccessDeniedError(`local store: permission denied for ${key} (${code})`, { cause: err });
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
    case 'EINTR':
    case 'ETIMEDOUT':
      return new TransientStoreError(`local store: temporary failure for ${key} (${code})`, { cause: err });
    default:
      return new PermanentStoreError(`local store: I/O error for ${key} (${code || 'unknown'})`, 'IO', { cause: err });
  }
}

/** The part directory of the composite object an upload completes into. */
function dataDirName(uploadId: string): string {
  return `${RESERVED}mp-${uploadId}`;
}

/** Whether a committed composite holds exactly these part files, in order. */
function sameParts(comp: Composite, chosen: readonly { file: string; size: number }[]): boolean {
  return comp.parts.length === chosen.length && comp.parts.every((p, i) => p.file === chosen[i]!.file && p.size === chosen[i]!.size);
}
