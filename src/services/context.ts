/**
 * What every service needs, opened once per command: the config, the store,
 * the zfs adapter, the clock, a logger and the passphrase source; and the
 * steps that open the repository (key file → keyring, local manifest).
 *
 * Services receive a `ServiceContext` instead of building their own
 * dependencies, so tests can inject a memory store, a test clock or a
 * fault-injecting wrapper.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { normalizedStoreUrl, type ZbkConfig } from '../config/config.js';
import { ConfigError, ManifestError, ZbkError } from '../errors.js';
import { acquireLock, lockPathFor, type AcquireOptions, type Lock } from '../manifest/lock.js';
import { stampPath } from '../manifest/check-stamp.js';
import { PUSH_STATUS_FILE } from './push-status.js';
import { KEY_FILE_KEY } from '../layout.js';
import type { ObjectStore, IdentityProvider } from '../store/object-store.js';
import { NotFoundError } from '../store/errors.js';
import type { PassphraseSource } from './passphrase.js';
import type { Keyring } from '../crypto/types.js';
import { loadSodium, openKeyFile, type SodiumBackend } from '../crypto/index.js';
import { Manifest } from '../manifest/manifest.js';
import type { RepositoryRow } from '../manifest/types.js';
import { Zfs } from '../zfs/index.js';
import { Btrfs } from '../btrfs/btrfs.js';
import { openStore, retryModeFromEnv } from '../store/open-store.js';
import { clockFromEnv } from './consolidate/clock.js';

export interface Logger {
  /** Progress and notes for humans (stderr; silent with --json). */
  info(message: string): void;
  /** Something the user should know; never fatal. */
  warn(message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {} };

export interface ServiceContext {
  config: ZbkConfig;
  store: ObjectStore & Partial<IdentityProvider>;
  zfs: Zfs;
  /** The btrfs adapter, for datasets named by an absolute path (src/services/push/source.ts). */
  btrfs: Btrfs;
  now: () => Date;
  log: Logger;
  passphrase: PassphraseSource;
}

export interface ContextOverrides {
  store?: ObjectStore & Partial<IdentityProvider>;
  zfs?: Zfs;
  btrfs?: Btrfs;
  now?: () => Date;
  log?: Logger;
}

export function createContext(config: ZbkConfig, passphrase: PassphraseSource, overrides: ContextOverrides = {}): ServiceContext {
  const log = overrides.log ?? silentLogger;
  config = settleStateDir(config, log);
  return {
    config,
    store:
      overrides.store ??
      openStore(config.store, {
        retry: config.retry,
        retryMode: retryModeFromEnv(),
        onRetry: (e) => log.info(`retrying: ${e.error.message} (attempt ${e.attempt}, ${e.retriesLeft} left)`),
      }),
    zfs: overrides.zfs ?? new Zfs({ zfs: config.zfs.zfs, zpool: config.zfs.zpool }),
    btrfs: overrides.btrfs ?? new Btrfs({ command: config.btrfs.btrfs }),
    now: overrides.now ?? clockFromEnv(),
    log,
    passphrase,
  };
}

export const MANIFEST_FILE = 'manifest.db';

export function manifestPath(config: ZbkConfig): string {
  return join(config.stateDir, MANIFEST_FILE);
}

/** The manifest's process lock (`manifest.db.lock`, src/manifest/lock.ts). */
export function lockPath(config: ZbkConfig): string {
  return lockPathFor(manifestPath(config));
}

/**
 * Take the manifest lock of this repository's state dir. A read-only or full
 * state dir is one line naming it (`stateDirFault`, exit 3), not a raw errno.
 */
export async function lockManifest(config: ZbkConfig, opts: AcquireOptions): Promise<Lock> {
  try {
    return await acquireLock(manifestPath(config), opts);
  } catch (err) {
    throw stateDirFault(err, lockPath(config)) ?? err;
  }
}

let sodiumPromise: Promise<SodiumBackend> | null = null;
/** The libsodium backend, loaded once per process. */
export function sodium(): Promise<SodiumBackend> {
  sodiumPromise ??= loadSodium();
  return sodiumPromise;
}

/** Read the key file from the store. */
export async function readKeyFile(ctx: ServiceContext): Promise<Uint8Array> {
  try {
    return await ctx.store.getBytes(KEY_FILE_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new ConfigError(`no zbk repository at ${ctx.store.url} (key file ${KEY_FILE_KEY} missing): run "zbk init"`, 'NO_REPOSITORY');
    }
    throw err;
  }
}

/** Open the keyring with the passphrase (WrongPassphraseError on mismatch). */
export async function openKeyring(ctx: ServiceContext): Promise<Keyring> {
  const keyFile = await readKeyFile(ctx);
  const passphrase = await ctx.passphrase.get('open');
  return openKeyFile(await sodium(), keyFile, passphrase);
}

/**
 * Open the local manifest. Refuses a manifest of another repository (key id
 * differs) and says how to rebuild when there is none.
 */
export function openManifest(ctx: ServiceContext, keyring: Keyring | null): Manifest {
  const path = manifestPath(ctx.config);
  if (!existsSync(path)) {
    throw new ManifestError(`no local manifest at ${path}: run "zbk manifest rebuild" to recreate it from the bucket`, 'NO_MANIFEST');
  }
  const manifest = openManifestFile(path, ctx.now);
  const repo = manifest.repository();
  if (keyring && repo && repo.keyId !== keyring.keyId) {
    manifest.close();
    throw new ManifestError(`the local manifest ${path} belongs to another repository (key ${repo.keyId}, store key ${keyring.keyId}): move it away and run "zbk manifest rebuild"`, 'MANIFEST_MISMATCH');
  }
  return manifest;
}

/**
 * `Manifest.open` (created when missing) with the state directory's own
 * faults — read-only, no permission, full — as one line naming the path and
 * the cause (`stateDirFault`, exit 3), when opening and on every later write.
 */
export function openManifestFile(path: string, now: () => Date): Manifest {
  let manifest: Manifest;
  try {
    manifest = Manifest.open(path, { now });
  } catch (err) {
    throw stateDirFault(err, path) ?? err;
  }
  return withStateDirFaults(manifest, path);
}

/**
 * The manifest with its methods' state-directory faults mapped as by
 * `stateDirFault` (a push that fills the disk mid-stream fails with that
 * line, not SQLite's "database or disk is full"). Everything else passes
 * through unchanged, as do the properties.
 */
function withStateDirFaults(manifest: Manifest, path: string): Manifest {
  return new Proxy(manifest, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || Object.prototype.hasOwnProperty.call(target, prop)) return value;
      return function (this: unknown, ...args: unknown[]): unknown {
        try {
          return (value as (...a: unknown[]) => unknown).apply(this, args);
        } catch (err) {
          throw stateDirFault(err, path) ?? err;
        }
      };
    },
  });
}

const READ_ONLY_CODES: Record<string, string> = { EROFS: 'read-only file system', EACCES: 'permission denied', EPERM: 'operation not permitted' };
const FULL_CODES: Record<string, string> = { ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded', SQLITE_FULL: 'database or disk is full' };

/**
 * Whether `dir` takes a new file (a 4 KiB probe, created and removed): null
 * when it does, else the errno it fails with (EROFS, EACCES, ENOSPC, …).
 * SQLite reports a read-only directory as SQLITE_CANTOPEN; the probe names
 * the cause. As root, a directory without write bits still takes files.
 */
export function probeWritable(dir: string): string | null {
  const probe = join(dir, `.zbk-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'wx', 0o600);
    writeSync(fd, Buffer.alloc(4096));
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EIO';
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(probe, { force: true });
  }
}

/**
 * A fault of the state directory itself, as one line naming the file, the
 * directory and the cause, exit 3 (like a config problem: the machine, not
 * the data, needs fixing): `STATE_DIR_READ_ONLY` for EROFS/EACCES/EPERM,
 * `STATE_DIR_FULL` for ENOSPC/EDQUOT/SQLITE_FULL. SQLite's CANTOPEN,
 * READONLY and IOERR count when a probe write in the directory fails too.
 * Null for anything else (the caller rethrows it unchanged).
 */
export function stateDirFault(err: unknown, path: string, dir = dirname(path)): ConfigError | null {
  if (err instanceof ZbkError) return null;
  const raw = (err as { code?: unknown } | null)?.code;
  if (typeof raw !== 'string') return null;
  let code: string | null = raw;
  if (/^SQLITE_(CANTOPEN|READONLY|IOERR)/.test(raw)) code = probeWritable(dir);
  else if (raw === 'SQLITE_FULL') code = probeWritable(dir) ?? raw;
  if (code === null) return null;
  const what = path === dir ? '' : `cannot write ${path}: `;
  if (READ_ONLY_CODES[code]) {
    return new ConfigError(
      `${what}the state directory ${dir} is not writable (${code}: ${READ_ONLY_CODES[code]}); make it writable, or set state_dir in the config to a writable directory`,
      'STATE_DIR_READ_ONLY',
    );
  }
  if (FULL_CODES[code]) {
    return new ConfigError(`${what}the state directory ${dir} is full (${code}: ${FULL_CODES[code]}); free space on its filesystem, or set state_dir to another one`, 'STATE_DIR_FULL');
  }
  return null;
}

/**
 * Create the state directory (0700; also its parents zbk creates). The
 * default per-repository directory is zbk's own and is narrowed to 0700
 * when wider; an explicit `state_dir` keeps its mode (it may be shared),
 * the files zbk puts in it are 0600 anyway. Faults as `stateDirFault`.
 */
export function ensureStateDir(config: ZbkConfig): void {
  const dir = config.stateDir;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (config.legacyStateDir !== undefined && (statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (err) {
    // A recursive mkdir on a read-only filesystem can report ENOENT: the nearest existing parent tells.
    throw stateDirFault(err, dir) ?? stateDirFault({ code: probeWritable(nearestExisting(dirname(dir))) }, dir) ?? err;
  }
}

/** `path` if it exists, else its nearest existing parent (where a directory zbk creates later will be). */
export function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/**
 * `ensureStateDir`, then a probe write, and at least `room` bytes free: a
 * read-only or full state directory fails here (as `stateDirFault`),
 * before anything is written elsewhere.
 */
export function assertStateDirWritable(config: ZbkConfig, room = 0): void {
  ensureStateDir(config);
  const dir = config.stateDir;
  const code = probeWritable(dir);
  if (code !== null) throw stateDirFault({ code }, dir) ?? new ConfigError(`cannot write the state directory ${dir} (${code})`, 'STATE_DIR');
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < room) {
    throw new ConfigError(`the state directory ${dir} is full (${free} bytes free, ${room} needed for the manifest); free space on its filesystem, or set state_dir to another one`, 'STATE_DIR_FULL');
  }
}

// ------------------------------------------------- the old shared default

/** The holder a state-dir move writes into the old manifest's lock (the format of src/manifest/lock.ts, so every zbk waits for it). */
const MOVE_COMMAND = 'zbk (moving the manifest to its per-repository state directory)';

/**
 * The state directory this run uses. `stateDir` as configured, except
 * when `state_dir` is not configured (`legacyStateDir` is set) and the old
 * shared default `<base>/manifest.db` belongs to this repository (its
 * `repository` row records this store URL) while `<base>/<id>/` has no
 * manifest yet: then it is moved there, under its lock, together with the
 * repository's other files in `<base>` —
 *
 * - `push-status.json` (what `zbk check` reads),
 * - `restore/` (staged volumes), when `[restore] staging_dir` is not set,
 * - `manifest.db` itself, last, by one rename, once its WAL is
 *   checkpointed (`manifest.db-wal` and `-shm` are SQLite's and are
 *   recreated beside it; a WAL that cannot be emptied now, because an older
 *   zbk is reading it, postpones the move).
 *
 * `manifest.db.replaced-*` (aside copies of earlier `init`s; whose they
 * are is unknown) stay. A manifest of another repository, or one that does
 * not open, is left alone. While another process holds the old manifest's
 * lock (an older zbk's push) this run uses `<base>` as before and a later
 * run moves it. Never throws: what cannot be moved stays where it is.
 */
export function settleStateDir(config: ZbkConfig, log: Logger): ZbkConfig {
  const base = config.legacyStateDir;
  if (base === undefined || base === config.stateDir) return config;
  const legacy = join(base, MANIFEST_FILE);
  const here = manifestPath(config);
  const url = normalizedStoreUrl(config.store.url);
  if (!existsSync(legacy) || existsSync(here)) return config;
  const owner = ownerOf(legacy, true);
  if (owner !== url && owner !== 'unknown') return config;
  const atBase = legacyConfig(config, base);
  const lock = takeMoveLock(lockPathFor(legacy));
  if (typeof lock === 'string') {
    log.info(`the manifest in ${base} ${lock}: using it there this time; a later run moves it to ${config.stateDir}`);
    return atBase;
  }
  let moved = false;
  try {
    // Again under the lock: a concurrent run may have moved it, and a writable open checkpoints its WAL.
    if (!existsSync(legacy) || existsSync(here)) return config;
    if (ownerOf(legacy, false) !== url) return config;
    if (statSize(`${legacy}-wal`) > 0) {
      log.info(`the manifest in ${base} is open in another zbk: using it there this time; a later run moves it to ${config.stateDir}`);
      return atBase;
    }
    ensureStateDir(config);
    const moves: [string, string][] = [[join(base, PUSH_STATUS_FILE), join(config.stateDir, PUSH_STATUS_FILE)]];
    if (atBase.restore.stagingDir !== config.restore.stagingDir) moves.push([atBase.restore.stagingDir, config.restore.stagingDir]);
    for (const [from, to] of moves) if (existsSync(from) && !existsSync(to)) renameSync(from, to);
    renameSync(legacy, here);
    moved = true;
    for (const f of [`${legacy}-wal`, `${legacy}-shm`]) if (statSize(f) === 0) rmSync(f, { force: true });
    // Its quick_check stamp names the old path's file: the next open checks the moved one.
    rmSync(stampPath(legacy), { force: true });
    log.info(`moved the manifest of ${url} from ${base} to ${config.stateDir} (the default state directory is per repository now)`);
    return config;
  } catch (err) {
    log.warn(`could not move the manifest in ${base} to ${config.stateDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): using it there this time`);
    return moved ? config : atBase;
  } finally {
    lock();
  }
}

/** The config with the old shared default as its state directory (and its staging directory, when that is the default). */
function legacyConfig(config: ZbkConfig, base: string): ZbkConfig {
  const defaultStaging = config.restore.stagingDir === join(config.stateDir, 'restore');
  return { ...config, stateDir: base, restore: { ...config.restore, stagingDir: defaultStaging ? join(base, 'restore') : config.restore.stagingDir } };
}

/**
 * The store URL the manifest at `path` records; 'other' when it does not
 * open or records none; 'unknown' when a read-only look cannot tell (an
 * older schema only opens writable, which migrates it: callers hold its
 * lock for that).
 */
function ownerOf(path: string, readonly: boolean): string {
  try {
    return manifestOwner(path, readonly)?.storeUrl ?? 'other';
  } catch (err) {
    return readonly && err instanceof ManifestError && err.code === 'MANIFEST_OUTDATED' ? 'unknown' : 'other';
  }
}

/** The repository the existing manifest at `path` records (null: none recorded). Throws what `Manifest.open` throws (corrupt, too new, outdated when `readonly`). */
export function manifestOwner(path: string, readonly = true): RepositoryRow | null {
  const m = Manifest.open(path, { readonly, create: false });
  try {
    return m.repository();
  } finally {
    m.close();
  }
}

function statSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/**
 * Take the lock at `path` without waiting (created whole: written to a
 * temporary name, then hard-linked, as src/manifest/lock.ts does). Returns
 * its release, or why not ("is in use by …", "cannot be locked (EROFS)").
 * A move in progress elsewhere takes milliseconds: it is waited for (up to
 * 5 s), then looked at again.
 */
function takeMoveLock(path: string): (() => void) | string {
  const token = randomBytes(16).toString('hex');
  const content = JSON.stringify({ pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString(), command: MOVE_COMMAND, token });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const deadline = Date.now() + 5000;
  try {
    writeFileSync(tmp, content, { mode: 0o600 });
    for (;;) {
      try {
        linkSync(tmp, path);
        return () => {
          if (readHolder(path)?.token === token) rmSync(path, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(path);
      if (holder?.command !== MOVE_COMMAND || Date.now() > deadline) return `is in use by ${holder ? `${holder.command} (pid ${holder.pid})` : 'another process'}`;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  } catch (err) {
    return `cannot be locked (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function readHolder(path: string): { pid?: number; command?: string; token?: string } | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; command?: string; token?: string };
  } catch {
    return null;
  }
}
