/**
 * `ObjectStore` on a local directory (`file:///dir`): a USB disk, a NAS
 * mount, or a directory another tool syncs elsewhere.
 *
 * The directory is a plain copy of a bucket (layout 2, docs/FORMAT.md
 * section 2): `cp -r`/`rsync` of it to another disk (ext4, exFAT, NFS, SMB),
 * `aws s3 sync` of it into a bucket (`--exclude '*.zbk-*'`), and of a
 * bucket into a directory, give a working repository. Under the root:
 *   <key>                          the object's bytes, exactly (keys map to relative paths)
 *   <key>.zbk-meta.json            sidecar {"v":2,"storageClass","metadata","etag","size","fingerprint"}
 *   .zbk-uploads/<id>/upload.json  multipart upload: key, class, metadata, initiated
 *   .zbk-uploads/<id>/<nnnnn>.<etag>.<sha256hex>  one file per part (name = its identity)
 *   **∕.zbk-tmp-*                  temp files of writes in progress (same directory
 *                                  as the target, so the final rename is atomic)
 *   .zbk-layout                    "2\n": the layout version (absent in a bare copy of a bucket)
 *   .zbk-migrate.lock              only while a layout-1 store is being converted
 *
 * No hard links, no descriptors, no inode numbers. The sidecar's
 * `fingerprint` is the lowercase hex SHA-256 of the decimal size in ASCII,
 * "\n", the first min(4096, size) bytes and the last min(4096, size) bytes
 * of the data file. A sidecar *describes* the data file when its size equals
 * the file's and its fingerprint matches; only then do `head` (and the
 * idempotence check of a repeated complete) believe it. A missing,
 * unparseable or non-describing sidecar (a torn write, a copy made without
 * sidecars such as `aws s3 sync s3://bucket DIR`) leaves the file an object
 * all the same: `head` reports its size, STANDARD, no ETag, no metadata.
 * `list` takes the class from a sidecar whose size matches, without reading
 * the fingerprint (listing stays one stat and one small read per object).
 * A torn write is thus detected by content; one that replaces an object by
 * another of the same size with the same first and last 4 KiB is not (zbk's
 * sealed objects start with a random nonce prefix).
 *
 * Every write goes data → temp file → fsync → rename over the key, then the
 * sidecar the same way, then fsync of the directory. A completed multipart
 * upload is copied (8 MiB buffer) from its part files into the temp file and
 * committed like a put; the upload goes only after its object is committed,
 * its record first, so a crash while it is removed leaves an upload that is
 * gone (NoSuchUpload), never one missing some parts. A crash before the data
 * rename leaves the old object and the upload; after it, a repeated complete
 * copies again unless the object is already described by a sidecar with this
 * upload's ETag and size, in which case it only removes the upload (after
 * setting the upload's class and metadata in the sidecar if it has others:
 * a layout-1 store converted after a complete torn before its sidecar). Part
 * files carry their ETag and checksum in their names, so one rename makes a
 * part durable with its identity and a new instance lists parts from disk.
 *
 * Layout 1 (older zbk: a completed upload as a descriptor file
 * `zbk-local-composite-v1\n` + JSON naming hard-linked part files in a
 * `.zbk-mp-<id>/` directory beside the key; sidecars `v: 1` recording the
 * data file's inode) is converted on first use of an instance (every public
 * method awaits `ready`; with the marker present, one read of its 2 bytes).
 * Without the marker the tree is walked once under the lock `.zbk-migrate.lock`
 * (`wx`, holding "<pid> <host>"; a dead pid's lock is taken over; while a
 * live process holds it, the marker is polled up to 10 minutes, then
 * TransientStoreError): each descriptor's parts are concatenated into a temp
 * file, its size checked, its v2 sidecar renamed in place first and then
 * the data (so a kill between the two leaves the descriptor, and the re-run
 * finds the metadata in the v2 sidecar that describes what it builds), then
 * its `.zbk-mp-*` directory goes; a v1 sidecar of a plain file becomes v2
 * when its inode and size match the file (else it is stale and deleted);
 * leftover temp files and unreferenced `.zbk-mp-*` directories are removed;
 * then the marker is written. Every step is idempotent, so a killed
 * conversion is finished by the next open. A descriptor whose part files are
 * missing or have other sizes is left as it is (its `.zbk-mp-*` directory
 * too): the object then has the descriptor's size, which `zbk verify`
 * reports. Uploads in flight are untouched (same format in both layouts).
 * Two processes taking over the same dead lock at the same instant can
 * both convert; the steps being idempotent, the cost is work done twice.
 * A layout-1 store on a read-only directory is refused with a one-line
 * command that converts a writable copy. A directory without the marker
 * and without layout-1 artifacts (new, or a copy of a bucket) gets the
 * marker when writable (at the latest on first write) and is used
 * read-only without it.
 *
 * Objects are never archived: `requestRestore` answers 'not-archived' and
 * `head` reports `{ state: 'not-archived' }` whatever class was recorded.
 *
 * Two limits of a file system: a key cannot be both an object and a
 * "directory" of other keys (`a` and `a/b`) — the second write fails with
 * PermanentStoreError 'KEY_CONFLICT'; and segments starting with `.zbk-` or
 * keys ending in `.zbk-meta.json` are reserved ('INVALID_KEY').
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Dirent, type Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type {
  ByteRange,
  ListEntry,
  MultipartUploadInfo,
  ObjectInfo,
  ObjectStore,
  PutCondition,
  PutOptions,
  RestoreOutcome,
  RestoreTier,
  UploadedPart,
} from './object-store.js';
import { AccessDeniedError, NoSuchUploadError, NotFoundError, PermanentStoreError, PreconditionFailedError, StoreError, TransientStoreError } from './errors.js';
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
const LAYOUT_FILE = '.zbk-layout';
const LAYOUT = '2\n';
const LOCK_FILE = '.zbk-migrate.lock';
const UPLOAD_ID = /^[0-9a-f]{32}$/;
const PART_FILE = /^(\d{5})\.([0-9a-f]{32})\.([0-9a-f]{64})$/;
/** Bytes from each end of the data file that go into a sidecar's fingerprint. */
const FINGERPRINT_EDGE = 4096;
const COPY_BUFFER = 8 * 1024 * 1024;
const MIGRATE_WAIT_MS = 10 * 60_000;
const MIGRATE_POLL_MS = 250;
/** An empty or garbled lock younger than this may be one whose owner is writing its pid. */
const LOCK_GRACE_MS = 10_000;

// Layout 1, read only by the conversion.
const V1_DATA_DIR = /^\.zbk-mp-[0-9a-f]{32}$/;
const V1_MAGIC = 'zbk-local-composite-v1\n';
/** A v1 descriptor is at most ~100 bytes per part; anything larger is plain data. */
const V1_MAX_DESCRIPTOR = 2 * 1024 * 1024;

/** Steps of the layout-1 conversion a test can fail (a throw there acts like a kill or an I/O error). */
export type MigrateStep =
  /** Before the lock file is created; an errno error thrown here counts as that creation's (EROFS: read-only). */
  | 'lock'
  /** Before a data file (at `path`) is looked at. */
  | 'object'
  /** A descriptor's v2 sidecar is in place, its data not yet renamed over the descriptor. */
  | 'composite-sidecar';

export interface LocalStoreOptions {
  /** Minimum size of all parts but the last at complete (default 5 MiB, like S3). */
  minPartSize?: number;
  /** Tests only: called inside complete after the data temp file is written, before its rename. */
  testHookBeforeCommit?: () => Promise<void> | void;
  /** Tests only: called at the steps of a layout-1 conversion. */
  testHookMigrate?: (step: MigrateStep, path: string) => Promise<void> | void;
  /** How long to wait for another process converting the store (default 10 minutes). */
  migrateWaitMs?: number;
}

interface ObjectMeta {
  storageClass: string;
  metadata: Record<string, string>;
  etag: string;
}

interface Sidecar extends ObjectMeta {
  v: 2;
  size: number;
  /** See the module comment. */
  fingerprint: string;
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

/** Conversions running in this process, by root, so instances over one directory share one. */
const migrations = new Map<string, Promise<boolean>>();

export class LocalStore implements ObjectStore {
  readonly url: string;
  readonly root: string;
  readonly minPartSize: number;
  private readonly testHookBeforeCommit: (() => Promise<void> | void) | undefined;
  private readonly testHookMigrate: ((step: MigrateStep, path: string) => Promise<void> | void) | undefined;
  private readonly migrateWaitMs: number;
  private opened: Promise<void> | undefined;
  /** The marker still has to be written (the root was missing or not writable at open). */
  private markerPending = false;
  private markerWrite: Promise<void> | undefined;

  /** @param dir absolute path of the store's directory (created on first write). */
  constructor(dir: string, options: LocalStoreOptions = {}) {
    this.root = resolve(dir);
    this.url = pathToFileURL(this.root).href;
    this.minPartSize = options.minPartSize ?? DEFAULT_MIN_PART_SIZE;
    this.testHookBeforeCommit = options.testHookBeforeCommit;
    this.testHookMigrate = options.testHookMigrate;
    this.migrateWaitMs = options.migrateWaitMs ?? MIGRATE_WAIT_MS;
  }

  /** Atomic, durable, idempotent. */
  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.ready();
    const path = this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    await this.ensureMarker(key);
    await this.mkdirFor(key, path);
    await this.commitObject(key, path, body.length, (fh) => fh.writeFile(body), { storageClass, metadata, etag: md5Hex(body) });
  }

  /**
   * Conditional put: the check and the write run under a lock file beside
   * the key (`.zbk-lock-<name>`, created exclusively), so of two writers with
   * one condition only one writes — also across processes and machines
   * sharing the directory, where the file system honours O_EXCL (local disks,
   * NFSv3+). A lock older than LOCK_STALE_MS is a crashed writer's and taken.
   */
  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    await this.ready();
    const path = this.pathOf(key);
    await this.ensureMarker(key);
    await this.mkdirFor(key, path);
    const lock = join(dirname(path), `${RESERVED}lock-${basename(path)}`);
    await takeLockFile(lock, key);
    try {
      let etag: string | undefined;
      let exists = true;
      try {
        etag = (await this.head(key)).etag;
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        exists = false;
      }
      if ('ifNoneMatch' in condition ? exists : etag === undefined || etag !== condition.ifMatch) throw new PreconditionFailedError(key);
      await this.put(key, body, options);
      return md5Hex(body);
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    await this.ready();
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
    await this.ready();
    const path = this.pathOf(key);
    try {
      return new Uint8Array(await readFile(path));
    } catch (err) {
      throw mapFsError(err, key);
    }
  }

  /**
   * Size from the data file; class, ETag and metadata from the sidecar when
   * it describes the data file, else STANDARD, no ETag and no metadata.
   * @throws NotFoundError
   */
  async head(key: string): Promise<ObjectInfo> {
    await this.ready();
    const path = this.pathOf(key);
    let st: Stats;
    let side: Sidecar | undefined;
    try {
      ({ st, side } = await inspect(path));
    } catch (err) {
      throw mapFsError(err, key);
    }
    return {
      key,
      size: st.size,
      storageClass: side?.storageClass ?? 'STANDARD',
      lastModified: st.mtime,
      ...(side ? { etag: side.etag } : {}),
      metadata: { ...side?.metadata },
      restore: { state: 'not-archived' },
    };
  }

  async *list(prefix: string): AsyncIterable<ListEntry> {
    await this.ready();
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
    await this.ready();
    const paths = keys.map((k) => [k, this.pathOf(k)] as const);
    for (const [key, path] of paths) {
      for (const p of [path, path + META_SUFFIX]) {
        try {
          await unlink(p);
        } catch (err) {
          if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR') && !isErrno(err, 'EISDIR')) throw mapFsError(err, key);
        }
      }
      await this.pruneDirs(dirname(path));
    }
  }

  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    await this.ready();
    this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    await this.ensureMarker(key);
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
    await this.ready();
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
    await this.ready();
    const dir = await this.uploadDir(key, uploadId);
    return (await this.diskParts(key, uploadId, dir)).map(({ partNumber, size, etag, checksumSha256 }) => ({ partNumber, size, etag, checksumSha256 }));
  }

  /**
   * Copies the chosen part files into one temp file and commits it like a
   * put (one pass over the bytes: the price of a directory that is a plain
   * copy of a bucket), then removes the upload. Idempotent after a crash: an
   * object already described by a sidecar with this upload's ETag and size
   * is not copied again (only its sidecar made the upload's, if it is not).
   */
  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    await this.ready();
    const dir = await this.uploadDir(key, uploadId);
    const rec = await this.uploadRecord(key, uploadId, dir);
    const stored = new Map((await this.diskParts(key, uploadId, dir)).map((p) => [p.partNumber, p]));
    const chosen = checkCompleteParts(parts, stored, this.minPartSize);
    const path = this.pathOf(key);
    await this.ensureMarker(key);
    await this.mkdirFor(key, path);
    const size = chosen.reduce((n, p) => n + p.size, 0);
    const etag = multipartEtag(chosen.map((p) => p.etag));
    const done = await committedSidecar(path, etag, size);
    if (done && (done.storageClass !== rec.storageClass || JSON.stringify(sorted(done.metadata)) !== JSON.stringify(sorted(rec.metadata)))) {
      // The bytes are this upload's (its ETag names the parts) under another sidecar: a layout-1
      // complete torn before its sidecar landed, converted without it. Give it the upload's.
      const side: Sidecar = { ...done, storageClass: rec.storageClass, metadata: rec.metadata };
      try {
        await writeAtomic(dirname(path), path + META_SUFFIX, Buffer.from(JSON.stringify(side)));
      } catch (err) {
        throw mapFsError(err, key);
      }
    } else if (!done) {
      const fill = async (fh: FileHandle): Promise<void> => {
        try {
          await concatFiles(fh, chosen.map((p) => join(dir, p.file)));
        } catch (err) {
          if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
          throw err;
        }
      };
      const meta = { storageClass: rec.storageClass, metadata: rec.metadata, etag };
      await this.commitObject(key, path, size, fill, meta, { beforeRename: this.testHookBeforeCommit });
    }
    await this.removeUpload(key, dir);
  }

  /** Idempotent: an unknown upload id is not an error. */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    await this.ready();
    this.pathOf(key);
    if (!UPLOAD_ID.test(uploadId)) return;
    const dir = join(this.root, UPLOADS, uploadId);
    try {
      const rec = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as UploadRecord;
      if (rec.key !== key) return;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      if (!(err instanceof SyntaxError)) throw mapFsError(err, key);
    }
    await this.removeUpload(key, dir);
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    await this.ready();
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
    await this.ready();
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
   * Write the data through `fill` into a temp file beside the key, fsync,
   * rename it over the key, then the sidecar the same way (or, with
   * `sidecarFirst`, the sidecar before the data: the conversion's order),
   * then fsync the directory. `meta` may depend on the fingerprint of what
   * was written.
   */
  private async commitObject(
    key: string,
    path: string,
    size: number,
    fill: (fh: FileHandle) => Promise<void>,
    meta: ObjectMeta | ((fingerprint: string) => ObjectMeta),
    how: { beforeRename?: (() => Promise<void> | void) | undefined; sidecarFirst?: boolean } = {},
  ): Promise<void> {
    const dir = dirname(path);
    const tmp = tempPath(dir);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, 'wx+', 0o600);
      await fill(fh);
      await fh.sync();
      const st = await fh.stat();
      if (st.size !== size) throw new PermanentStoreError(`local store wrote ${st.size} bytes for ${key}, expected ${size}`, 'IO');
      const fingerprint = (await fingerprintOf(fh, size))!;
      await fh.close();
      fh = undefined;
      const m = typeof meta === 'function' ? meta(fingerprint) : meta;
      const side: Sidecar = { v: 2, storageClass: m.storageClass, metadata: m.metadata, etag: m.etag, size, fingerprint };
      const writeSidecar = (): Promise<void> => writeAtomic(dir, path + META_SUFFIX, Buffer.from(JSON.stringify(side)), false);
      if (how.sidecarFirst) {
        await writeSidecar();
        await this.testHookMigrate?.('composite-sidecar', path);
      }
      await how.beforeRename?.();
      await rename(tmp, path);
      if (!how.sidecarFirst) await writeSidecar();
      await fsyncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (err instanceof StoreError || !hasErrno(err)) throw err;
      if (isErrno(err, 'EISDIR')) throw keyConflict(key);
      throw mapFsError(err, key);
    }
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
          // The class of a sidecar of the right size, without checking its fingerprint
          // (that would read 8 KiB of every object): head is the authority.
          const side = parseSidecar(await readFile(join(abs, e.name + META_SUFFIX), 'utf8').catch(() => undefined));
          const storageClass = side && side.size === st.size ? side.storageClass : 'STANDARD';
          out.push({ key, size: st.size, storageClass, lastModified: st.mtime });
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

  // ---- Layout marker and the conversion of layout 1 ------------------------

  /** Settles once the directory is in layout 2 (or readable as such); a failure is retried by the next call. */
  private ready(): Promise<void> {
    if (!this.opened) {
      const p = this.openLayout();
      this.opened = p;
      p.catch(() => {
        if (this.opened === p) this.opened = undefined;
      });
    }
    return this.opened;
  }

  private async openLayout(): Promise<void> {
    if (await this.hasMarker()) return;
    try {
      if (!(await stat(this.root)).isDirectory()) return; // every operation will say what is wrong
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw mapFsError(err, LAYOUT_FILE);
      this.markerPending = true; // a new store: nothing to convert
      return;
    }
    let run = migrations.get(this.root);
    if (!run) {
      run = this.migrate().finally(() => migrations.delete(this.root));
      migrations.set(this.root, run);
    }
    this.markerPending = await run;
  }

  /**
   * One read of the 2-byte marker (not only a stat: a marker of a later
   * layout has the same size). @throws PermanentStoreError 'LAYOUT_UNKNOWN'
   */
  private async hasMarker(): Promise<boolean> {
    const marker = join(this.root, LAYOUT_FILE);
    try {
      const text = await readFile(marker, 'latin1');
      if (text === LAYOUT || text.trim() === LAYOUT.trim()) return true;
      throw new PermanentStoreError(
        `local store ${this.root} has layout ${JSON.stringify(text.trim().slice(0, 20))} (${marker}); this zbk reads layout 2: use the zbk that wrote it`,
        'LAYOUT_UNKNOWN',
      );
    } catch (err) {
      if (err instanceof StoreError) throw err;
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
      throw mapFsError(err, LAYOUT_FILE);
    }
  }

  /** Write the marker if the open could not (new directory, or read-only then). */
  private async ensureMarker(key: string): Promise<void> {
    if (!this.markerPending) return;
    this.markerWrite ??= (async () => {
      try {
        await mkdir(this.root, { recursive: true });
        await writeAtomic(this.root, join(this.root, LAYOUT_FILE), Buffer.from(LAYOUT));
        this.markerPending = false;
      } finally {
        this.markerWrite = undefined;
      }
    })();
    try {
      await this.markerWrite;
    } catch (err) {
      throw mapFsError(err, key);
    }
  }

  /** Convert if needed; true when the marker is still to be written (read-only directory without layout-1 artifacts). */
  private async migrate(): Promise<boolean> {
    try {
      return await this.convertUnderLock();
    } catch (err) {
      throw hasErrno(err) ? mapFsError(err, LAYOUT_FILE) : err;
    }
  }

  private async convertUnderLock(): Promise<boolean> {
    const lock = join(this.root, LOCK_FILE);
    const held = await this.acquireLock(lock);
    if (held === 'done') return false;
    if (held === 'read-only') {
      if (await new Conversion(this.root, false).run()) throw oldLayoutError(this.root);
      return true;
    }
    try {
      if (await this.hasMarker()) return false;
      await new Conversion(this.root, true, this.testHookMigrate, (key, path, size, fill, meta) =>
        this.commitObject(key, path, size, fill, meta, { sidecarFirst: true }),
      ).run();
      await writeAtomic(this.root, join(this.root, LAYOUT_FILE), Buffer.from(LAYOUT));
      return false;
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  /**
   * Take `.zbk-migrate.lock`: 'held'; 'done' when the marker appeared while
   * another process held it; 'read-only' when the directory is not writable.
   */
  private async acquireLock(lock: string): Promise<'held' | 'done' | 'read-only'> {
    const deadline = Date.now() + this.migrateWaitMs;
    const mine = `${process.pid} ${hostname()}\n`;
    for (;;) {
      try {
        await this.testHookMigrate?.('lock', lock);
        await writeNew(lock, Buffer.from(mine), 0o644);
        return 'held';
      } catch (err) {
        if (isErrno(err, 'EROFS') || isErrno(err, 'EACCES') || isErrno(err, 'EPERM')) return 'read-only';
        if (!isErrno(err, 'EEXIST')) throw err; // mapped by migrate()
      }
      const holder = await readLock(lock);
      if (holder && !holder.alive) {
        await takeOver(lock, holder.text);
        continue;
      }
      if (await this.hasMarker()) return 'done';
      if (Date.now() >= deadline) {
        throw new TransientStoreError(
          `local store ${this.root}: another zbk (${holder?.text.trim() || 'unknown pid'}) is converting it to the current layout and has not finished in ${Math.round(this.migrateWaitMs / 1000)} s; if no zbk is running, remove ${lock}`,
        );
      }
      await new Promise((r) => setTimeout(r, MIGRATE_POLL_MS));
    }
  }
}

type CommitFn = (key: string, path: string, size: number, fill: (fh: FileHandle) => Promise<void>, meta: (fingerprint: string) => ObjectMeta) => Promise<void>;

/**
 * One walk over the tree (outside `.zbk-uploads`) for layout-1 artifacts:
 * converting them (`convert`), or (read-only) only finding whether there is
 * any. `run` answers whether one was found.
 */
class Conversion {
  private found = false;
  private readonly dataDirs: string[] = [];
  /** `.zbk-mp-*` directories of descriptors that could not be converted (missing parts): kept. */
  private readonly kept = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly convert: boolean,
    private readonly hook?: (step: MigrateStep, path: string) => Promise<void> | void,
    private readonly commit?: CommitFn,
  ) {}

  async run(): Promise<boolean> {
    await this.dir(this.root);
    if (this.convert) {
      for (const d of this.dataDirs) if (!this.kept.has(d)) await rm(d, { recursive: true, force: true });
    }
    return this.found;
  }

  /** False once a read-only scan has its answer. */
  private more(): boolean {
    return this.convert || !this.found;
  }

  private async dir(abs: string): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw err;
    }
    const names = new Set(entries.map((e) => e.name));
    for (const e of entries) {
      if (!this.more()) return;
      const path = join(abs, e.name);
      if (e.name.startsWith(RESERVED)) {
        if (e.isDirectory() && V1_DATA_DIR.test(e.name)) {
          this.found = true;
          this.dataDirs.push(path);
        } else if (this.convert && e.isFile() && e.name.startsWith(`${RESERVED}tmp-`)) {
          await unlink(path).catch(() => undefined); // a killed write's (nothing else writes now)
        }
        continue; // .zbk-uploads (same in both layouts), the marker, the lock
      }
      if (e.name.endsWith(META_SUFFIX)) {
        // A sidecar without its data file (a delete killed between the two unlinks).
        if (!names.has(e.name.slice(0, -META_SUFFIX.length)) && (await readV1Sidecar(path))) {
          this.found = true;
          if (this.convert) await unlink(path);
        }
        continue;
      }
      if (e.isDirectory()) await this.dir(path);
      else if (e.isFile()) await this.object(path);
    }
  }

  private async object(path: string): Promise<void> {
    await this.hook?.('object', path);
    let st: Stats;
    let desc: V1Descriptor | undefined;
    try {
      st = await stat(path);
      desc = st.size >= V1_MAGIC.length && st.size <= V1_MAX_DESCRIPTOR ? await readDescriptor(path) : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // deleted meanwhile (a read-only scan runs beside writers)
      throw err;
    }
    const sidecar = path + META_SUFFIX;
    if (desc) {
      this.found = true;
      if (this.convert) await this.composite(path, desc, await readFile(sidecar, 'utf8').catch(() => undefined));
      return;
    }
    const v1 = await readV1Sidecar(sidecar);
    if (!v1) return;
    this.found = true;
    if (!this.convert) return;
    if (v1.ino === st.ino && v1.size === st.size && !v1.composite) {
      const fingerprint = await fingerprintFile(path, st.size);
      const side: Sidecar = { v: 2, storageClass: v1.storageClass, metadata: v1.metadata, etag: v1.etag, size: st.size, fingerprint };
      await writeAtomic(dirname(path), sidecar, Buffer.from(JSON.stringify(side)));
    } else {
      // It describes another write than the file there (torn): stale.
      await unlink(sidecar);
      await fsyncDir(dirname(path));
    }
  }

  /** A descriptor → the plain file of its parts, with a v2 sidecar; then its part directory goes. */
  private async composite(path: string, desc: V1Descriptor, sideText: string | undefined): Promise<void> {
    const partsDir = join(dirname(path), desc.dir);
    const files = desc.parts.map((p) => join(partsDir, p.file));
    for (const [i, f] of files.entries()) {
      const size = await stat(f).then((s) => s.size, () => -1);
      if (size !== desc.parts[i]!.size) {
        this.kept.add(partsDir); // damaged before the conversion: left for a human (and zbk verify)
        return;
      }
    }
    const size = desc.parts.reduce((n, p) => n + p.size, 0);
    const v1 = parseV1Sidecar(sideText);
    const v2 = parseSidecar(sideText);
    const meta = (fingerprint: string): ObjectMeta => {
      if (v1?.composite && v1.size === size) return v1;
      // A conversion killed after this sidecar's rename: it describes what was just built.
      if (v2 && v2.size === size && v2.fingerprint === fingerprint) return v2;
      return { storageClass: 'STANDARD', metadata: {}, etag: multipartEtag(desc.parts.map((p) => PART_FILE.exec(p.file)![2]!)) };
    };
    const key = relative(this.root, path).split(sep).join('/');
    await this.commit!(key, path, size, (fh) => concatFiles(fh, files), meta);
    await rm(partsDir, { recursive: true, force: true });
  }
}

interface V1Descriptor {
  dir: string;
  parts: { file: string; size: number }[];
}

interface V1Sidecar extends ObjectMeta {
  v: 1;
  size: number;
  ino: number;
  composite?: true;
}

/** The layout-1 descriptor in the file (read whole only when it starts with the magic line), or undefined. */
async function readDescriptor(path: string): Promise<V1Descriptor | undefined> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(V1_MAGIC.length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < head.length || head.toString('latin1') !== V1_MAGIC) return undefined;
    return parseDescriptor(await fh.readFile());
  } finally {
    await fh.close();
  }
}

/** A valid layout-1 descriptor (names cannot leave the key's directory), or undefined. */
function parseDescriptor(bytes: Buffer): V1Descriptor | undefined {
  let c: V1Descriptor;
  try {
    c = JSON.parse(bytes.subarray(V1_MAGIC.length).toString('utf8')) as V1Descriptor;
  } catch {
    return undefined;
  }
  if (typeof c !== 'object' || c === null || typeof c.dir !== 'string' || !V1_DATA_DIR.test(c.dir) || !Array.isArray(c.parts)) return undefined;
  for (const p of c.parts as unknown[]) {
    const q = p as { file?: unknown; size?: unknown };
    if (typeof q !== 'object' || q === null || typeof q.file !== 'string' || !PART_FILE.test(q.file) || !Number.isSafeInteger(q.size) || (q.size as number) < 0) return undefined;
  }
  return c;
}

function objectMeta(o: Record<string, unknown>): boolean {
  const m = o.metadata;
  return (
    typeof o.storageClass === 'string' &&
    typeof o.etag === 'string' &&
    Number.isSafeInteger(o.size) &&
    typeof m === 'object' &&
    m !== null &&
    !Array.isArray(m) &&
    Object.values(m).every((x) => typeof x === 'string')
  );
}

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as unknown;
    return typeof o === 'object' && o !== null ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A layout-2 sidecar, or undefined for anything else. */
function parseSidecar(text: string | undefined): Sidecar | undefined {
  const o = parseJson(text);
  return o && o.v === 2 && objectMeta(o) && typeof o.fingerprint === 'string' ? (o as unknown as Sidecar) : undefined;
}

function parseV1Sidecar(text: string | undefined): V1Sidecar | undefined {
  const o = parseJson(text);
  return o && o.v === 1 && objectMeta(o) && typeof o.ino === 'number' ? (o as unknown as V1Sidecar) : undefined;
}

async function readV1Sidecar(path: string): Promise<V1Sidecar | undefined> {
  return parseV1Sidecar(await readFile(path, 'utf8').catch(() => undefined));
}

/** The data file's stat and its sidecar when that describes it (fs errors are thrown). */
async function inspect(path: string): Promise<{ st: Stats; side: Sidecar | undefined }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    const side = parseSidecar(await readFile(path + META_SUFFIX, 'utf8').catch(() => undefined));
    if (!side || side.size !== st.size) return { st, side: undefined };
    return { st, side: (await fingerprintOf(fh, st.size)) === side.fingerprint ? side : undefined };
  } finally {
    await fh.close();
  }
}

/** The sidecar of the object at `path` when it describes it with this ETag and size (the object is committed). */
async function committedSidecar(path: string, etag: string, size: number): Promise<Sidecar | undefined> {
  try {
    const { side } = await inspect(path);
    return side !== undefined && side.etag === etag && side.size === size ? side : undefined;
  } catch {
    return undefined;
  }
}

function sorted(metadata: Record<string, string>): [string, string][] {
  return Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Lowercase hex SHA-256 of: the size in decimal ASCII, "\n", the first
 * min(4096, size) bytes, the last min(4096, size) bytes. Undefined if the
 * file is shorter than `size` (changing under us).
 */
async function fingerprintOf(fh: FileHandle, size: number): Promise<string | undefined> {
  const n = Math.min(FINGERPRINT_EDGE, size);
  const h = createHash('sha256').update(`${size}\n`);
  for (const pos of [0, size - n]) {
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) return undefined;
      got += bytesRead;
    }
    h.update(buf);
  }
  return h.digest('hex');
}

async function fingerprintFile(path: string, size: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const fp = await fingerprintOf(fh, size);
    if (fp === undefined) throw new PermanentStoreError(`${path} changed while it was converted`, 'IO');
    return fp;
  } finally {
    await fh.close();
  }
}

/** Append the files, in order, to `fh` (one 8 MiB buffer). */
async function concatFiles(fh: FileHandle, files: readonly string[]): Promise<void> {
  const buf = Buffer.allocUnsafe(COPY_BUFFER);
  for (const file of files) {
    const src = await open(file, 'r');
    try {
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        let off = 0;
        while (off < bytesRead) off += (await fh.write(buf, off, bytesRead - off)).bytesWritten;
      }
    } finally {
      await src.close();
    }
  }
}

/** The lock's text and whether its owner may still run (another host's: assumed alive). */
async function readLock(lock: string): Promise<{ text: string; alive: boolean } | undefined> {
  let text: string;
  let mtimeMs: number;
  try {
    [text, mtimeMs] = await Promise.all([readFile(lock, 'utf8'), stat(lock).then((s) => s.mtimeMs)]);
  } catch {
    return undefined; // released meanwhile
  }
  const m = /^(\d+) (\S*)\n$/.exec(text);
  if (!m) return { text, alive: Date.now() - mtimeMs < LOCK_GRACE_MS };
  const pid = Number(m[1]);
  if (m[2] !== hostname()) return { text, alive: true };
  // Our own pid: conversions in this process are shared per root, so it is an earlier process's.
  if (pid === process.pid) return { text, alive: false };
  try {
    process.kill(pid, 0);
    return { text, alive: true };
  } catch (err) {
    return { text, alive: !isErrno(err, 'ESRCH') };
  }
}

/**
 * Move a dead owner's lock aside. If what was moved is not that lock (a
 * process took it over and locked it meanwhile), put it back.
 */
async function takeOver(lock: string, deadText: string): Promise<void> {
  const aside = `${lock}.stale-${randomBytes(8).toString('hex')}`;
  try {
    await rename(lock, aside);
  } catch {
    return; // gone meanwhile
  }
  const moved = await readFile(aside, 'utf8').catch(() => deadText);
  if (moved !== deadText) await rename(aside, lock).catch(() => undefined);
  else await unlink(aside).catch(() => undefined);
}

function oldLayoutError(root: string): AccessDeniedError {
  const copy = '/var/tmp/zbk-store';
  return new AccessDeniedError(
    `local store ${root} uses the layout of an older zbk and is not writable here; convert a writable copy once: cp -r '${root}' ${copy} && zbk status (with [store] url = "file://${copy}")`,
  );
}

function tempPath(dir: string): string {
  return join(dir, `${RESERVED}tmp-${randomBytes(8).toString('hex')}`);
}

/** Create `path` (it must not exist: EEXIST), write `data`, fsync; on a failure after the create, remove it. */
async function writeNew(path: string, data: Uint8Array, mode: number): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
  await fh.close();
}

/** Temp file in `dir`, fsync, rename to `path`, and (unless told not to) fsync `dir`. */
async function writeAtomic(dir: string, path: string, data: Uint8Array, syncDir = true): Promise<void> {
  const tmp = tempPath(dir);
  await writeNew(tmp, data, 0o600);
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

/** An error from the file system (it carries an errno code), not one of ours or a test's. */
function hasErrno(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && !(err instanceof StoreError);
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

/** A lock file left by a writer that died is taken after this long (a conditional put takes milliseconds). */
const LOCK_STALE_MS = 30_000;

/** Create `lock` exclusively, waiting (up to ~10 s) while another writer holds it. */
async function takeLockFile(lock: string, key: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw mapFsError(err, key);
    }
    try {
      if (Date.now() - (await stat(lock)).mtimeMs > LOCK_STALE_MS) await unlink(lock);
    } catch {
      // released meanwhile
    }
    if (i >= 200) throw new TransientStoreError(`local store: ${key} is locked by another writer (${lock})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
