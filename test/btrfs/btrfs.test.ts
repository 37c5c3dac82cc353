/**
 * The btrfs adapter on real btrfs (file-backed filesystems, test/helpers/btrfs.ts):
 * listing, identity, full and incremental send → receive with identical
 * files, zbk's pins, typed errors with btrfs's stderr, and process handling.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { Btrfs } from '../../src/btrfs/btrfs.js';
import { BtrfsError } from '../../src/btrfs/errors.js';
import type { SendStream } from '../../src/source/types.js';
import { InvalidNameError } from '../../src/zfs/names.js';
import { createTestBtrfs, modesOf, mountAgain, requireBtrfs } from '../helpers/btrfs.js';
import { writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 500 && isAlive(pid); i++) await sleep(20);
}

/** A tree with what a restore must bring back: contents, modes, a symlink, an empty file and directory. */
function writeTree(dir: string, seed: string): void {
  writeRandomFiles(dir, { files: 4, bytesEach: 300_000, seed });
  writeFileSync(join(dir, 'secret.txt'), `${seed}\n`);
  chmodSync(join(dir, 'secret.txt'), 0o600);
  writeFileSync(join(dir, 'empty'), '');
  mkdirSync(join(dir, 'private'));
  chmodSync(join(dir, 'private'), 0o750);
  symlinkSync('secret.txt', join(dir, 'link'));
}

async function sha256Of(s: SendStream): Promise<string> {
  const h = createHash('sha256');
  for await (const c of s.stream) h.update(c as Buffer);
  await s.done;
  return h.digest('hex');
}

async function assertSameTree(expected: string, actual: string): Promise<void> {
  assert.deepEqual(await hashTree(actual), await hashTree(expected), 'contents and symlinks');
  assert.deepEqual(modesOf(actual), modesOf(expected), 'modes');
}

test('snapshots of a subvolume: read-only ones whose parent is it, oldest first, names relative to the mount; a rename keeps the identity', async (t) => {
  if (!requireBtrfs(t)) return;
  const fs = createTestBtrfs(t);
  const b = fs.btrfs;
  const data = fs.subvolume('data');
  const other = fs.subvolume('other');
  mkdirSync(join(fs.mountpoint, 'snaps'));
  writeFileSync(join(data, 'f'), 'one');
  const s1 = fs.snapshot(data, 'snaps/s1');
  writeFileSync(join(data, 'f'), 'two');
  fs.snapshot(data, 'snaps/s2');
  // No write in between: same ctransid as s2, still ordered by its own creation.
  fs.snapshot(data, 'snaps/s3');
  await b.createSnapshot(data, join(fs.mountpoint, 'rw'), { readOnly: false });
  fs.snapshot(other, 'snaps/other-1');

  assert.equal(await b.resolveDataset(data), data);
  const snaps = await b.listSnapshots(data);
  assert.deepEqual(snaps.map((s) => s.name), ['snaps/s1', 'snaps/s2', 'snaps/s3'], 'no writable snapshot, nothing of another subvolume');
  assert.deepEqual(snaps.map((s) => s.ref), ['s1', 's2', 's3'].map((n) => join(fs.mountpoint, 'snaps', n)));
  assert.ok(snaps[0]!.order < snaps[1]!.order && snaps[1]!.order < snaps[2]!.order, 'strictly ordered by otransid');
  for (const s of snaps) {
    assert.equal(s.id, s.uuid);
    assert.equal(s.dataset, data);
    assert.ok(Math.abs(s.creation - Date.now() / 1000) < 600, `creation ${s.creation}`);
  }
  assert.equal(new Set(snaps.map((s) => s.id)).size, 3);
  assert.equal(await b.isReadOnly(s1), true);
  assert.equal(await b.isReadOnly(data), false);

  renameSync(s1, join(fs.mountpoint, 'snaps', 'renamed'));
  const after = await b.listSnapshots(data);
  const renamed = after.find((s) => s.name === 'snaps/renamed');
  assert.equal(renamed?.id, snaps[0]!.id, 'a renamed snapshot keeps its identity');
  assert.equal(after[0]!.name, 'snaps/renamed', 'and its place in the order');

  // Through a symlink the dataset resolves to its real path.
  const link = join(fs.dir, 'link-to-data');
  symlinkSync(data, link);
  assert.equal(await b.resolveDataset(link), data);

  // Reached through a subvol= mount: only snapshots under that mount are listed, with paths under it.
  fs.snapshot(data, 'data/inner');
  const mp = join(fs.dir, 'data-mnt');
  mountAgain(fs, mp, 'subvol=data');
  const inner = await b.listSnapshots(mp);
  assert.deepEqual(inner.map((s) => [s.name, s.ref]), [['inner', join(mp, 'inner')]]);
});

test('full send → receive into another btrfs: identical files, the received snapshot carries the identity; then an incremental', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = createTestBtrfs(t);
  const dst = createTestBtrfs(t);
  const b = src.btrfs;
  const data = src.subvolume('data');
  writeTree(data, 'v1');
  const s1 = src.snapshot(data, 's1');
  const target = join(dst.mountpoint, 'restore');
  mkdirSync(target);

  const [snap1] = await b.listSnapshots(data);
  const got1 = await b.receive(target, (await b.openSend({ snapshot: s1 })).stream);
  assert.deepEqual([got1.name, got1.ref, got1.id, got1.received], ['s1', join(target, 's1'), snap1!.id, true]);
  await assertSameTree(s1, got1.ref);

  writeFileSync(join(data, 'secret.txt'), 'changed\n');
  rmSync(join(data, 'd0'), { recursive: true });
  writeTree(join(data, 'private'), 'v2');
  const s2 = src.snapshot(data, 's2');
  const got2 = await b.receive(target, (await b.openSend({ snapshot: s2, from: s1 })).stream);
  await assertSameTree(s2, got2.ref);
  const snap2 = (await b.listSnapshots(data))[1]!;
  assert.equal(got2.id, snap2.id);
  const listed = await b.listReceived(target);
  assert.deepEqual(listed.map((r) => [r.name, r.id, r.received]), [
    ['s1', snap1!.id, true],
    ['s2', snap2.id, true],
  ]);
  assert.deepEqual(await b.listReceived(join(dst.mountpoint, 'nowhere')), []);

  // The same snapshot sends the same bytes (a resume compares part hashes), with the v2 flags too.
  const caps = await b.btrfsCapabilities();
  assert.equal(await sha256Of(await b.openSend({ snapshot: s2, from: s1 })), await sha256Of(await b.openSend({ snapshot: s2, from: s1 })));
  if (caps.sendFlags.length > 0) {
    const flags = caps.sendFlags;
    const s = await b.openSend({ snapshot: s1, flags: [...flags].reverse() });
    try {
      assert.deepEqual(s.argv, ['btrfs', '-q', 'send', ...flags, s1], 'the flags in their fixed order');
      const other = join(dst.mountpoint, 'v2');
      mkdirSync(other);
      await assertSameTree(s1, (await b.receive(other, s.stream)).ref);
    } finally {
      s.kill();
    }
  }
  await assert.rejects(b.openSend({ snapshot: s1, flags: ['--no-data'] }), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_UNSUPPORTED');
});

test('pins: zbk’s read-only snapshot is sent, survives the pruning of the user’s snapshots and is the base of the next incremental', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = createTestBtrfs(t);
  const dst = createTestBtrfs(t);
  const b = src.btrfs;
  const data = src.subvolume('data');
  writeTree(data, 'p1');
  const s1 = src.snapshot(data, 's1');
  const [snap1] = await b.listSnapshots(data);
  const pin1 = await b.pin(snap1!);
  const dataUuid = (await b.show(data)).uuid;
  assert.equal(pin1.ref, join(src.mountpoint, '.zbk', dataUuid, `base-${snap1!.uuid}`));
  assert.deepEqual(pin1.snapshot, { id: snap1!.id, name: 's1' });
  assert.notEqual(pin1.id, snap1!.id, 'a pin has an identity of its own');
  assert.deepEqual(await b.pin(snap1!), pin1, 'pinning again returns the same pin');
  assert.deepEqual((await b.listSnapshots(data)).map((s) => s.name), ['s1'], 'pins are not snapshots of the dataset');

  const target = join(dst.mountpoint, 'restore');
  mkdirSync(target);
  const r1 = await b.receive(target, (await b.openSend({ snapshot: pin1.sendOf })).stream);
  assert.equal(r1.id, pin1.id, 'the received snapshot carries the pin’s identity');
  await assertSameTree(s1, r1.ref);

  writeFileSync(join(data, 'new.txt'), 'new\n');
  const s2 = src.snapshot(data, 's2');
  const snap2 = (await b.listSnapshots(data))[1]!;
  const pin2 = await b.pin(snap2);
  // The user's snapshot tool prunes both snapshots: the pins keep the chain going.
  await b.deleteSubvolume(s1);
  await b.deleteSubvolume(s2);
  assert.deepEqual(await b.listSnapshots(data), []);
  assert.equal(await b.resolveBase(data, pin1.id), pin1.sendFrom);
  assert.equal(await b.resolveBase(data, snap1!.id), null, 'the user’s snapshot is gone');
  const r2 = await b.receive(target, (await b.openSend({ snapshot: pin2.sendOf, from: pin1.sendFrom })).stream);
  assert.equal(r2.id, pin2.id);
  await assertSameTree(pin2.ref, r2.ref);
  assert.equal((await hashTree(r2.ref)).get('new.txt') !== undefined, true);

  const pins = await b.listPins(data);
  assert.deepEqual(pins.map((p) => [p.id, p.snapshot.name]), [
    [pin1.id, null],
    [pin2.id, null],
  ], 'the user’s snapshot names are unknown once they are pruned');
  await b.unpin(pin1);
  await b.unpin(pin1);
  assert.deepEqual((await b.listPins(data)).map((p) => p.id), [pin2.id]);
  await assert.rejects(b.unpin({ ...pin2, ref: data }), (e: unknown) => e instanceof BtrfsError && /not one of zbk's pins/.test(e.message));
  assert.equal(existsSync(data), true);
});

test('errors: a missing snapshot, a path that is not a subvolume, not on btrfs, or malformed', async (t) => {
  if (!requireBtrfs(t)) return;
  const fs = createTestBtrfs(t);
  const b = fs.btrfs;
  const data = fs.subvolume('data');
  const missing = join(fs.mountpoint, 'nope');

  const s = await b.openSend({ snapshot: missing });
  const streamError = new Promise<unknown>((resolve) => s.stream.once('error', resolve));
  s.stream.resume();
  await assert.rejects(s.done, (e: unknown) => {
    assert.ok(e instanceof BtrfsError, String(e));
    assert.equal(e.code, 'BTRFS_NOT_FOUND');
    assert.ok(e.stderrTail.includes(missing), e.stderrTail);
    assert.ok(e.message.includes(e.stderrTail.trim()), e.message);
    assert.equal(e.exitStatus, 1);
    return true;
  });
  assert.ok((await streamError) instanceof BtrfsError, 'the stream is destroyed with the error, never ended');

  await assert.rejects(
    async () => sha256Of(await b.openSend({ snapshot: data })),
    (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_NOT_READ_ONLY' && /not read-only/.test(e.stderrTail),
  );
  mkdirSync(join(fs.mountpoint, 'plain'));
  await assert.rejects(b.resolveDataset(join(fs.mountpoint, 'plain')), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_NOT_SUBVOLUME' && e.stderrTail.length > 0);
  await assert.rejects(b.resolveDataset(missing), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_NOT_FOUND');
  const notBtrfs = mkdtempSync(join(tmpdir(), 'zbk-not-btrfs-'));
  t.after(() => rmSync(notBtrfs, { recursive: true, force: true }));
  await assert.rejects(b.resolveDataset(notBtrfs), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_NOT_BTRFS' && e.message.includes(notBtrfs));
  await assert.rejects(b.listSnapshots(notBtrfs), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_NOT_BTRFS');

  // Malformed paths are refused before anything is spawned (a missing btrfs would say so otherwise).
  const none = new Btrfs({ command: [join(fs.dir, 'no-such-btrfs')] });
  const spaced = fs.subvolume('with space');
  for (const bad of [spaced, 'data', '-p', `${data}/`, `${data}\n`, `${fs.mountpoint}/../x`]) {
    for (const call of [
      () => none.resolveDataset(bad),
      () => none.listSnapshots(bad),
      () => none.openSend({ snapshot: bad }),
      () => none.openSend({ snapshot: data, from: bad }),
      () => none.show(bad),
      () => none.deleteSubvolume(bad),
      () => none.receive(bad, Readable.from([Buffer.from('x')])),
    ]) {
      await assert.rejects(call, InvalidNameError, JSON.stringify(bad));
    }
  }
  await assert.rejects(none.resolveDataset(data), (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_MISSING' && /install btrfs-progs/.test(e.message));
});

test('destroying the consumer stream kills btrfs send; a cut stream is not received and leaves nothing behind', async (t) => {
  if (!requireBtrfs(t)) return;
  const src = createTestBtrfs(t, { sizeMiB: 384 });
  const dst = createTestBtrfs(t);
  const b = src.btrfs;
  const data = src.subvolume('big');
  writeRandomFiles(data, { files: 8, bytesEach: 4 * 1024 * 1024, seed: 'big' });
  const snap = src.snapshot(data, 's');

  const s = await b.openSend({ snapshot: snap });
  try {
    await new Promise<void>((resolve, reject) => {
      s.stream.once('data', () => resolve());
      s.stream.once('error', reject);
    });
    s.stream.pause();
    assert.ok(s.pid !== undefined && isAlive(s.pid), 'btrfs send should be running');
    s.stream.destroy();
    await waitForExit(s.pid);
    assert.equal(isAlive(s.pid), false, 'btrfs send still running after the stream was destroyed');
    await assert.rejects(s.done, (e: unknown) => e instanceof BtrfsError && e.code === 'BTRFS_KILLED');
  } finally {
    s.kill();
  }
  // The snapshot is not left busy: it can be deleted once the send is gone.
  const copy = join(src.mountpoint, 'copy');
  await b.createSnapshot(snap, copy);
  await b.deleteSubvolume(copy);

  // A receive whose input fails halfway: btrfs is killed, the partial subvolume deleted.
  const target = join(dst.mountpoint, 'restore');
  mkdirSync(target);
  const input = new PassThrough();
  const full = await b.openSend({ snapshot: snap });
  let sent = 0;
  full.stream.on('data', (c: Buffer) => {
    sent += c.length;
    if (sent > 8 * 1024 * 1024) {
      full.stream.destroy();
      input.destroy(new Error('download failed'));
    } else input.write(c);
  });
  await assert.rejects(b.receive(target, input), /download failed/);
  assert.deepEqual(readdirSync(target), [], 'nothing received is left behind');
  // An input that ends early (a truncated stream) fails in btrfs, with its stderr; nothing left either.
  const head = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    void b.openSend({ snapshot: snap }).then((x) => {
      x.stream.on('data', (c: Buffer) => {
        chunks.push(c);
        n += c.length;
        if (n > 2 * 1024 * 1024) {
          x.stream.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
    });
  });
  await assert.rejects(b.receive(target, Readable.from([head.subarray(0, head.length - 1000)])), (e: unknown) => e instanceof BtrfsError && e.stderrTail.length > 0);
  assert.deepEqual(readdirSync(target), []);
});
