/**
 * What protects the base of the next incremental (src/services/push/base-protection.ts),
 * against a recording stand-in for an OpenZFS with bookmarks: zfs-fuse has
 * none, so bookmark mode cannot run there (the OpenZFS lane runs it for real).
 * The order of zfs operations is what makes a kill at any moment safe.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StreamWithVolumes, SnapshotRow } from '../../src/manifest/types.js';
import { BASE_HOLD_TAG, BaseProtection, SEND_HOLD_TAG, describeProtection, protectionMode } from '../../src/services/push/base-protection.js';
import type { Bookmark, Snapshot, ZfsCapabilities } from '../../src/zfs/types.js';
import { openzfsCaps, zfsFuseCaps } from '../helpers/capabilities.js';

const DS = 'tank/photos';

const openzfs = openzfsCaps;
const fuse = zfsFuseCaps;

function snapshot(short: string, guid: bigint): Snapshot {
  return { name: `${DS}@${short}`, dataset: DS, shortName: short, guid, createtxg: guid * 10n, creation: 1_700_000_000, used: 0, referenced: 0 };
}

/** The zfs calls BaseProtection makes, recorded in order, over in-memory snapshots, bookmarks and holds. */
class RecordingZfs {
  readonly ops: string[] = [];
  readonly holds = new Map<string, Set<string>>();
  bookmarks: Bookmark[] = [];
  failBookmark = false;
  constructor(
    public snapshots: Snapshot[],
    private readonly caps: ZfsCapabilities,
  ) {}
  async capabilities(): Promise<ZfsCapabilities> {
    return this.caps;
  }
  async listSnapshots(): Promise<Snapshot[]> {
    return [...this.snapshots];
  }
  async listBookmarks(): Promise<Bookmark[]> {
    if (!this.caps.bookmarks) throw new Error('no bookmarks here');
    return [...this.bookmarks];
  }
  async bookmark(snap: string, name: string): Promise<string> {
    if (this.failBookmark) throw new Error('permission denied');
    const s = this.snapshots.find((x) => x.name === snap)!;
    this.ops.push(`bookmark ${name}`);
    this.bookmarks.push({ name, dataset: DS, shortName: name.split('#')[1]!, guid: s.guid, createtxg: s.createtxg, creation: s.creation });
    return name;
  }
  async destroyBookmark(name: string): Promise<void> {
    this.ops.push(`destroy ${name}`);
    this.bookmarks = this.bookmarks.filter((b) => b.name !== name);
  }
  async hold(tag: string, snap: string): Promise<void> {
    this.ops.push(`hold ${tag} ${snap}`);
    this.holds.set(snap, new Set([...(this.holds.get(snap) ?? []), tag]));
  }
  async release(tag: string, snap: string): Promise<void> {
    this.ops.push(`release ${tag} ${snap}`);
    this.holds.get(snap)?.delete(tag);
  }
  async exists(name: string): Promise<boolean> {
    return this.snapshots.some((s) => s.name === name);
  }
  tags(short: string): string[] {
    return [...(this.holds.get(`${DS}@${short}`) ?? [])].sort();
  }
}

/** The manifest's part: the last pushed snapshot and the kv store the hold records live in. */
class FakeManifest {
  readonly kv = new Map<string, unknown>();
  constructor(public last: SnapshotRow | null) {}
  lastPushedSnapshot(): SnapshotRow | null {
    return this.last;
  }
  getValue(key: string): unknown {
    return this.kv.get(key) ?? null;
  }
  setValue(key: string, value: unknown): void {
    this.kv.set(key, value);
  }
  recorded(): unknown {
    return this.kv.get(`holds:${DS}`) ?? [];
  }
}

function pushed(s: Snapshot): SnapshotRow {
  return { dataset: DS, name: s.shortName, guid: s.guid, createtxg: s.createtxg, creation: s.creation };
}

function setup(caps: ZfsCapabilities, wanted: 'bookmark' | 'hold') {
  const s1 = snapshot('s1', 1n);
  const s2 = snapshot('s2', 2n);
  const zfs = new RecordingZfs([s1, s2], caps);
  const manifest = new FakeManifest(pushed(s1));
  const warnings: string[] = [];
  const protection = new BaseProtection(zfs, manifest, wanted, (m) => warnings.push(m));
  return { s1, s2, zfs, manifest, warnings, protection };
}

describe('base protection', () => {
  it('is a bookmark only where asked for and the ZFS has bookmarks, else a hold; doctor says which and why', () => {
    assert.equal(protectionMode('bookmark', openzfs), 'bookmark');
    assert.equal(protectionMode('bookmark', fuse), 'hold');
    assert.equal(protectionMode('hold', openzfs), 'hold');
    assert.equal(protectionMode('hold', fuse), 'hold');
    assert.match(describeProtection('bookmark', openzfs), /no long-lived hold/);
    assert.match(describeProtection('bookmark', fuse), /hold "zbk".*this ZFS has no bookmarks/);
    assert.match(describeProtection('hold', openzfs), /hold "zbk".*protect_base = "hold"/);
  });

  it('bookmark mode: the base gets only the bookmark, made before the older one goes; an older zbk\'s base hold is released', async () => {
    const { s1, s2, zfs, manifest, warnings, protection } = setup(openzfs, 'bookmark');
    // What an older zbk left: the base hold on @s1 (recorded, as it recorded every hold) and its bookmark.
    await zfs.hold(BASE_HOLD_TAG, s1.name);
    manifest.setValue(`holds:${DS}`, [{ tag: BASE_HOLD_TAG, snapshot: 's1' }]);
    zfs.bookmarks.push({ name: `${DS}#zbk-s1`, dataset: DS, shortName: 'zbk-s1', guid: 1n, createtxg: 10n, creation: 0 });
    zfs.ops.length = 0;

    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.ops, [`release zbk ${s1.name}`], 'the bookmark of @s1 exists: only the old hold is released');
    assert.deepEqual(zfs.tags('s1'), [], 'a pruner can destroy @s1 now');
    assert.deepEqual(manifest.recorded(), []);

    // @s2 is pushed: its bookmark first, then the older bookmark goes; still no long-lived hold.
    manifest.last = pushed(s2);
    zfs.ops.length = 0;
    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.ops, [`bookmark ${DS}#zbk-s2`, `destroy ${DS}#zbk-s1`]);
    assert.deepEqual(zfs.tags('s2'), []);
    assert.deepEqual(warnings, []);

    // The pruner destroys @s2: the next incremental is sent from the bookmark.
    zfs.snapshots = zfs.snapshots.filter((s) => s.shortName !== 's2');
    assert.deepEqual(await protection.resolveBase(DS, { name: 's2', guid: 2n }), { name: 's2', guid: 2n, sendFrom: `${DS}#zbk-s2` });
    zfs.ops.length = 0;
    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.ops, [], 'the bookmark of a destroyed base is kept');
  });

  it('bookmark mode: a bookmark that cannot be made leaves the base held instead (with a warning), released once it can', async () => {
    const { s1, zfs, manifest, warnings, protection } = setup(openzfs, 'bookmark');
    zfs.failBookmark = true;
    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.tags('s1'), [BASE_HOLD_TAG]);
    assert.match(warnings.join('\n'), /could not bookmark @s1.*permission denied/);
    zfs.failBookmark = false;
    zfs.ops.length = 0;
    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.ops, [`bookmark ${DS}#zbk-s1`, `release zbk ${s1.name}`], 'bookmark first, then the hold goes');
    assert.deepEqual(manifest.recorded(), []);
  });

  it('hold mode (asked for, or a ZFS without bookmarks): the base is held, the older base released; bookmarks too where they exist', async () => {
    for (const caps of [openzfs, fuse]) {
      const { s1, s2, zfs, manifest, protection } = setup(caps, caps === fuse ? 'bookmark' : 'hold');
      await protection.reconcile(DS, null);
      assert.deepEqual(zfs.tags('s1'), [BASE_HOLD_TAG], caps.implementation);
      manifest.last = pushed(s2);
      zfs.ops.length = 0;
      await protection.reconcile(DS, null);
      const expected = caps.bookmarks
        ? [`bookmark ${DS}#zbk-s2`, `destroy ${DS}#zbk-s1`, `hold zbk ${s2.name}`, `release zbk ${s1.name}`]
        : [`hold zbk ${s2.name}`, `release zbk ${s1.name}`];
      assert.deepEqual(zfs.ops, expected, caps.implementation);
      assert.deepEqual(manifest.recorded(), [{ tag: BASE_HOLD_TAG, snapshot: 's2' }]);
    }
  });

  it('send holds: kept for the upload about to resume, released when the send ends, and those of a killed run released', async () => {
    const { s1, s2, zfs, manifest, protection } = setup(openzfs, 'bookmark');
    // A killed run's send holds on @s1 and @s2 (recorded before placed).
    manifest.setValue(`holds:${DS}`, [{ tag: SEND_HOLD_TAG, snapshot: 's1' }, { tag: SEND_HOLD_TAG, snapshot: 's2' }]);
    await zfs.hold(SEND_HOLD_TAG, s1.name);
    await zfs.hold(SEND_HOLD_TAG, s2.name);
    const inFlight = { from: { name: 's1', guid: 1n }, to: { name: 's2' } } as unknown as StreamWithVolumes;
    await protection.reconcile(DS, inFlight);
    assert.deepEqual([zfs.tags('s1'), zfs.tags('s2')], [[SEND_HOLD_TAG], [SEND_HOLD_TAG]], 'the resuming upload keeps its holds');
    const seen = await protection.whileSending(DS, ['s2', 's1', 'gone'], async () => [zfs.tags('s1'), zfs.tags('s2')]);
    assert.deepEqual(seen, [[SEND_HOLD_TAG], [SEND_HOLD_TAG]]);
    assert.deepEqual([zfs.tags('s1'), zfs.tags('s2')], [[], []], 'released when the send ended');
    await zfs.hold(SEND_HOLD_TAG, s2.name);
    manifest.setValue(`holds:${DS}`, [{ tag: SEND_HOLD_TAG, snapshot: 's2' }]);
    await protection.reconcile(DS, null);
    assert.deepEqual(zfs.tags('s2'), [], 'a killed run\'s send hold is released by the next run');
    await assert.rejects(protection.whileSending(DS, ['s2'], async () => Promise.reject(new Error('send failed'))), /send failed/);
    assert.deepEqual(zfs.tags('s2'), [], 'released when the send failed');
  });
});
