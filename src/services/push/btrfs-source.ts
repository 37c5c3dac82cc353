/**
 * The push port on btrfs (./source.ts). A dataset is a subvolume named by
 * its real absolute path; its snapshots are the read-only subvolumes whose
 * parent UUID is its UUID (src/btrfs/btrfs.ts).
 *
 * btrfs has no bookmarks and no holds, and `btrfs send -p` needs the whole
 * parent tree on both sides. So before a stream begins zbk takes its own
 * read-only snapshot of the user's snapshot, the *pin*
 * (`<mount>/.zbk/<dataset UUID>/base-<snapshot UUID>`), and sends the pin:
 * the stream records the pin's UUID, a restore receives a subvolume whose
 * received UUID is that UUID, and the next incremental is sent from the pin
 * whatever the user's snapshot tool (snapper, btrbk) pruned meanwhile. The
 * pin of the last pushed snapshot is kept; those of an upload being resumed
 * too; every other pin is deleted by {@link BtrfsPushSource.reconcile}.
 * A pin costs only the blocks that later change in the dataset, as the
 * user's own snapshot did.
 */
import { lstat, readdir } from 'node:fs/promises';
import { UsageError, OperationError } from '../../errors.js';
import { BtrfsError } from '../../btrfs/errors.js';
import { PIN_ROOT, type Btrfs } from '../../btrfs/btrfs.js';
import type { BtrfsSnapshot } from '../../btrfs/types.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { StreamRow, StreamWithVolumes, SnapshotRef } from '../../manifest/types.js';
import type { Pin, SendStream } from '../../source/types.js';
import type { BaseRef } from './base-protection.js';
import type { FlagChoice } from './send-flags.js';
import { idToUuid, uuidToId, type PushSendRequest, type PushSnapshot, type PushSource } from './source.js';

/** Errors of a dataset path that are the user's to fix (exit 2), not a failed backup. */
const NOT_A_DATASET = new Set(['BTRFS_NOT_BTRFS', 'BTRFS_NOT_SUBVOLUME']);

/**
 * The dataset as the config names it, checked: it must be the real path of
 * a btrfs subvolume (a symlink or a path through one is refused: the name is
 * the dataset's identity in the manifest). UsageError (exit 2) for a path
 * that is not one; BTRFS_NOT_FOUND (a failed backup) when it does not exist.
 */
export async function resolveBtrfsDataset(btrfs: Btrfs, dataset: string): Promise<string> {
  let real: string;
  try {
    real = await btrfs.resolveDataset(dataset);
  } catch (err) {
    if (err instanceof BtrfsError && NOT_A_DATASET.has(err.code)) {
      throw new UsageError(`${dataset} is not a btrfs dataset: ${err.message.split('\n')[0]}`, err.code === 'BTRFS_NOT_BTRFS' ? 'NOT_BTRFS' : 'NOT_SUBVOLUME');
    }
    throw err;
  }
  if (real !== dataset) {
    throw new UsageError(`${dataset} is reached through a symlink (it is ${real}): name the subvolume by its real path in the config`, 'DATASET_SYMLINK');
  }
  return real;
}

/** Apparent bytes of the regular files and symlinks below `dir` (symlinks not followed; nested subvolumes are empty directories in a snapshot). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile() || e.isSymbolicLink()) total += (await lstat(p)).size;
  }
  return total;
}

export class BtrfsPushSource implements PushSource {
  readonly kind = 'btrfs' as const;

  /** One listing of the pins per dataset, kept until this port pins or unpins (a push runs under the dataset's lock). */
  private readonly pinCache = new Map<string, Promise<Pin[]>>();

  /** `manifest` null: a listing port (./sources.ts `sourceListingFor`), whose type offers no method that needs it. */
  constructor(
    private readonly btrfs: Btrfs,
    private readonly manifest: Pick<Manifest, 'lastPushedSnapshot'> | null,
  ) {}

  async exists(dataset: string): Promise<boolean> {
    try {
      await resolveBtrfsDataset(this.btrfs, dataset);
      return true;
    } catch (err) {
      if (err instanceof BtrfsError && err.code === 'BTRFS_NOT_FOUND') return false;
      throw err;
    }
  }

  private async snapshots(dataset: string): Promise<BtrfsSnapshot[]> {
    await resolveBtrfsDataset(this.btrfs, dataset);
    return this.btrfs.listSnapshots(dataset);
  }

  async listSnapshots(dataset: string): Promise<PushSnapshot[]> {
    return (await this.snapshots(dataset)).map((s) => ({
      name: s.ref,
      shortName: s.name,
      guid: uuidToId(s.uuid),
      createtxg: s.order,
      creation: s.creation,
      referenced: 0,
    }));
  }

  private pins(dataset: string): Promise<Pin[]> {
    let listed = this.pinCache.get(dataset);
    if (!listed) {
      listed = this.btrfs.listPins(dataset);
      this.pinCache.set(dataset, listed);
      listed.catch(() => this.pinCache.delete(dataset));
    }
    return listed;
  }

  async pushedIdentity(dataset: string, snapshot: PushSnapshot): Promise<bigint | null> {
    const uuid = idToUuid(snapshot.guid);
    const pin = (await this.pins(dataset)).find((p) => p.snapshot.id === uuid);
    return pin ? uuidToId(pin.id) : null;
  }

  async prepareTarget(dataset: string, snapshot: PushSnapshot): Promise<bigint> {
    const s = (await this.snapshots(dataset)).find((x) => uuidToId(x.uuid) === snapshot.guid);
    if (!s) throw new OperationError(`${snapshot.name} vanished before it could be pinned; run the push again`, 'NO_SUCH_SNAPSHOT');
    try {
      return uuidToId((await this.btrfs.pin(s)).id);
    } finally {
      this.pinCache.delete(dataset);
    }
  }

  private async pinWithId(dataset: string, id: bigint): Promise<Pin | undefined> {
    return (await this.pins(dataset)).find((p) => uuidToId(p.id) === id);
  }

  /**
   * Through zbk's pin of it; where the pin is gone (only the last pushed
   * snapshot keeps one), the snapshot of that name whose creation
   * generation is the recorded one (the same snapshot: a name reused later
   * has another).
   */
  async findLocal(dataset: string, ref: SnapshotRef & { createtxg?: bigint }): Promise<PushSnapshot | null> {
    const snaps = await this.listSnapshots(dataset);
    const pin = await this.pinWithId(dataset, ref.guid);
    if (pin) {
      const uuid = uuidToId(pin.snapshot.id);
      return snaps.find((s) => s.guid === uuid) ?? null;
    }
    return ref.createtxg === undefined ? null : (snaps.find((s) => s.shortName === ref.name && s.createtxg === ref.createtxg) ?? null);
  }

  async resolveTarget(dataset: string, to: SnapshotRef): Promise<string | null> {
    return (await this.pinWithId(dataset, to.guid))?.sendOf ?? null;
  }

  async localOrder(dataset: string, ref: SnapshotRef): Promise<bigint | null> {
    const pin = await this.pinWithId(dataset, ref.guid);
    if (!pin) return null;
    const uuid = uuidToId(pin.snapshot.id);
    const snap = (await this.listSnapshots(dataset)).find((s) => s.guid === uuid);
    // The user's snapshot pruned: the pin was made after it, before any snapshot newer than it was pushed.
    return snap ? snap.createtxg : (await this.btrfs.show(pin.ref)).otransid;
  }

  baseGoneReason(last: SnapshotRef): string {
    return `zbk's pin of the last pushed snapshot ${last.name} (in <mount>/${PIN_ROOT}/) no longer exists locally: it was deleted, or the dataset is now on another filesystem`;
  }

  async resolveBase(dataset: string, base: SnapshotRef): Promise<BaseRef | null> {
    const pin = await this.pinWithId(dataset, base.guid);
    return pin ? { name: base.name, guid: base.guid, sendFrom: pin.sendFrom } : null;
  }

  async reconcile(dataset: string, inFlight: StreamWithVolumes | null): Promise<void> {
    if (!this.manifest) throw new Error('internal: a btrfs listing port was asked to change what zbk protects');
    const keep = new Set<bigint>();
    const last = this.manifest.lastPushedSnapshot(dataset);
    if (last) keep.add(last.guid);
    if (inFlight) {
      keep.add(inFlight.to.guid);
      if (inFlight.from) keep.add(inFlight.from.guid);
    }
    try {
      for (const pin of await this.pins(dataset)) {
        if (!keep.has(uuidToId(pin.id))) await this.btrfs.unpin(pin);
      }
    } finally {
      this.pinCache.delete(dataset);
    }
  }

  /** The kernel refuses to delete a subvolume while it is being sent, and the pins are zbk's own: nothing to hold. */
  whileSending<T>(_dataset: string, _stream: StreamRow, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  /** Every flag this machine can honour (`--proto=2 --compressed-data` where kernel and progs allow); an incremental of either protocol is received on top of the other. */
  async chooseFlags(): Promise<FlagChoice> {
    return { flags: [...(await this.btrfs.capabilities()).sendFlags], fullBecause: null };
  }

  async sendFlagsOf(stream: StreamRow): Promise<string[]> {
    const flags = stream.sendFlags ?? [];
    const caps = await this.btrfs.capabilities();
    const missing = flags.filter((f) => !caps.sendFlags.includes(f));
    if (missing.length > 0) {
      throw new OperationError(
        `the upload of ${stream.dataset} snapshot ${stream.to.name} was started with "btrfs send ${flags.join(' ')}", and btrfs ${caps.version ?? ''} here cannot send ${missing.join(', ')}: ` +
          'sent otherwise the stream would not be the same bytes as the volumes already uploaded. Run the push where it was started',
        'SEND_FLAGS_UNAVAILABLE',
      );
    }
    return [...flags];
  }

  /** btrfs has no referenced size nor a send estimate: the snapshot's files are measured (so a consolidation or a dry run does not price a new full at $0). */
  fullStreamSize(snapshot: PushSnapshot): Promise<number> {
    return treeBytes(snapshot.name);
  }

  async estimate(): Promise<number | null> {
    return null;
  }

  openSend(request: PushSendRequest): Promise<SendStream> {
    return this.btrfs.openSend({ snapshot: request.snapshot, ...(request.from !== undefined ? { from: request.from } : {}), flags: request.flags });
  }
}
