/**
 * `ObjectStore` on a local directory (`file:///dir`): a USB disk, a NAS
 * mount, or a directory another tool syncs elsewhere.
 *
 * The directory is a plain copy of a bucket (layout 2, docs/FORMAT.md
 * section 2): `cp -r`/`rsync` of it to another disk (ext4, exFAT, NFS, SMB),
 * `aws s3 sync` of it into a bucket (`--exclude '*.zbk-*'`), and of a
 * bucket into a directory, give a working repository. Under the root
 * (names in local/layout.ts):
 *   <key>                          the object's bytes, exactly (keys map to relative paths)
 *   <key>.zbk-meta.json            sidecar {"v":2,"storageClass","metadata","etag","size","fingerprint"}
 *   .zbk-uploads/<id>/upload.json  multipart upload: key, class, metadata, initiated, part size
 *   .zbk-uploads/<id>/placed.data  parts no larger than the caller's part size, each at its offset
 *   .zbk-uploads/<id>/<nnnnn>.<etag>.<sha256hex>.<size>.placed  empty: one placed part (name = its identity)
 *   .zbk-uploads/<id>/<nnnnn>.<etag>.<sha256hex>  one file per other part (name = its identity)
 *   **∕.zbk-tmp-*                  temp files of writes in progress (same directory
 *                                  as the target, so the final rename is atomic)
 *   .zbk-layout                    "2\n": the layout version (absent in a bare copy of a bucket)
 *   .zbk-migrate.lock              only while a layout-1 store is being converted
 *
 * No hard links, no descriptors, no inode numbers. `head` believes a sidecar
 * only when it describes the data file (its size and a fingerprint of the
 * file's first and last 4 KiB match, local/sidecar.ts); otherwise the file
 * is an object all the same, STANDARD, without ETag or metadata.
 *
 * Every write goes data → temp file → fsync → rename over the key, then the
 * sidecar the same way, then fsync of the directory (local/files.ts). A
 * multipart upload of equal parts (the caller's `partSize`, as zbk's volumes
 * are) is placed part by part into one file and completed by renaming that
 * file to the key (local/placed.ts: each byte written once); any other is
 * copied (8 MiB buffer) from its parts into the temp file and committed like
 * a put (local/uploads.ts has both forms). The upload goes only after
 * its object is committed, its record first, so a crash while it is removed
 * leaves an upload that is gone (NoSuchUpload), never one missing some parts.
 * A crash before the data rename leaves the old object and the upload; after
 * it, a repeated complete copies again unless the object is already
 * described by a sidecar with this upload's ETag and size, in which case it
 * only removes the upload (after setting the upload's class and metadata in
 * the sidecar if it has others: a layout-1 store converted after a complete
 * torn before its sidecar). Part files carry their ETag and checksum in their
 * names, so one rename makes a part durable with its identity and a new
 * instance lists parts from disk (local/uploads.ts).
 *
 * A store in layout 1 (older zbk) is converted on first use of an instance:
 * every public method awaits `ready`, which with the marker present is one
 * read of its 2 bytes (local/convert-v1.ts). A directory without the marker
 * and without layout-1 artifacts (new, or a copy of a bucket) gets the
 * marker when writable (at the latest on first write) and is used
 * read-only without it. A descriptor whose parts are missing or are not
 * regular files (a symlink to a file outside, a FIFO) is left as it is and
 * reported (`onWarning`, one line naming it).
 *
 * Objects are never archived: `requestRestore` answers 'not-archived' and
 * `head` and `listRestoreStates` report `{ state: 'not-archived' }` whatever
 * class was recorded.
 *
 * The directory may be writable by others than the machine (a NAS share, a
 * USB disk), so nothing in it is trusted to stay inside it (local/files.ts):
 * the root may be a symlink (resolved once, on first use: realpath), but
 * below it no link is followed — every file is opened O_NOFOLLOW|O_NONBLOCK
 * and must be a regular file, every directory from the root to a key (and
 * `.zbk-uploads/<id>`) is lstat'ed and must be a real one, missing ones are
 * made one mkdir at a time. A symlink where an object, sidecar, part file,
 * upload record or directory should be is PermanentStoreError
 * 'SYMLINK', a FIFO, socket or device 'NOT_A_REGULAR_FILE', for reads,
 * writes and deletes alike, the message naming the path in the store (a
 * write does not replace it either: it is tampering a human should see);
 * `list` and `listMultipartUploads` skip such entries (they are no objects)
 * but fail on a link where the directory they list should be. A lock file
 * is stale, and taken, when it is not a regular file, is dated more than a
 * minute ahead, or is older than its limit: 30 s for a conditional put's
 * `.zbk-lock-<name>`, 3 minutes for `.zbk-migrate.lock` whatever host it
 * names (its holder touches it every 30 s; another host's lock used to
 * count as alive, and one left there made every command wait 10 minutes).
 *
 * Two limits of a file system: a key cannot be both an object and a
 * "directory" of other keys (`a` and `a/b`) — the second write fails with
 * PermanentStoreError 'KEY_CONFLICT'; and segments starting with `.zbk-` or
 * keys ending in `.zbk-meta.json` are reserved ('INVALID_KEY').
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type {
  ByteRange,
  ListEntry,
  MultipartOptions,
  MultipartUploadInfo,
  ObjectInfo,
  ObjectStore,
  PutCondition,
  PutOptions,
  RestoreListEntry,
  RestoreOutcome,
  RestoreTier,
  UploadedPart,
  UploadPartOptions,
} from './object-store.js';
import { NoSuchUploadError, NotFoundError, PermanentStoreError, PreconditionFailedError, StoreError } from './errors.js';
import {
  DEFAULT_MIN_PART_SIZE,
  checkCompleteParts,
  compareKeys,
  md5Hex,
  multipartEtag,
  normalizePutOptions,
  pacedChunks,
  pacingStopped,
  resolveRange,
  validateKey,
  validatePartNumber,
  validatePrefix,
  validateRestoreDays,
  verifyChecksum,
} from './internal.js';
import { MIGRATE_LOCK_STALE_MS, MIGRATE_WAIT_MS, openLayout, type Migration, type MigrateStep } from './local/convert-v1.js';
import {
  concatFiles,
  existingEntry,
  fsyncDir,
  hasErrno,
  isErrno,
  keyConflict,
  mapFsError,
  openRegular,
  readOptional,
  readRegular,
  realDirs,
  takeLockFile,
  tempPath,
  writeAtomic,
} from './local/files.js';
import { LAYOUT, LAYOUT_FILE, META_SUFFIX, PLACED_DATA, RESERVED, UPLOADS, UPLOAD_ID } from './local/layout.js';
import { committedSidecar, fingerprintOf, inspect, parseSidecar, type ObjectMeta, type Sidecar } from './local/sidecar.js';
import { allPlaced, commitPlaced } from './local/placed.js';
import { diskParts, placedName, placePart, placingSize, readUploadRecord, removePartEntries, removeUpload, uploadPath, uploadRecord, type DiskPart, type UploadRecord } from './local/uploads.js';

export type { MigrateStep } from './local/convert-v1.js';

export interface LocalStoreOptions {
  /** Minimum size of all parts but the last at complete (default 5 MiB, like S3). */
  minPartSize?: number;
  /** Tests only: called inside complete after the data temp file is written, before its rename. */
  testHookBeforeCommit?: () => Promise<void> | void;
  /** Tests only: called at the steps of a layout-1 conversion. */
  testHookMigrate?: (step: MigrateStep, path: string) => Promise<void> | void;
  /** How long to wait for another process converting the store (default 10 minutes). */
  migrateWaitMs?: number;
  /** How long a `.zbk-migrate.lock` nobody touches stays another process's (default 3 minutes; tests). */
  migrateLockStaleMs?: number;
  /** One line about a layout-1 object left unconverted (default: `zbk: warning: …` on stderr). */
  onWarning?: (message: string) => void;
}

export class LocalStore implements ObjectStore {
  readonly url: string;
  /** The directory as given (absolute), for the URL. */
  readonly root: string;
  readonly minPartSize: number;
  /** The root's real path (realpath on first use, or once it is created): every path is named from it. */
  private base: string;
  private readonly testHookBeforeCommit: (() => Promise<void> | void) | undefined;
  private readonly testHookMigrate: ((step: MigrateStep, path: string) => Promise<void> | void) | undefined;
  /** What the conversion of a layout-1 directory needs from this instance. */
  private readonly migration: Migration;
  private opened: Promise<void> | undefined;
  /** The marker still has to be written (the root was missing or not writable at open). */
  private markerPending = false;
  private markerWrite: Promise<void> | undefined;

  /** @param dir absolute path of the store's directory (created on first write). */
  constructor(dir: string, options: LocalStoreOptions = {}) {
    this.root = resolve(dir);
    this.base = this.root;
    this.url = pathToFileURL(this.root).href;
    this.minPartSize = options.minPartSize ?? DEFAULT_MIN_PART_SIZE;
    this.testHookBeforeCommit = options.testHookBeforeCommit;
    this.testHookMigrate = options.testHookMigrate;
    this.migration = {
      waitMs: options.migrateWaitMs ?? MIGRATE_WAIT_MS,
      lockStaleMs: options.migrateLockStaleMs ?? MIGRATE_LOCK_STALE_MS,
      warn: options.onWarning ?? ((m) => void process.stderr.write(`zbk: warning: ${m}\n`)),
      hook: this.testHookMigrate,
      commit: (key, path, size, fill, meta) => this.commitObject(key, path, size, fill, meta, { sidecarFirst: true }),
    };
  }

  /** Atomic, durable, idempotent. */
  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.ready();
    const path = this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    await this.prepareWrite(key, path);
    await this.commitObject(key, path, body.length, (fh) => fh.writeFile(body), { storageClass, metadata, etag: md5Hex(body) });
  }

  /**
   * Conditional put: the check and the write run under a lock file beside
   * the key (`.zbk-lock-<name>`, created exclusively), so of two writers with
   * one condition only one writes — also across processes and machines
   * sharing the directory, where the file system honours O_EXCL (local disks,
   * NFSv3+). A lock older than 30 s is a crashed writer's and taken; so is
   * one dated more than a minute ahead, or one that is not a regular file
   * (local/files.ts takeLockFile).
   */
  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    await this.ready();
    const path = this.pathOf(key);
    await this.prepareWrite(key, path);
    const lock = join(dirname(path), `${RESERVED}lock-${basename(path)}`);
    await takeLockFile(this.base, lock, key);
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
    const path = await this.readPath(key);
    let fh: FileHandle;
    try {
      fh = await openRegular(this.base, path);
    } catch (err) {
      throw mapFsError(err, key);
    }
    try {
      const st = await fh.stat();
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
    const path = await this.readPath(key);
    try {
      return new Uint8Array(await readRegular(this.base, path));
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
    const path = await this.readPath(key);
    let st: Stats;
    let side: Sidecar | undefined;
    try {
      ({ st, side } = await inspect(this.base, path));
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

  /** The listing of `list`, every object `not-archived` (nothing here is ever archived). */
  async listRestoreStates(prefix: string): Promise<Map<string, RestoreListEntry>> {
    const out = new Map<string, RestoreListEntry>();
    for await (const e of this.list(prefix)) out.set(e.key, { size: e.size, storageClass: e.storageClass, restore: { state: 'not-archived' } });
    return out;
  }

  /** Idempotent; removes emptied directories (best effort). A symlink or special file at a key or its sidecar is not removed: SYMLINK / NOT_A_REGULAR_FILE. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    await this.ready();
    const paths = keys.map((k) => [k, this.pathOf(k)] as const);
    for (const [key, path] of paths) {
      try {
        if (!(await this.dirsExist(dirname(path)))) continue;
        for (const p of [path, path + META_SUFFIX]) {
          if ((await existingEntry(this.base, p))?.isFile()) await unlink(p);
        }
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw mapFsError(err, key);
      }
      await this.pruneDirs(dirname(path));
    }
  }

  async createMultipartUpload(key: string, options?: MultipartOptions): Promise<string> {
    await this.ready();
    this.pathOf(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    await this.ensureMarker(key);
    const uploadId = randomBytes(16).toString('hex');
    const dir = uploadPath(this.base, uploadId);
    const partSize = options?.partSize;
    const rec: UploadRecord = {
      key,
      storageClass,
      metadata,
      initiated: new Date().toISOString(),
      ...(partSize !== undefined && Number.isSafeInteger(partSize) && partSize > 0 ? { partSize } : {}),
    };
    try {
      await realDirs(this.base, dir, true);
      await writeAtomic(dir, join(dir, 'upload.json'), Buffer.from(JSON.stringify(rec)));
      await fsyncDir(dirname(dir));
    } catch (err) {
      throw mapFsError(err, key);
    }
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, sentChecksum?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    await this.ready();
    const { dir, rec } = await this.upload(key, uploadId);
    validatePartNumber(partNumber);
    const checksumSha256 = verifyChecksum(body, sentChecksum);
    // A part's ETag only has to identify its bytes: derive it from the SHA-256
    // just verified instead of paying for a second (MD5) pass over the part.
    const etag = Buffer.from(checksumSha256, 'base64').subarray(0, 16).toString('hex');
    const checksumHex = Buffer.from(checksumSha256, 'base64').toString('hex');
    const partSize = placingSize(rec);
    // Paced: the part's pieces are written as the bandwidth limit lets them go.
    const data = options?.pacer ? pacedChunks(body, options) : body;
    try {
      if (partSize !== undefined && body.length <= partSize) {
        await placePart(this.base, dir, partNumber, partSize, data, placedName(partNumber, etag, checksumHex, body.length));
      } else {
        const name = `${String(partNumber).padStart(5, '0')}.${etag}.${checksumHex}`;
        await writeAtomic(dir, join(dir, name), data);
        // Replacing a part number: drop the older entries of that number.
        await removePartEntries(dir, partNumber, name);
      }
    } catch (err) {
      const stopped = pacingStopped(options);
      if (stopped !== null) throw stopped;
      if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
      throw mapFsError(err, key);
    }
    return { partNumber, size: body.length, etag, checksumSha256 };
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    await this.ready();
    const { dir, rec } = await this.upload(key, uploadId);
    return (await diskParts(this.base, key, uploadId, dir, placingSize(rec))).map(({ partNumber, size, etag, checksumSha256 }) => ({ partNumber, size, etag, checksumSha256 }));
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
    const { dir, rec } = await this.upload(key, uploadId);
    const partSize = placingSize(rec);
    const stored = new Map((await diskParts(this.base, key, uploadId, dir, partSize)).map((p) => [p.partNumber, p]));
    const chosen = checkCompleteParts(parts, stored, this.minPartSize);
    const path = this.pathOf(key);
    await this.prepareWrite(key, path);
    const size = chosen.reduce((n, p) => n + p.size, 0);
    const etag = multipartEtag(chosen.map((p) => p.etag));
    const done = await committedSidecar(this.base, path, etag, size);
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
      const meta = { storageClass: rec.storageClass, metadata: rec.metadata, etag };
      if (allPlaced(chosen, partSize) && (await this.commitPlaced(key, uploadId, path, dir, chosen, stored, size, meta))) {
        await removeUpload(key, dir);
        return;
      }
      const placedData = join(dir, PLACED_DATA);
      const fill = async (fh: FileHandle): Promise<void> => {
        try {
          await concatFiles(fh, this.base, chosen.map((p) => (p.placedAt !== undefined ? { file: placedData, offset: p.placedAt, size: p.size } : join(dir, p.file))));
        } catch (err) {
          if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
          throw err;
        }
      };
      await this.commitObject(key, path, size, fill, meta, { beforeRename: this.testHookBeforeCommit });
    }
    await removeUpload(key, dir);
  }

  /** Idempotent: an unknown upload id is not an error. */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    await this.ready();
    this.pathOf(key);
    if (!UPLOAD_ID.test(uploadId)) return;
    const dir = uploadPath(this.base, uploadId);
    try {
      const rec = await readUploadRecord(this.base, dir);
      if (rec?.key !== key) return;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw mapFsError(err, key); // a torn record: the upload goes
    }
    await removeUpload(key, dir);
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    await this.ready();
    validatePrefix(prefix);
    let ids: string[];
    try {
      await realDirs(this.base, join(this.base, UPLOADS));
      ids = await readdir(join(this.base, UPLOADS));
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
      throw mapFsError(err, prefix);
    }
    const out: MultipartUploadInfo[] = [];
    for (const id of ids) {
      if (!UPLOAD_ID.test(id)) continue;
      try {
        const rec = await readUploadRecord(this.base, uploadPath(this.base, id));
        if (rec?.key.startsWith(prefix)) out.push({ key: rec.key, uploadId: id, initiated: new Date(rec.initiated) });
      } catch {
        // A torn record (a crash before upload.json landed), or not an upload (a link, a special file).
      }
    }
    return out.sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  /** Local objects are always readable: 'not-archived' for any existing object. @throws NotFoundError */
  async requestRestore(key: string, days: number, _tier: RestoreTier): Promise<RestoreOutcome> {
    await this.ready();
    validateRestoreDays(days);
    const path = await this.readPath(key);
    try {
      await (await openRegular(this.base, path)).close();
    } catch (err) {
      throw mapFsError(err, key);
    }
    return 'not-archived';
  }

  /** Validate a key (contract rules + reserved names) and map it under the root. */
  private pathOf(key: string): string {
    validateKey(key);
    if (key.endsWith(META_SUFFIX) || key.split('/').some((s) => s.startsWith(RESERVED))) {
      throw new PermanentStoreError(`invalid object key (reserved by the local store): ${JSON.stringify(key)}`, 'INVALID_KEY');
    }
    const path = join(this.base, ...key.split('/'));
    if (!path.startsWith(this.base + sep)) throw new PermanentStoreError(`invalid object key: ${JSON.stringify(key)}`, 'INVALID_KEY');
    return path;
  }

  /** `pathOf(key)` once its directories are checked (a missing one makes the key not found). @throws SYMLINK */
  private async readPath(key: string): Promise<string> {
    const path = this.pathOf(key);
    try {
      await realDirs(this.base, dirname(path));
    } catch (err) {
      throw mapFsError(err, key);
    }
    return path;
  }

  /** Whether the directories down to `dir` exist (and are real: else SYMLINK). */
  private async dirsExist(dir: string): Promise<boolean> {
    try {
      await realDirs(this.base, dir);
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
      throw err;
    }
  }

  /**
   * Before a write of `key`: the marker, the key's directories (made one at
   * a time, none a link), and neither the key nor its sidecar a link or a
   * special file. @throws KEY_CONFLICT, SYMLINK, NOT_A_REGULAR_FILE
   */
  private async prepareWrite(key: string, path: string): Promise<void> {
    await this.ensureMarker(key);
    try {
      await realDirs(this.base, dirname(path), true);
      if ((await existingEntry(this.base, path))?.isDirectory()) throw keyConflict(key);
      await existingEntry(this.base, path + META_SUFFIX);
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
   * The rename commit of an upload of placed parts (local/placed.ts).
   * @returns false when the key is on another file system (EXDEV): copy instead
   * @throws NoSuchUploadError when the placed bytes are gone
   */
  private async commitPlaced(key: string, uploadId: string, path: string, dir: string, chosen: readonly DiskPart[], stored: ReadonlyMap<number, DiskPart>, size: number, meta: ObjectMeta): Promise<boolean> {
    try {
      const last = chosen[chosen.length - 1]!.partNumber;
      const later = [...new Set(stored.keys())].filter((n) => n > last);
      if (!(await commitPlaced(this.base, path, dir, chosen, size, meta, later, this.testHookBeforeCommit))) throw new NoSuchUploadError(key, uploadId);
      return true;
    } catch (err) {
      if (isErrno(err, 'EXDEV')) return false;
      if (err instanceof StoreError || !hasErrno(err)) throw err;
      if (isErrno(err, 'EISDIR')) throw keyConflict(key);
      throw mapFsError(err, key);
    }
  }

  /** The directory and record of upload `uploadId` of `key`. @throws NoSuchUploadError */
  private async upload(key: string, uploadId: string): Promise<{ dir: string; rec: UploadRecord }> {
    this.pathOf(key);
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUploadError(key, uploadId);
    const dir = uploadPath(this.base, uploadId);
    return { dir, rec: await uploadRecord(this.base, key, uploadId, dir) };
  }

  /** List directory `rel` (its directories checked: a link is SYMLINK), descending only into real directories, listing only regular files. */
  private async walk(rel: string, prefix: string, out: ListEntry[]): Promise<void> {
    const abs = rel === '' ? this.base : join(this.base, ...rel.split('/'));
    let entries;
    try {
      await realDirs(this.base, abs);
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
          const st = await lstat(join(abs, e.name));
          if (!st.isFile()) continue;
          // The class of a sidecar of the right size, without checking its fingerprint
          // (that would read 8 KiB of every object): head is the authority.
          const side = parseSidecar(await readOptional(this.base, join(abs, e.name + META_SUFFIX)).catch(() => undefined));
          const storageClass = side && side.size === st.size ? side.storageClass : 'STANDARD';
          out.push({ key, size: st.size, storageClass, lastModified: st.mtime });
        } catch {
          // Deleted while listing.
        }
      }
    }
  }

  private async pruneDirs(dir: string): Promise<void> {
    while (dir.startsWith(this.base + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or gone): stop
      }
      dir = dirname(dir);
    }
  }

  // ---- Layout marker (the conversion of layout 1 is in local/convert-v1.ts) ----

  /** Settles once the directory is in layout 2 (or readable as such); a failure is retried by the next call. */
  private ready(): Promise<void> {
    if (!this.opened) {
      const p = (async () => {
        await this.resolveRoot();
        this.markerPending = await openLayout(this.base, this.migration);
      })();
      this.opened = p;
      p.catch(() => {
        if (this.opened === p) this.opened = undefined;
      });
    }
    return this.opened;
  }

  /** The root's real path once it exists (the root itself may be a link; nothing below it may). */
  private async resolveRoot(): Promise<void> {
    try {
      this.base = await realpath(this.root);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw mapFsError(err, LAYOUT_FILE);
    }
  }

  /** Write the marker if the open could not (new directory, or read-only then). */
  private async ensureMarker(key: string): Promise<void> {
    if (!this.markerPending) return;
    this.markerWrite ??= (async () => {
      try {
        await mkdir(this.root, { recursive: true });
        await this.resolveRoot();
        await writeAtomic(this.base, join(this.base, LAYOUT_FILE), Buffer.from(LAYOUT));
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
}

function sorted(metadata: Record<string, string>): [string, string][] {
  return Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
