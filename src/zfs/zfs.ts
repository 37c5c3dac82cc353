/**
 * The zfs adapter: the only code in zbk that spawns `zfs`/`zpool`. Every
 * method validates its names before spawning anything, spawns argument arrays
 * (no shell), and turns failures into typed ZfsErrors carrying zfs's stderr.
 */
import type { Readable } from 'node:stream';
import { detectCapabilities } from './capabilities.js';
import { classifyZfsFailure, ZfsError, ZfsUnsupportedError } from './errors.js';
import {
  assertAnyName,
  assertBookmarkName,
  assertDatasetName,
  assertHoldTag,
  assertShortSnapshotName,
  assertSnapshotName,
  InvalidNameError,
  splitSnapshotName,
} from './names.js';
import {
  bookmarksFromProperties,
  groupProperties,
  parseGetOutput,
  parseHoldsOutput,
  parseSafeInt,
  parseSendEstimate,
  snapshotFromProps,
  snapshotsFromProperties,
} from './parse.js';
import { pipeInto, run, spawnSend, type RunResult } from './run.js';
import type { Bookmark, ReceiveOptions, SendOptions, SendStream, Snapshot, ZfsCapabilities } from './types.js';

/** The commands to run, as argv prefixes, e.g. `{ zfs: ['sudo', 'zfs'], zpool: ['sudo', 'zpool'] }`. */
export interface ZfsCommands {
  zfs: string[];
  zpool: string[];
}

/** Longest wait for zfs-fuse to discard a failed receive's dataset (see receive()). */
const RECEIVE_DISCARD_WAIT_MS = 180_000;

const SNAPSHOT_PROPS = 'type,guid,createtxg,creation,used,referenced';
const PROPERTY_NAME = /^[a-z][a-z0-9_.:-]*$/;

function nonEmptyArgv(v: string[] | undefined, def: string): string[] {
  if (v === undefined) return [def];
  if (v.length === 0 || v.some((a) => typeof a !== 'string' || a.length === 0)) {
    throw new ZfsError(`the ${def} command must be a non-empty list of arguments — fix [zfs] ${def} in the config`, 'ZFS_MISSING');
  }
  return [...v];
}

export class Zfs {
  readonly commands: ZfsCommands;
  private caps: ZfsCapabilities | null;
  private capsPending: Promise<ZfsCapabilities> | null = null;

  /**
   * @param commands argv prefixes (default `['zfs']` and `['zpool']`).
   * @param options.capabilities skip detection (tests, or a caller that already probed).
   */
  constructor(commands: Partial<ZfsCommands> = {}, options: { capabilities?: ZfsCapabilities } = {}) {
    this.commands = { zfs: nonEmptyArgv(commands.zfs, 'zfs'), zpool: nonEmptyArgv(commands.zpool, 'zpool') };
    this.caps = options.capabilities ?? null;
  }

  // ---- plumbing -------------------------------------------------------------

  private async zfsRaw(args: string[]): Promise<RunResult> {
    return run([...this.commands.zfs, ...args]);
  }

  /** Run zfs; throw the classified ZfsError unless it exits 0. */
  private async zfsOk(args: string[], what: string): Promise<RunResult> {
    const r = await this.zfsRaw(args);
    if (r.exitStatus !== 0) throw this.failure(r, what);
    return r;
  }

  private failure(r: RunResult, what: string): ZfsError {
    return classifyZfsFailure(what, { argv: r.argv, exitStatus: r.exitStatus, signal: r.signal, stderrTail: r.stderrTail });
  }

  private async getRows(names: string[], props: string, extra: string[], what: string) {
    const r = await this.zfsOk(['get', '-Hp', ...extra, '-o', 'name,property,value', props, ...names], what);
    return parseGetOutput(r.stdout);
  }

  // ---- capabilities -----------------------------------------------------------

  /** Detect (once, then cached) what the installed ZFS can do. */
  async capabilities(): Promise<ZfsCapabilities> {
    if (this.caps) return this.caps;
    this.capsPending ??= (async () => {
      const v = await this.zfsRaw(['version']);
      const versionOut = { ok: v.exitStatus === 0, text: `${v.stdout}\n${v.stderr}` };
      let usage = '';
      if (!versionOut.ok) {
        const u = await this.zfsRaw(['-?']);
        usage = `${u.stdout}\n${u.stderr}`;
      }
      const caps = detectCapabilities(versionOut, usage);
      this.caps = caps;
      return caps;
    })();
    try {
      return await this.capsPending;
    } finally {
      this.capsPending = null;
    }
  }

  /** The capabilities if already detected, else null (no I/O). */
  cachedCapabilities(): ZfsCapabilities | null {
    return this.caps;
  }

  // ---- queries ----------------------------------------------------------------

  /** True when the dataset, snapshot or bookmark exists; false when zfs says it does not. */
  async exists(name: string): Promise<boolean> {
    assertAnyName(name);
    const r = await this.zfsRaw(['get', '-Hp', '-o', 'value', 'type', name]);
    if (r.exitStatus === 0) return true;
    const err = this.failure(r, `zfs get of '${name}'`);
    if (err.code === 'ZFS_NOT_FOUND') return false;
    throw err;
  }

  /** Properties of one object, exactly as `zfs get -Hp` prints them (`-` for not applicable). */
  async getProperties(name: string, props: string[]): Promise<Map<string, string>> {
    assertAnyName(name);
    for (const p of props) if (!PROPERTY_NAME.test(p)) throw new InvalidNameError('property name', p, 'not a ZFS property name');
    const rows = await this.getRows([name], props.join(','), [], `zfs get of '${name}'`);
    return groupProperties(rows).get(name) ?? new Map();
  }

  /** Snapshots of `dataset` itself (not its children), ordered by createtxg. */
  async listSnapshots(dataset: string): Promise<Snapshot[]> {
    assertDatasetName(dataset);
    // `get -d 1` works on OpenZFS and zfs-fuse alike (zfs-fuse has no `list -p`, and
    // its `get` takes no `-t`); it also returns direct children, filtered out by name.
    const rows = await this.getRows([dataset], SNAPSHOT_PROPS, ['-d', '1'], `listing snapshots of '${dataset}'`);
    return snapshotsFromProperties(rows, dataset);
  }

  /** One snapshot by full name; ZfsNotFoundError (ZFS_NOT_FOUND) when it does not exist. */
  async getSnapshot(name: string): Promise<Snapshot> {
    const { dataset, shortName } = splitSnapshotName(name);
    const rows = await this.getRows([name], SNAPSHOT_PROPS, [], `zfs get of snapshot '${name}'`);
    const props = groupProperties(rows).get(name);
    if (!props || props.get('type') !== 'snapshot') {
      throw new ZfsError(`'${name}' is not a snapshot according to zfs get`, 'ZFS_PARSE');
    }
    return snapshotFromProps(name, dataset, shortName, props);
  }

  // ---- send / receive -----------------------------------------------------------

  private sendFlags(opts: SendOptions, caps: ZfsCapabilities | null): string[] {
    const wantsOptional = opts.raw || opts.compressed || opts.largeBlocks || opts.embeddedData || opts.from?.includes('#');
    if (wantsOptional && !caps) {
      throw new ZfsError('zfs capabilities are not known yet — await zfs.capabilities() before send()', 'ZFS_NOT_READY');
    }
    const flags: string[] = [];
    // Flags the implementation lacks are dropped: -c/-L/-e only change the encoding,
    // and without -w support there is no native encryption that -w would preserve.
    if (opts.raw && caps?.rawSend) flags.push('-w');
    if (opts.compressed && caps?.compressedSend) flags.push('-c');
    if (opts.largeBlocks && caps?.largeBlocks) flags.push('-L');
    if (opts.embeddedData && caps?.embeddedData) flags.push('-e');
    if (opts.from !== undefined) {
      if (opts.from.includes('#')) {
        assertBookmarkName(opts.from);
        if (!caps?.bookmarks) throw new ZfsUnsupportedError(`cannot send from bookmark '${opts.from}': this ZFS has no bookmarks — send from a snapshot`);
      } else {
        assertSnapshotName(opts.from);
      }
      flags.push('-i', opts.from);
    }
    return flags;
  }

  /**
   * Start `zfs send` of `opts.snapshot` (incremental from `opts.from`). Names are
   * validated synchronously. When raw/compressed/largeBlocks/embeddedData or a
   * bookmark base is requested, `capabilities()` must have been awaited first
   * (ZFS_NOT_READY otherwise), so the flags — and thus the stream bytes — never
   * depend on a guess.
   */
  send(opts: SendOptions): SendStream {
    assertSnapshotName(opts.snapshot);
    const flags = this.sendFlags(opts, this.caps);
    const argv = [...this.commands.zfs, 'send', ...flags, opts.snapshot];
    const what = opts.from ? `zfs send of '${opts.snapshot}' (incremental from '${opts.from}')` : `zfs send of '${opts.snapshot}'`;
    return spawnSend(argv, what);
  }

  /**
   * Like {@link send}, but detects capabilities first, so it never fails with
   * ZFS_NOT_READY. When `raw` is asked for and this ZFS cannot send raw, the
   * dataset is checked: if it reports native encryption, sending without -w
   * would not be the same stream, so ZFS_UNSUPPORTED is thrown.
   */
  async openSend(opts: SendOptions): Promise<SendStream> {
    const { dataset } = splitSnapshotName(opts.snapshot);
    const caps = await this.capabilities();
    if (opts.raw && !caps.rawSend && (await this.isEncrypted(dataset))) {
      throw new ZfsUnsupportedError(`'${dataset}' is encrypted but this ZFS cannot send raw (-w) — upgrade to OpenZFS 2.x`);
    }
    return this.send(opts);
  }

  /** True when `dataset` uses native encryption (false where the property does not exist). */
  async isEncrypted(dataset: string): Promise<boolean> {
    assertDatasetName(dataset);
    const r = await this.zfsRaw(['get', '-Hp', '-o', 'value', 'encryption', dataset]);
    if (r.exitStatus !== 0) {
      // zfs-fuse and other pre-encryption ZFS reject the property name itself.
      if (/invalid property/i.test(r.stderr)) return false;
      throw this.failure(r, `zfs get encryption of '${dataset}'`);
    }
    const v = r.stdout.trim();
    return v !== 'off' && v !== '-' && v !== '';
  }

  /** Estimated stream size in bytes (`zfs send -nP`), or null where unsupported. */
  async estimateSendSize(opts: SendOptions): Promise<number | null> {
    assertSnapshotName(opts.snapshot);
    const caps = await this.capabilities();
    const flags = this.sendFlags(opts, caps);
    if (!caps.sendEstimate) return null;
    const r = await this.zfsOk(['send', '-nP', ...flags, opts.snapshot], `zfs send -nP of '${opts.snapshot}'`);
    return parseSendEstimate(`${r.stdout}\n${r.stderr}`);
  }

  /**
   * `zfs receive` of `input` into `target` (a dataset, or a full snapshot name).
   * Rejects with the input's own error if `input` fails (zfs is killed so the
   * partial receive is discarded), else with a ZfsError carrying zfs's stderr.
   * An input that fails (or is destroyed) before zfs is spawned — while the
   * checks below run, or already before the call — rejects the same way
   * without spawning `zfs receive` at all.
   */
  async receive(target: string, input: Readable, opts: ReceiveOptions = {}): Promise<void> {
    if (target.includes('@')) assertSnapshotName(target);
    else assertDatasetName(target);
    const flags: string[] = [];
    if (opts.force) flags.push('-F');
    if (opts.unmounted) flags.push('-u');
    const what = `zfs receive into '${target}'`;
    const dataset = target.split('@')[0]!;
    // Nobody else may listen yet: an 'error' now would be uncaught, and a
    // destroyed input piped into zfs would never end its stdin.
    let earlyError: unknown = null;
    const onEarlyError = (err: unknown): void => {
      earlyError ??= err;
    };
    input.on('error', onEarlyError);
    let existedBefore: boolean;
    try {
      if (opts.resumable && (await this.capabilities()).resumeTokens) flags.push('-s');
      existedBefore = await this.exists(dataset);
    } finally {
      input.off('error', onEarlyError);
    }
    const argv = [...this.commands.zfs, 'receive', ...flags, target];
    const gone = earlyError ?? input.errored ?? (input.destroyed && !input.readableEnded ? new ZfsError(`${what}: the input was closed before zfs started; nothing was received`, 'ZFS_FAILED', { argv }) : null);
    if (gone !== null) {
      input.destroy();
      throw gone;
    }

    try {
      await pipeInto(argv, input, what, opts.onWritten);
    } catch (err) {
      // zfs-fuse's daemon discards a cut-off receive asynchronously, after the
      // client process is gone: wait until a dataset this receive created is
      // gone too, so callers never find a partial target. The bound is only
      // against a wedged daemon: on a loaded machine the discard took over
      // 15 s (OpenZFS discards before the client exits; nothing to wait for).
      if (!existedBefore) await this.waitGone(dataset, RECEIVE_DISCARD_WAIT_MS);
      throw err;
    }
  }

  /** Poll until `dataset` no longer exists, for at most `timeoutMs`. */
  private async waitGone(dataset: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!(await this.exists(dataset).catch(() => false))) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  // ---- holds ------------------------------------------------------------------

  /** Place hold `tag` on `snapshot`. Holding an already held tag is not an error. */
  async hold(tag: string, snapshot: string): Promise<void> {
    assertHoldTag(tag);
    assertSnapshotName(snapshot);
    const r = await this.zfsRaw(['hold', tag, snapshot]);
    if (r.exitStatus === 0 || /tag already exists/i.test(r.stderr)) return;
    throw this.failure(r, `zfs hold '${tag}' on '${snapshot}'`);
  }

  /** Release hold `tag` from `snapshot`. Releasing a hold that is not there is not an error. */
  async release(tag: string, snapshot: string): Promise<void> {
    assertHoldTag(tag);
    assertSnapshotName(snapshot);
    const r = await this.zfsRaw(['release', tag, snapshot]);
    if (r.exitStatus === 0 || /no such tag/i.test(r.stderr)) return;
    throw this.failure(r, `zfs release '${tag}' from '${snapshot}'`);
  }

  /** Hold tags on `snapshot`, or null where `zfs holds` is unsupported (use userRefs). */
  async holds(snapshot: string): Promise<string[] | null> {
    assertSnapshotName(snapshot);
    if (!(await this.capabilities()).holdsList) return null;
    const r = await this.zfsOk(['holds', '-H', snapshot], `zfs holds of '${snapshot}'`);
    return parseHoldsOutput(r.stdout)
      .filter((h) => h.snapshot === snapshot)
      .map((h) => h.tag);
  }

  /** Number of user holds on `snapshot` (works everywhere). */
  async userRefs(snapshot: string): Promise<number> {
    assertSnapshotName(snapshot);
    const props = await this.getProperties(snapshot, ['userrefs']);
    return parseSafeInt(props.get('userrefs') ?? '', `userrefs of ${snapshot}`);
  }

  // ---- bookmarks --------------------------------------------------------------

  private async requireBookmarks(what: string): Promise<void> {
    if (!(await this.capabilities()).bookmarks) {
      throw new ZfsUnsupportedError(`${what}: this ZFS has no bookmarks — hold the snapshot instead`);
    }
  }

  /** Create bookmark `bookmark` (full `pool/ds#mark` or short `mark`) of `snapshot`. Returns the full name. */
  async bookmark(snapshot: string, bookmark: string): Promise<string> {
    const { dataset } = splitSnapshotName(snapshot);
    const full = assertBookmarkName(bookmark.includes('#') ? bookmark : `${dataset}#${assertShortSnapshotName(bookmark)}`);
    await this.requireBookmarks(`zfs bookmark '${full}'`);
    await this.zfsOk(['bookmark', snapshot, full], `zfs bookmark of '${snapshot}' as '${full}'`);
    return full;
  }

  /** Bookmarks of `dataset`, ordered by createtxg. */
  async listBookmarks(dataset: string): Promise<Bookmark[]> {
    assertDatasetName(dataset);
    await this.requireBookmarks(`listing bookmarks of '${dataset}'`);
    const rows = await this.getRows([dataset], 'type,guid,createtxg,creation', ['-d', '1', '-t', 'bookmark'], `listing bookmarks of '${dataset}'`);
    return bookmarksFromProperties(rows, dataset);
  }

  /** Destroy bookmark `pool/ds#mark`. */
  async destroyBookmark(name: string): Promise<void> {
    assertBookmarkName(name);
    await this.requireBookmarks(`zfs destroy '${name}'`);
    await this.zfsOk(['destroy', name], `zfs destroy of bookmark '${name}'`);
  }

  // ---- datasets -----------------------------------------------------------------

  /** `zfs create [-p] [-o k=v]... name`. */
  async createDataset(name: string, opts: { parents?: boolean; properties?: Record<string, string> } = {}): Promise<void> {
    assertDatasetName(name);
    const args = ['create'];
    if (opts.parents) args.push('-p');
    for (const [k, v] of Object.entries(opts.properties ?? {})) args.push('-o', propertyAssignment(k, v));
    args.push(name);
    await this.zfsOk(args, `zfs create of '${name}'`);
  }

  /** `zfs set k=v name`. */
  async setProperty(name: string, property: string, value: string): Promise<void> {
    assertAnyName(name);
    await this.zfsOk(['set', propertyAssignment(property, value), name], `zfs set ${property} on '${name}'`);
  }

  /** `zfs snapshot pool/ds@snap`. */
  async snapshot(name: string): Promise<void> {
    assertSnapshotName(name);
    await this.zfsOk(['snapshot', name], `zfs snapshot '${name}'`);
  }

  /** `zfs destroy [-r] name` (dataset or snapshot). Held snapshots fail with ZfsBusyError. */
  async destroy(name: string, opts: { recursive?: boolean } = {}): Promise<void> {
    assertAnyName(name);
    await this.zfsOk(['destroy', ...(opts.recursive ? ['-r'] : []), name], `zfs destroy of '${name}'`);
  }

  /** `zfs clone snapshot target`: a writable dataset showing the snapshot's files (restore drills compare against it). */
  async clone(snapshot: string, target: string): Promise<void> {
    assertSnapshotName(snapshot);
    assertDatasetName(target);
    await this.zfsOk(['clone', snapshot, target], `zfs clone of '${snapshot}' to '${target}'`);
  }

  /** Where `dataset` is mounted, or null when it is not mounted or has no mountpoint. */
  async mountpoint(dataset: string): Promise<string | null> {
    assertDatasetName(dataset);
    const p = await this.getProperties(dataset, ['mountpoint', 'mounted']);
    const mp = p.get('mountpoint');
    if (!mp || !mp.startsWith('/') || p.get('mounted') !== 'yes') return null;
    return mp;
  }

  /** Mount `dataset` if needed (zfs-fuse does not always mount received datasets) and return its mountpoint. */
  async mount(dataset: string): Promise<string> {
    assertDatasetName(dataset);
    const p = await this.getProperties(dataset, ['mountpoint', 'mounted']);
    const mp = p.get('mountpoint');
    if (!mp || !mp.startsWith('/')) {
      throw new ZfsError(`'${dataset}' has mountpoint ${JSON.stringify(mp ?? '-')} — set a mountpoint path to mount it`, 'ZFS_FAILED');
    }
    if (p.get('mounted') === 'yes') return mp;
    const r = await this.zfsRaw(['mount', dataset]);
    if (r.exitStatus !== 0 && !/already mounted/i.test(r.stderr)) throw this.failure(r, `zfs mount of '${dataset}'`);
    return mp;
  }

  /** Unmount `dataset` if it is mounted (not being mounted is not an error). */
  async unmount(dataset: string): Promise<void> {
    assertDatasetName(dataset);
    if ((await this.mountpoint(dataset)) === null) return;
    const r = await this.zfsRaw(['unmount', dataset]);
    if (r.exitStatus !== 0 && !/not currently mounted/i.test(r.stderr)) throw this.failure(r, `zfs unmount of '${dataset}'`);
  }

  /**
   * Unmount and mount again, returning the mountpoint. zfs-fuse keeps serving
   * stale cached file contents of a mounted dataset after an incremental
   * receive into it; a fresh mount shows what was received.
   */
  async remount(dataset: string): Promise<string> {
    await this.unmount(dataset);
    return this.mount(dataset);
  }
}

function propertyAssignment(property: string, value: string): string {
  if (!PROPERTY_NAME.test(property)) throw new InvalidNameError('property name', property, 'not a ZFS property name');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) throw new InvalidNameError('property value', value, 'contains control characters');
  return `${property}=${value}`;
}
