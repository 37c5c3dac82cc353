/**
 * The btrfs adapter: the only code in zbk that spawns `btrfs`. Every method
 * validates its paths before spawning anything (./paths.ts), spawns argument
 * arrays (no shell) with LC_ALL=C, TZ=UTC0 and no secrets in the
 * environment, and turns failures into BtrfsErrors carrying stderr.
 *
 * The model (see src/source/types.ts for the contract):
 * - A dataset is the path of a subvolume. Its snapshots are the read-only
 *   subvolumes whose parent UUID is its UUID and that are reachable under
 *   the mount the dataset is reached through, oldest first by the
 *   generation at creation (otransid), ties by subvolume id.
 * - Identity: received UUID when set, else UUID.
 * - Pins: zbk's read-only snapshot `<pin dir>/base-<UUID of the user's
 *   snapshot>`, pin dir `<mount point>/.zbk/<dataset UUID>` (`.zbk` a
 *   subvolume of mode 0700, like snapper's `.snapshots`: inside the dataset
 *   when the dataset is the mount point, where its snapshots then show an
 *   empty `.zbk`). The pin is what is sent (see the module comment of
 *   src/source/types.ts).
 * - Snapshots zbk takes itself (`zbk snapshot`): read-only snapshots of the
 *   dataset at `<pin dir>/snapshots/<name>`; being the dataset's snapshots
 *   (their parent UUID is its UUID), they are listed and pushed like any
 *   other, while pins (snapshots of snapshots) never are.
 * - A restore target is a directory on btrfs; `btrfs receive` creates the
 *   stream's subvolume in it (named as the sent subvolume was).
 */
import { lstat, mkdir, readdir, readFile, realpath, stat, chmod } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeIntoChild, runChild, spawnCompleteStream, toolEnvironment, type ChildResult } from '../source/child.js';
import type { Pin, ReceivedSnapshot, SendRequest, SendStream, SnapshotSource, SourceCapabilities, SourceReceiveOptions, SourceSnapshot } from '../source/types.js';
import { BTRFS_SEND_FLAGS, detectBtrfsCapabilities } from './capabilities.js';
import { BtrfsError, btrfsChildErrors, classifyBtrfsFailure } from './errors.js';
import { assertBtrfsName, assertBtrfsPath, isValidBtrfsPath, relativeBelow } from './paths.js';
import { parseMountinfo, parseReadOnlyProperty, parseReceivedName, parseSubvolumeList, parseSubvolumeShow, topLevelPath } from './parse.js';
import type { BtrfsCapabilities, BtrfsSnapshot, MountInfo, SubvolumeInfo, SubvolumeListEntry } from './types.js';

export interface BtrfsOptions {
  /** argv prefix of btrfs (default `['btrfs']`; e.g. `['sudo', 'btrfs']`). */
  command?: string[];
  /** Skip detection (tests). */
  capabilities?: BtrfsCapabilities;
  /** Where the kernel says its send protocol (default /sys/fs/btrfs/features/send_stream_version). */
  sendStreamVersionFile?: string;
  /** The mount table (default /proc/self/mountinfo). */
  mountinfoFile?: string;
}

/** Name of zbk's directory at the root of a btrfs mount. */
export const PIN_ROOT = '.zbk';
/** Name prefix of a pin inside its dataset's pin directory. */
export const PIN_PREFIX = 'base-';
/** The directory, inside a dataset's pin directory, of the snapshots `zbk snapshot` takes ({@link Btrfs.takeSnapshot}). */
export const SNAPSHOT_DIR = 'snapshots';
const PIN_NAME = /^base-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The mount a path is reached through, with the id of the subvolume it mounts. */
export interface BtrfsMount extends MountInfo {
  subvolumeId: bigint;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

function join(dir: string, rel: string): string {
  if (rel === '') return dir;
  return dir === '/' ? `/${rel}` : `${dir}/${rel}`;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function byOrder<T extends { order: bigint; subvolumeId?: bigint }>(a: T, b: T): number {
  if (a.order !== b.order) return a.order < b.order ? -1 : 1;
  const x = a.subvolumeId ?? 0n;
  const y = b.subvolumeId ?? 0n;
  return x < y ? -1 : x > y ? 1 : 0;
}

export class Btrfs implements SnapshotSource {
  readonly kind = 'btrfs' as const;
  readonly command: string[];
  private caps: BtrfsCapabilities | null;
  private readonly sendStreamVersionFile: string;
  private readonly mountinfoFile: string;
  private readonly env = toolEnvironment({ TZ: 'UTC0' });

  constructor(options: BtrfsOptions = {}) {
    const cmd = options.command ?? ['btrfs'];
    if (cmd.length === 0 || cmd.some((a) => typeof a !== 'string' || a.length === 0)) {
      throw new BtrfsError('the btrfs command must be a non-empty list of arguments — fix [btrfs] btrfs in the config', 'BTRFS_MISSING');
    }
    this.command = [...cmd];
    this.caps = options.capabilities ?? null;
    this.sendStreamVersionFile = options.sendStreamVersionFile ?? '/sys/fs/btrfs/features/send_stream_version';
    this.mountinfoFile = options.mountinfoFile ?? '/proc/self/mountinfo';
  }

  // ---- plumbing -------------------------------------------------------------

  private raw(args: string[]): Promise<ChildResult> {
    return runChild([...this.command, ...args], this.env, btrfsChildErrors);
  }

  private async ok(args: string[], what: string): Promise<ChildResult> {
    const r = await this.raw(args);
    if (r.exitStatus !== 0) throw classifyBtrfsFailure(what, r);
    return r;
  }

  // ---- capabilities -----------------------------------------------------------

  /** Detect (once, then cached) what btrfs-progs and the kernel can do. */
  async btrfsCapabilities(): Promise<BtrfsCapabilities> {
    if (this.caps) return this.caps;
    const version = await this.raw(['--version']);
    const help = await this.raw(['send', '--help']);
    const proto = await readFile(this.sendStreamVersionFile, 'utf8').catch(() => null);
    this.caps = detectBtrfsCapabilities(`${version.stdout}\n${version.stderr}`, `${help.stdout}\n${help.stderr}`, proto);
    return this.caps;
  }

  async capabilities(): Promise<SourceCapabilities> {
    const c = await this.btrfsCapabilities();
    return { kind: 'btrfs', version: c.version, sendEstimate: false, pin: 'snapshot', sendFlags: c.sendFlags };
  }

  // ---- subvolumes ---------------------------------------------------------------

  /** `btrfs subvolume show PATH`. BTRFS_NOT_SUBVOLUME / BTRFS_NOT_BTRFS / BTRFS_NOT_FOUND as btrfs says. */
  async show(path: string): Promise<SubvolumeInfo> {
    assertBtrfsPath(path, 'subvolume path');
    const r = await this.ok(['subvolume', 'show', path], `btrfs subvolume show of '${path}'`);
    return parseSubvolumeShow(r.stdout);
  }

  /** `btrfs subvolume list -a [-s] [-r] -u -q -R -c -g PATH` (every subvolume of the filesystem). */
  async list(path: string, opts: { snapshotsOnly?: boolean; readOnly?: boolean } = {}): Promise<SubvolumeListEntry[]> {
    assertBtrfsPath(path);
    const filters = [...(opts.snapshotsOnly ? ['-s'] : []), ...(opts.readOnly ? ['-r'] : [])];
    const r = await this.ok(['subvolume', 'list', '-a', ...filters, '-u', '-q', '-R', '-c', '-g', path], `btrfs subvolume list of '${path}'`);
    return parseSubvolumeList(r.stdout);
  }

  /** The real path of `path` (validated before and after). BTRFS_NOT_FOUND when it does not exist. */
  async realPath(path: string, kind = 'btrfs path'): Promise<string> {
    assertBtrfsPath(path, kind);
    let real: string;
    try {
      real = await realpath(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new BtrfsError(`'${path}' does not exist — check the path`, 'BTRFS_NOT_FOUND', { cause: err });
      throw new BtrfsError(`cannot resolve '${path}': ${(err as Error).message}`, 'BTRFS_FAILED', { cause: err });
    }
    return assertBtrfsPath(real, kind);
  }

  /** The btrfs mount `path` (a real path) is reached through: the longest mount point above it, the last one mounted there. */
  async mountOf(path: string): Promise<BtrfsMount> {
    const mounts = parseMountinfo(await readFile(this.mountinfoFile, 'utf8'));
    let best: MountInfo | null = null;
    for (const m of mounts) {
      if (relativeBelow(m.mountPoint, path) === null) continue;
      if (!best || m.mountPoint.length >= best.mountPoint.length) best = m;
    }
    if (!best || best.fsType !== 'btrfs') {
      throw new BtrfsError(`'${path}' is not on btrfs (it is on ${best ? `${best.fsType} mounted at ${best.mountPoint}` : 'no mount'})`, 'BTRFS_NOT_BTRFS');
    }
    const id = /(?:^|,)subvolid=(\d+)(?:,|$)/.exec(best.superOptions)?.[1];
    const subvolumeId = id !== undefined ? BigInt(id) : (await this.show(best.mountPoint)).subvolumeId;
    return { ...best, subvolumeId };
  }

  /** The absolute path, under `mount`, of a subvolume listed relative to the top level; null when that mount does not show it. */
  private pathUnder(mount: BtrfsMount, entry: SubvolumeListEntry): string | null {
    const rel = relativeBelow(mount.root, `/${topLevelPath(entry, mount.subvolumeId)}`);
    return rel === null ? null : join(mount.mountPoint, rel);
  }

  /**
   * The absolute path, under `mount`, of a listed subvolume, confirmed: the
   * path is one zbk accepts (no white space or control characters) and
   * `btrfs subvolume show` of it says what the list said (UUID, parent and
   * received UUID, creation generation, id, read-only). The list's text
   * cannot be trusted alone: a directory name can hold a line that looks like
   * an entry (any local user can make one), so an entry is only used once
   * the subvolume at its path is seen to be it. Null otherwise.
   */
  private async confirmed(mount: BtrfsMount, entry: SubvolumeListEntry): Promise<{ path: string; info: SubvolumeInfo } | null> {
    const path = this.pathUnder(mount, entry);
    if (path === null || !isValidBtrfsPath(path)) return null;
    const info = await this.show(path).catch(() => null);
    if (
      !info ||
      info.uuid !== entry.uuid ||
      info.parentUuid !== entry.parentUuid ||
      info.receivedUuid !== entry.receivedUuid ||
      info.otransid !== entry.otransid ||
      info.subvolumeId !== entry.subvolumeId
    ) {
      return null;
    }
    return { path, info };
  }

  /**
   * The subvolume with UUID `uuid` on the filesystem `onPath` is on, if it
   * is reachable under that mount (confirmed as in {@link confirmed}), with
   * the owner of its root directory; null otherwise.
   */
  async findByUuid(onPath: string, uuid: string): Promise<{ path: string; info: SubvolumeInfo; uid: number } | null> {
    const mount = await this.mountOf(await this.realPath(onPath));
    for (const e of await this.list(mount.mountPoint)) {
      if (e.uuid !== uuid) continue;
      const ok = await this.confirmed(mount, e);
      if (ok) return { ...ok, uid: (await lstat(ok.path)).uid };
    }
    return null;
  }

  /** `btrfs subvolume create PATH` (PATH must not exist). */
  async createSubvolume(path: string): Promise<void> {
    await this.mustNotExist(path);
    await this.ok(['subvolume', 'create', path], `btrfs subvolume create of '${path}'`);
  }

  /**
   * `btrfs subvolume snapshot [-r] SOURCE DEST`: a snapshot exactly at
   * `dest`, read-only unless `readOnly: false` (btrfs would put it inside
   * `dest` if that were a directory, so an existing `dest` is refused).
   */
  async createSnapshot(source: string, dest: string, opts: { readOnly?: boolean } = {}): Promise<void> {
    assertBtrfsPath(source, 'subvolume path');
    await this.mustNotExist(dest);
    const ro = opts.readOnly ?? true ? ['-r'] : [];
    await this.ok(['subvolume', 'snapshot', ...ro, source, dest], `btrfs subvolume snapshot of '${source}' as '${dest}'`);
  }

  /**
   * `btrfs subvolume delete PATH`. BTRFS_BUSY while it is being sent.
   * `btrfs subvolume delete` follows symlinks, so PATH must be its own real
   * path (no symlink in it or at its end) and a directory, else nothing is
   * deleted (BTRFS_FAILED); with `expect`, the subvolume there must be that
   * one (its id).
   */
  async deleteSubvolume(path: string, expect: { subvolumeId?: bigint } = {}): Promise<void> {
    assertBtrfsPath(path, 'subvolume path');
    const st = await lstat(path);
    if (!st.isDirectory() || (await realpath(path)) !== path) {
      throw new BtrfsError(`'${path}' is not a subvolume reached without symlinks: not deleted`, 'BTRFS_FAILED');
    }
    if (expect.subvolumeId !== undefined && (await this.show(path)).subvolumeId !== expect.subvolumeId) {
      throw new BtrfsError(`'${path}' is not the subvolume zbk meant to delete (another one was put there): not deleted`, 'BTRFS_FAILED');
    }
    await this.ok(['subvolume', 'delete', path], `btrfs subvolume delete of '${path}'`);
  }

  /** The subvolume's `ro` property. */
  async isReadOnly(path: string): Promise<boolean> {
    assertBtrfsPath(path, 'subvolume path');
    const r = await this.ok(['property', 'get', '-ts', path, 'ro'], `btrfs property get ro of '${path}'`);
    return parseReadOnlyProperty(r.stdout);
  }

  /** Set the subvolume's `ro` property. */
  async setReadOnly(path: string, readOnly: boolean): Promise<void> {
    assertBtrfsPath(path, 'subvolume path');
    await this.ok(['property', 'set', '-ts', path, 'ro', String(readOnly)], `btrfs property set ro=${readOnly} on '${path}'`);
  }

  private async mustNotExist(path: string): Promise<void> {
    assertBtrfsPath(path, 'subvolume path');
    try {
      await lstat(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw new BtrfsError(`cannot check '${path}': ${(err as Error).message}`, 'BTRFS_FAILED', { cause: err });
    }
    throw new BtrfsError(`'${path}' already exists — choose another name or delete it`, 'BTRFS_EXISTS');
  }

  // ---- datasets and snapshots -----------------------------------------------------

  /** The real path of the subvolume `name`; BTRFS_NOT_FOUND, BTRFS_NOT_BTRFS or BTRFS_NOT_SUBVOLUME otherwise. */
  async resolveDataset(name: string): Promise<string> {
    const real = await this.realPath(name, 'btrfs dataset (subvolume path)');
    const st = await stat(real);
    if (!st.isDirectory()) throw new BtrfsError(`'${name}' is not a directory, so not a subvolume`, 'BTRFS_NOT_SUBVOLUME');
    await this.mountOf(real);
    await this.show(real);
    return real;
  }

  /** Read-only snapshots of the subvolume `dataset`, oldest first (see the module comment). */
  async listSnapshots(dataset: string): Promise<BtrfsSnapshot[]> {
    const real = await this.realPath(dataset, 'btrfs dataset (subvolume path)');
    const mount = await this.mountOf(real);
    const info = await this.show(real);
    const out: BtrfsSnapshot[] = [];
    for (const e of await this.list(mount.mountPoint, { snapshotsOnly: true, readOnly: true })) {
      if (e.parentUuid !== info.uuid) continue;
      const ok = await this.confirmed(mount, e);
      if (!ok || !ok.info.readOnly) continue;
      const path = ok.path;
      out.push({
        dataset,
        name: relativeBelow(mount.mountPoint, path)!,
        ref: path,
        id: e.receivedUuid ?? e.uuid,
        order: e.otransid,
        creation: e.otime ?? 0,
        uuid: e.uuid,
        parentUuid: e.parentUuid,
        receivedUuid: e.receivedUuid,
        subvolumeId: e.subvolumeId,
        generation: e.generation,
      });
    }
    const seen = new Map<string, string>();
    for (const s of out) {
      const other = seen.get(s.id);
      if (other !== undefined) {
        throw new BtrfsError(
          `snapshots '${other}' and '${s.ref}' of '${dataset}' carry the same received UUID ${s.id} (the dataset was received and made writable without clearing it): their identity is ambiguous — clear it ("btrfs property set -f -ts ${dataset} ro false" on a read-only one) and take new snapshots`,
          'BTRFS_UNSUPPORTED',
        );
      }
      seen.set(s.id, s.ref);
    }
    return out.sort(byOrder);
  }

  // ---- send ---------------------------------------------------------------------

  /** Start `btrfs -q send [flags] [-p FROM] SNAPSHOT`. The flags are honoured exactly or refused (BTRFS_UNSUPPORTED). */
  async openSend(request: SendRequest): Promise<SendStream> {
    assertBtrfsPath(request.snapshot, 'snapshot path');
    if (request.from !== undefined) assertBtrfsPath(request.from, 'incremental base path');
    const flags = [...(request.flags ?? [])];
    if (flags.length > 0) {
      const caps = await this.btrfsCapabilities();
      const unknown = flags.filter((f) => !(BTRFS_SEND_FLAGS as readonly string[]).includes(f));
      const missing = flags.filter((f) => !caps.sendFlags.includes(f));
      if (unknown.length > 0 || missing.length > 0) {
        throw new BtrfsError(
          `cannot "btrfs send ${flags.join(' ')}" here: ${[...new Set([...unknown, ...missing])].join(', ')} ${unknown.length > 0 ? 'is not a flag zbk sends with' : `needs btrfs-progs ≥ 6.0 and a kernel writing send protocol 2 (this one: ${caps.kernelSendProto})`}`,
          'BTRFS_UNSUPPORTED',
        );
      }
      flags.sort((a, b) => BTRFS_SEND_FLAGS.indexOf(a as never) - BTRFS_SEND_FLAGS.indexOf(b as never));
    }
    const argv = [...this.command, '-q', 'send', ...flags, ...(request.from !== undefined ? ['-p', request.from] : []), request.snapshot];
    const what = request.from !== undefined ? `btrfs send of '${request.snapshot}' (incremental from '${request.from}')` : `btrfs send of '${request.snapshot}'`;
    return spawnCompleteStream(argv, this.env, what, btrfsChildErrors);
  }

  /** btrfs cannot estimate a send: always null. */
  async estimateSendSize(request: SendRequest): Promise<number | null> {
    assertBtrfsPath(request.snapshot, 'snapshot path');
    return null;
  }

  // ---- pins -----------------------------------------------------------------------

  /** `<mount point>/.zbk/<dataset UUID>` for the subvolume `dataset`. */
  async pinDirectory(dataset: string): Promise<string> {
    const real = await this.realPath(dataset, 'btrfs dataset (subvolume path)');
    const mount = await this.mountOf(real);
    const info = await this.show(real);
    return join(mount.mountPoint, `${PIN_ROOT}/${info.uuid}`);
  }

  /** zbk's read-only snapshot of `snapshot` (created if needed): what is sent, and the base of the next incremental. */
  async pin(snapshot: SourceSnapshot): Promise<Pin> {
    const info = await this.show(snapshot.ref);
    if (!info.readOnly) throw new BtrfsError(`'${snapshot.ref}' is not read-only: only a read-only snapshot can be pinned and sent`, 'BTRFS_NOT_READ_ONLY');
    const dir = await this.pinDirectory(snapshot.dataset);
    await this.ensurePinRoot(dirname(dir));
    await this.ensurePrivateDir(dir);
    const path = `${dir}/${PIN_PREFIX}${info.uuid}`;
    const exists = await lstat(path).then(
      () => true,
      (err: unknown) => (isErrno(err, 'ENOENT') ? false : Promise.reject(err)),
    );
    if (!exists) await this.createSnapshot(snapshot.ref, path, { readOnly: true });
    const pin = await this.show(path);
    if (pin.parentUuid !== info.uuid || !pin.readOnly) {
      throw new BtrfsError(`'${path}' exists and is not zbk's read-only snapshot of '${snapshot.ref}' — move it away`, 'BTRFS_EXISTS');
    }
    if (pin.receivedUuid !== null) {
      await this.deleteSubvolume(path);
      throw new BtrfsError(
        `'${snapshot.ref}' carries the received UUID ${pin.receivedUuid}, which its snapshots inherit: a stream of zbk's pin would not have an identity of its own — clear it on the dataset and take a new snapshot`,
        'BTRFS_UNSUPPORTED',
      );
    }
    return this.pinOf(snapshot.dataset, path, pin, snapshot.name);
  }

  private pinOf(dataset: string, path: string, pin: SubvolumeInfo, name: string | null): Pin {
    return { dataset, snapshot: { id: pin.parentUuid ?? '', name }, id: pin.uuid, sendOf: path, sendFrom: path, ref: path };
  }

  /** zbk's pins of `dataset`, oldest first. */
  async listPins(dataset: string): Promise<Pin[]> {
    const dir = await this.pinDirectory(dataset);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const byUuid = new Map((await this.listSnapshots(dataset)).map((s) => [s.uuid, s.name]));
    const pins: Array<Pin & { order: bigint; subvolumeId: bigint }> = [];
    for (const n of names) {
      const m = PIN_NAME.exec(n);
      if (!m) continue;
      const info = await this.show(`${dir}/${n}`);
      if (info.parentUuid !== m[1]) continue;
      pins.push({ ...this.pinOf(dataset, `${dir}/${n}`, info, byUuid.get(m[1]!) ?? null), order: info.otransid, subvolumeId: info.subvolumeId });
    }
    return pins.sort(byOrder).map(({ order: _o, subvolumeId: _s, ...pin }) => pin);
  }

  /** Delete a pin (refused for anything that is not one of zbk's pins of its dataset). Already gone: not an error. */
  async unpin(pin: Pin): Promise<void> {
    assertBtrfsPath(pin.ref, 'pin path');
    const dir = await this.pinDirectory(pin.dataset);
    const rel = relativeBelow(dir, pin.ref);
    if (rel === null || !PIN_NAME.test(rel)) throw new BtrfsError(`'${pin.ref}' is not one of zbk's pins of '${pin.dataset}' (those are ${dir}/${PIN_PREFIX}<uuid>): not deleted`, 'BTRFS_FAILED');
    const exists = await lstat(pin.ref).then(
      () => true,
      () => false,
    );
    if (exists) await this.deleteSubvolume(pin.ref);
  }

  /** A pin, else a snapshot, of `dataset` whose identity is `id`; null when there is none. */
  async resolveBase(dataset: string, id: string): Promise<string | null> {
    const pin = (await this.listPins(dataset)).find((p) => p.id === id);
    if (pin) return pin.sendFrom;
    return (await this.listSnapshots(dataset)).find((s) => s.id === id)?.ref ?? null;
  }

  /**
   * A read-only snapshot of the subvolume `dataset` named `name`, taken by
   * zbk (`zbk snapshot`, for users without a snapshot tool):
   * `<pin dir>/snapshots/<name>` (`snapshots` a directory of mode 0700,
   * `.zbk` made as by {@link pin}). Its parent UUID is the dataset's UUID,
   * so {@link listSnapshots} lists it like any other snapshot, by the name
   * returned here (`.zbk/<dataset UUID>/snapshots/<name>`, relative to the
   * mount). BTRFS_EXISTS when `name` is taken (nothing is changed then).
   */
  async takeSnapshot(dataset: string, name: string): Promise<{ name: string; ref: string }> {
    assertBtrfsName(name, 'snapshot name');
    const dir = await this.pinDirectory(dataset);
    const path = `${dir}/${SNAPSHOT_DIR}/${name}`;
    await this.mustNotExist(path);
    await this.ensurePinRoot(dirname(dir));
    await this.ensurePrivateDir(dir);
    await this.ensurePrivateDir(`${dir}/${SNAPSHOT_DIR}`);
    await this.createSnapshot(await this.realPath(dataset, 'btrfs dataset (subvolume path)'), path, { readOnly: true });
    return { name: `${PIN_ROOT}/${basename(dir)}/${SNAPSHOT_DIR}/${name}`, ref: path };
  }

  /**
   * A directory of zbk's own next to the dataset's pins,
   * `<mount point>/.zbk/<dataset UUID>/<name>` (made private: see
   * {@link ensurePrivateDir}), for scratch work on the same filesystem
   * (the restore drill of `zbk verify --deep`).
   */
  async workDirectory(dataset: string, name: string): Promise<string> {
    assertBtrfsName(name, 'work directory name');
    const dir = await this.pinDirectory(dataset);
    await this.ensurePinRoot(dirname(dir));
    await this.ensurePrivateDir(dir);
    await this.ensurePrivateDir(`${dir}/${name}`);
    return `${dir}/${name}`;
  }

  /** zbk's directory `root` (`<mount point>/.zbk`): a subvolume of mode 0700, created when missing, else checked ({@link ensurePrivateDir}). */
  private async ensurePinRoot(root: string): Promise<void> {
    const made = await this.ensurePrivateDir(root, () => this.createSubvolume(root));
    if (made) await chmod(root, 0o700);
  }

  /**
   * `dir` is a directory of zbk's own: created (by `create`, default mkdir
   * 0700) when missing; else it must be a real directory (not a symlink),
   * owned by the user zbk runs as, writable by nobody else. Anything else is
   * refused (BTRFS_UNSAFE): zbk creates and deletes subvolumes in it. True
   * when it was created now.
   */
  async ensurePrivateDir(dir: string, create?: () => Promise<void>): Promise<boolean> {
    assertBtrfsPath(dir, 'zbk directory');
    let st;
    try {
      st = await lstat(dir);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      if (create) await create();
      else await mkdir(dir, { mode: 0o700 });
      return true;
    }
    const uid = process.geteuid?.() ?? st.uid;
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
      throw new BtrfsError(
        `'${dir}' is ${st.isSymbolicLink() ? 'a symlink' : !st.isDirectory() ? 'not a directory' : st.uid !== uid ? `owned by uid ${st.uid}` : 'writable by others'}: zbk keeps its pins and snapshots only in a directory of its own — move it away (zbk makes it again)`,
        'BTRFS_UNSAFE',
      );
    }
    return false;
  }

  // ---- receive --------------------------------------------------------------------

  /**
   * `btrfs receive TARGET` of `input`: the stream's subvolume is created in
   * the existing directory `target`. Resolves with it (read-only, with its
   * received UUID as `id`). What a failed receive created is deleted.
   */
  async receive(target: string, input: Readable, opts: SourceReceiveOptions = {}): Promise<ReceivedSnapshot> {
    const what = `btrfs receive into '${target}'`;
    // Nobody else listens yet: an 'error' now would be uncaught.
    let earlyError: unknown = null;
    const onEarlyError = (err: unknown): void => {
      earlyError ??= err;
    };
    input.on('error', onEarlyError);
    let before: Set<string>;
    let real: string;
    try {
      real = await this.realPath(target, 'receive target');
      if (!(await stat(real)).isDirectory()) throw new BtrfsError(`${what}: '${target}' is not a directory`, 'BTRFS_FAILED');
      await this.mountOf(real);
      before = new Set(await readdir(real));
    } catch (err) {
      input.off('error', onEarlyError);
      input.destroy();
      throw err;
    }
    input.off('error', onEarlyError);
    // -C: btrfs receive chroots into the target first, so no path in the
    // stream (a symlink followed by a write through it) reaches outside it.
    // The real path: a symlink swapped in for the target since it was checked is not followed.
    const argv = [...this.command, 'receive', '-C', real];
    const gone = earlyError ?? input.errored ?? (input.destroyed && !input.readableEnded ? new BtrfsError(`${what}: the input was closed before btrfs started; nothing was received`, 'BTRFS_FAILED', { argv }) : null);
    if (gone !== null) {
      input.destroy();
      throw gone;
    }
    let said: string;
    try {
      const r = await pipeIntoChild(argv, this.env, input, what, btrfsChildErrors, opts.onWritten);
      // btrfs-progs 6.2 prints "At subvol X" on stderr, "At snapshot X" on stdout.
      said = `${r.stderrTail}\n${r.stdoutTail}`;
    } catch (err) {
      await this.discardPartial(real, before);
      throw err;
    }
    const added = (await readdir(real)).filter((n) => !before.has(n));
    const name = parseReceivedName(said) ?? (added.length === 1 ? added[0] : undefined);
    if (name === undefined || name === null || !added.includes(name)) throw new BtrfsError(`${what} succeeded but did not say what it created`, 'BTRFS_PARSE', { argv, stderrTail: said });
    const path = join(real, name);
    const info = await this.show(path);
    if (!info.readOnly || info.receivedUuid === null) {
      throw new BtrfsError(`${what}: '${path}' is not a finished received subvolume (read-only, with a received UUID)`, 'BTRFS_FAILED', { argv, stderrTail: said });
    }
    return { name, ref: path, id: info.receivedUuid, order: info.otransid, received: true, uuid: info.uuid, parentUuid: info.parentUuid, subvolumeId: info.subvolumeId };
  }

  /** Delete what a failed receive left in `dir`: new subvolumes that are not finished (writable, or without a received UUID). */
  private async discardPartial(dir: string, before: Set<string>): Promise<void> {
    const now = await readdir(dir).catch(() => [] as string[]);
    for (const n of now) {
      if (before.has(n)) continue;
      const path = join(dir, n);
      const info = await this.show(path).catch(() => null);
      if (info && (!info.readOnly || info.receivedUuid === null)) await this.deleteSubvolume(path).catch(() => undefined);
    }
  }

  /** Read-only subvolumes directly in the directory `target`, oldest first; empty when it does not exist. */
  async listReceived(target: string): Promise<ReceivedSnapshot[]> {
    assertBtrfsPath(target, 'receive target');
    const exists = await stat(target).then(
      () => true,
      (err: unknown) => (isErrno(err, 'ENOENT') ? false : Promise.reject(err)),
    );
    if (!exists) return [];
    const real = await this.realPath(target, 'receive target');
    const mount = await this.mountOf(real);
    const out: Array<ReceivedSnapshot & { subvolumeId: bigint }> = [];
    for (const e of await this.list(mount.mountPoint, { readOnly: true })) {
      const listed = this.pathUnder(mount, e);
      if (listed === null || dirname(listed) !== real) continue;
      const ok = await this.confirmed(mount, e);
      if (!ok || !ok.info.readOnly) continue;
      const path = ok.path;
      out.push({ name: basename(path), ref: path, id: e.receivedUuid ?? e.uuid, order: e.otransid, received: e.receivedUuid !== null, subvolumeId: e.subvolumeId });
    }
    return out.sort(byOrder).map(({ subvolumeId: _s, ...r }) => r);
  }
}
