/**
 * Layout 1 of the local store and its conversion to layout 2.
 *
 * Layout 1 (older zbk: a completed upload as a descriptor file
 * `zbk-local-composite-v1\n` + JSON naming hard-linked part files in a
 * `.zbk-mp-<id>/` directory beside the key; sidecars `v: 1` recording the
 * data file's inode) is converted on first use of an instance (every public
 * method awaits `ready`; with the marker present, one read of its 2 bytes).
 * Without the marker the tree is walked once under the lock `.zbk-migrate.lock`
 * (below): each descriptor's parts are concatenated into a temp
 * file, its size checked, its v2 sidecar renamed in place first and then
 * the data (so a kill between the two leaves the descriptor, and the re-run
 * finds the metadata in the v2 sidecar that describes what it builds), then
 * its `.zbk-mp-*` directory goes; a v1 sidecar of a plain file becomes v2
 * when its inode and size match the file (else it is stale and deleted);
 * leftover temp files and unreferenced `.zbk-mp-*` directories are removed;
 * then the marker is written. Every step is idempotent, so a killed
 * conversion is finished by the next open. A descriptor whose part files are
 * missing, have other sizes or are not regular files, or whose `.zbk-mp-*`
 * is not a real directory, is left as it is (its `.zbk-mp-*` too) and
 * reported (one warning line naming it): the object then has the
 * descriptor's size, which `zbk verify` reports. Uploads in flight are
 * untouched (same format in both layouts). A layout-1 store on a read-only
 * directory is refused with a one-line command that converts a writable
 * copy. A directory without the marker and without layout-1 artifacts (new,
 * or a copy of a bucket) gets the marker when writable (at the latest on
 * first write) and is used read-only without it.
 *
 * Nothing is read through a link (files.ts): the walk descends only real
 * directories, lstat decides what a part is (a part that is a symlink would
 * copy a file from outside the store, a FIFO would hang the copy), every
 * file is opened O_NOFOLLOW|O_NONBLOCK, and a marker that is a link or a
 * special file is SYMLINK / NOT_A_REGULAR_FILE.
 *
 * The lock: created `wx`, holding "<pid> <host>", kept open while the
 * conversion runs and its mtime refreshed every 30 s. While another process
 * holds it the marker is polled up to 10 minutes, then TransientStoreError.
 * It is stale, and taken over (moved aside, then removed), when its pid is
 * dead on this host; when nobody touched it for 3 minutes
 * (MIGRATE_LOCK_STALE_MS), whatever host or pid it names; when its mtime is
 * more than a minute ahead; or when it is not a regular file (never read
 * through a link). Another host's lock used to count as alive forever, so
 * one left by a crash there, or planted with the marker deleted, made every
 * command wait 10 minutes and fail; now the first command waits at most 3
 * minutes and takes it. The price: a conversion that really runs that long
 * without touching the lock (an older zbk, a host whose clock is 3 minutes
 * behind) gets a second one beside it — like two processes taking over one
 * dead lock at the same instant, which the idempotent steps make work done
 * twice (or a step failing, finished by the next open), never a wrong
 * object. A process removes the lock at the end only if it is still its own.
 *
 * The objects themselves are written by the store (`CommitFn`, its commit
 * with the sidecar renamed first), so a converted object is committed the
 * way a put commits one.
 */
import { randomBytes } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { AccessDeniedError, PermanentStoreError, StoreError, TransientStoreError } from '../errors.js';
import { multipartEtag } from '../internal.js';
import { LOCK_FUTURE_MS, concatFiles, createNew, fsyncDir, hasErrno, isErrno, mapFsError, openRegular, readOptional, readRegular, storeName, writeAtomic } from './files.js';
import { LAYOUT, LAYOUT_FILE, META_SUFFIX, PART_FILE, RESERVED } from './layout.js';
import { fingerprintOf, objectMeta, parseJson, parseSidecar, type ObjectMeta, type Sidecar } from './sidecar.js';

const LOCK_FILE = '.zbk-migrate.lock';
/** How long to wait, by default, for another process converting the store. */
export const MIGRATE_WAIT_MS = 10 * 60_000;
const MIGRATE_POLL_MS = 250;
/** A migrate lock nobody touched for this long is stale, whoever it names (its holder touches it every sixth of this). */
export const MIGRATE_LOCK_STALE_MS = 3 * 60_000;
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

/** The store's commit of an object, sidecar first (see LocalStore's commitObject). */
export type CommitFn = (key: string, path: string, size: number, fill: (fh: FileHandle) => Promise<void>, meta: (fingerprint: string) => ObjectMeta) => Promise<void>;

/** What the conversion needs from the store that opens the directory. */
export interface Migration {
  /** How long to wait for another process converting the store. */
  waitMs: number;
  /** How long a lock nobody touches stays another process's (MIGRATE_LOCK_STALE_MS). */
  lockStaleMs: number;
  /** One line about a descriptor left unconverted. */
  warn: (message: string) => void;
  /** Tests only: called at the steps of the conversion. */
  hook: ((step: MigrateStep, path: string) => Promise<void> | void) | undefined;
  commit: CommitFn;
}

/** Conversions running in this process, by root, so instances over one directory share one. */
const migrations = new Map<string, Promise<boolean>>();

/**
 * Bring the directory to layout 2 (or find it readable as such); true when
 * the marker is still to be written (the root is missing, or not writable
 * and without layout-1 artifacts).
 */
export async function openLayout(root: string, migration: Migration): Promise<boolean> {
  if (await hasMarker(root)) return false;
  try {
    if (!(await stat(root)).isDirectory()) return false; // every operation will say what is wrong
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw mapFsError(err, LAYOUT_FILE);
    return true; // a new store: nothing to convert
  }
  let run = migrations.get(root);
  if (!run) {
    run = migrate(root, migration).finally(() => migrations.delete(root));
    migrations.set(root, run);
  }
  return await run;
}

/**
 * One read of the 2-byte marker (not only a stat: a marker of a later
 * layout has the same size). @throws PermanentStoreError 'LAYOUT_UNKNOWN'
 */
async function hasMarker(root: string): Promise<boolean> {
  const marker = join(root, LAYOUT_FILE);
  try {
    const text = (await readRegular(root, marker)).toString('latin1');
    if (text === LAYOUT || text.trim() === LAYOUT.trim()) return true;
    throw new PermanentStoreError(
      `local store ${root} has layout ${JSON.stringify(text.trim().slice(0, 20))} (${marker}); this zbk reads layout 2: use the zbk that wrote it`,
      'LAYOUT_UNKNOWN',
    );
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
    throw mapFsError(err, LAYOUT_FILE);
  }
}

/** Convert if needed; true when the marker is still to be written (read-only directory without layout-1 artifacts). */
async function migrate(root: string, migration: Migration): Promise<boolean> {
  try {
    return await convertUnderLock(root, migration);
  } catch (err) {
    throw hasErrno(err) ? mapFsError(err, LAYOUT_FILE) : err;
  }
}

async function convertUnderLock(root: string, migration: Migration): Promise<boolean> {
  const lock = join(root, LOCK_FILE);
  const held = await acquireLock(root, lock, migration);
  if (held === 'done') return false;
  if (held === 'read-only') {
    if (await new Conversion(root, false).run()) throw oldLayoutError(root);
    return true;
  }
  try {
    if (await hasMarker(root)) return false;
    await new Conversion(root, true, migration).run();
    await writeAtomic(root, join(root, LAYOUT_FILE), Buffer.from(LAYOUT));
    return false;
  } finally {
    await held.release();
  }
}

/** The migrate lock while this process holds it: its mtime is refreshed so that waiters see it alive. */
class HeldLock {
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
    touchMs: number,
  ) {
    this.timer = setInterval(() => {
      const now = new Date();
      fh.utimes(now, now).catch(() => undefined);
    }, touchMs);
    this.timer.unref();
  }

  /** Remove the lock if it is still this one (not another process's that took it over as stale). */
  async release(): Promise<void> {
    clearInterval(this.timer);
    const [mine, there] = await Promise.all([this.fh.stat(), lstat(this.path)]).catch(() => [undefined, undefined]);
    await this.fh.close().catch(() => undefined);
    if (mine && there && mine.ino === there.ino && mine.dev === there.dev) await unlink(this.path).catch(() => undefined);
  }
}

/**
 * Take `.zbk-migrate.lock`: 'held'; 'done' when the marker appeared while
 * another process held it; 'read-only' when the directory is not writable.
 */
async function acquireLock(root: string, lock: string, migration: Migration): Promise<HeldLock | 'done' | 'read-only'> {
  const deadline = Date.now() + migration.waitMs;
  const mine = `${process.pid} ${hostname()}\n`;
  for (;;) {
    try {
      await migration.hook?.('lock', lock);
      return new HeldLock(lock, await createNew(lock, Buffer.from(mine), 0o644), Math.max(10, Math.floor(migration.lockStaleMs / 6)));
    } catch (err) {
      if (isErrno(err, 'EROFS') || isErrno(err, 'EACCES') || isErrno(err, 'EPERM')) return 'read-only';
      if (!isErrno(err, 'EEXIST')) throw err; // mapped by migrate()
    }
    const holder = await readLock(root, lock, migration.lockStaleMs);
    if (holder && !holder.alive) {
      await takeOver(root, lock, holder.text);
      continue;
    }
    if (await hasMarker(root)) return 'done';
    if (Date.now() >= deadline) {
      throw new TransientStoreError(
        `local store ${root}: another zbk (${holder?.text.trim().slice(0, 100) || 'unknown pid'}) is converting it to the current layout and has not finished in ${Math.round(migration.waitMs / 1000)} s; if no zbk is running, remove ${lock}`,
      );
    }
    await new Promise((r) => setTimeout(r, MIGRATE_POLL_MS));
  }
}

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
    private readonly migration?: Migration,
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
        if (!names.has(e.name.slice(0, -META_SUFFIX.length)) && (await this.v1Sidecar(path))) {
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
    await this.migration?.hook?.('object', path);
    let st: Stats;
    let desc: V1Descriptor | undefined;
    try {
      st = await lstat(path);
      if (!st.isFile()) return; // replaced meanwhile
      desc = st.size >= V1_MAGIC.length && st.size <= V1_MAX_DESCRIPTOR ? await readDescriptor(this.root, path) : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // deleted meanwhile (a read-only scan runs beside writers)
      throw err;
    }
    const sidecar = path + META_SUFFIX;
    if (desc) {
      this.found = true;
      if (this.convert) await this.composite(path, desc, await readOptional(this.root, sidecar).catch(() => undefined));
      return;
    }
    const v1 = await this.v1Sidecar(sidecar);
    if (!v1) return;
    this.found = true;
    if (!this.convert) return;
    if (v1.ino === st.ino && v1.size === st.size && !v1.composite) {
      const fingerprint = await fingerprintFile(this.root, path, st.size);
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
    const problem = await partsProblem(partsDir, files, desc);
    if (problem) {
      // Damaged (or tampered with) before the conversion: left for a human (and zbk verify).
      this.kept.add(partsDir);
      this.migration!.warn(
        `local store: ${storeName(this.root, path)} is left in the layout of an older zbk (not converted): ${problem}; zbk verify reports the object; restore its parts, or delete it and push again`,
      );
      return;
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
    await this.migration!.commit(key, path, size, (fh) => concatFiles(fh, this.root, files), meta);
    await rm(partsDir, { recursive: true, force: true });
  }

  /** The v1 sidecar at `path`, or undefined (also for a link or special file: never read). */
  private async v1Sidecar(path: string): Promise<V1Sidecar | undefined> {
    return parseV1Sidecar(await readOptional(this.root, path).catch(() => undefined));
  }
}

/** Why a descriptor's parts cannot be converted, or undefined: `partsDir` a real directory, each part a regular file of its size. */
async function partsProblem(partsDir: string, files: readonly string[], desc: V1Descriptor): Promise<string | undefined> {
  const what = (st: Stats | undefined): string =>
    st === undefined ? 'missing' : st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFile() ? '' : 'not a regular file';
  const dirSt = await lstat(partsDir).catch(() => undefined);
  if (!dirSt?.isDirectory()) return `its part directory ${desc.dir} is ${what(dirSt) || 'not a directory'}`;
  for (const [i, f] of files.entries()) {
    const st = await lstat(f).catch(() => undefined);
    const want = desc.parts[i]!.size;
    if (!st?.isFile()) return `its part ${desc.dir}/${desc.parts[i]!.file} is ${what(st)}`;
    if (st.size !== want) return `its part ${desc.dir}/${desc.parts[i]!.file} has ${st.size} bytes, not ${want}`;
  }
  return undefined;
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
async function readDescriptor(root: string, path: string): Promise<V1Descriptor | undefined> {
  const fh = await openRegular(root, path);
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

function parseV1Sidecar(text: string | undefined): V1Sidecar | undefined {
  const o = parseJson(text);
  return o && o.v === 1 && objectMeta(o) && typeof o.ino === 'number' ? (o as unknown as V1Sidecar) : undefined;
}

async function fingerprintFile(root: string, path: string, size: number): Promise<string> {
  const fh = await openRegular(root, path);
  try {
    const fp = await fingerprintOf(fh, size);
    if (fp === undefined) throw new PermanentStoreError(`${path} changed while it was converted`, 'IO');
    return fp;
  } finally {
    await fh.close();
  }
}

/**
 * The lock's text and whether its owner may still run: not when it is not a
 * regular file, is untouched for `staleMs` or dated more than a minute
 * ahead, or names a dead pid of this host; another host's fresh lock is
 * assumed alive.
 */
async function readLock(root: string, lock: string, staleMs: number): Promise<{ text: string; alive: boolean } | undefined> {
  let text: string;
  let st: Stats;
  try {
    st = await lstat(lock);
    if (!st.isFile()) return { text: '', alive: false }; // a link or a FIFO is no zbk's lock: never read
    text = (await readRegular(root, lock)).toString('utf8');
  } catch {
    return undefined; // released (or replaced) meanwhile
  }
  const age = Date.now() - st.mtimeMs;
  if (age > staleMs || age < -LOCK_FUTURE_MS) return { text, alive: false };
  const m = /^(\d+) (\S*)\n$/.exec(text);
  if (!m) return { text, alive: age < LOCK_GRACE_MS };
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
async function takeOver(root: string, lock: string, deadText: string): Promise<void> {
  const aside = `${lock}.stale-${randomBytes(8).toString('hex')}`;
  try {
    await rename(lock, aside);
  } catch {
    return; // gone meanwhile
  }
  const moved = await readRegular(root, aside).then((b) => b.toString('utf8'), () => deadText);
  if (moved !== deadText) await rename(aside, lock).catch(() => undefined);
  else await unlink(aside).catch(() => undefined);
}

function oldLayoutError(root: string): AccessDeniedError {
  const copy = '/var/tmp/zbk-store';
  return new AccessDeniedError(
    `local store ${root} uses the layout of an older zbk and is not writable here; convert a writable copy once: cp -r '${root}' ${copy} && zbk status (with [store] url = "file://${copy}")`,
  );
}
