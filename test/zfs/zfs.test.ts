/** Against real ZFS (zfs-fuse in CI) on throwaway file-backed pools. */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { ZfsBusyError, ZfsError, ZfsExistsError, ZfsNotFoundError } from '../../src/zfs/errors.js';
import type { Zfs } from '../../src/zfs/zfs.js';
import { requireZfs, withTestPool, writeRandomFiles } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';

async function sendInto(zfs: Zfs, opts: { snapshot: string; from?: string }, target: string, force = false): Promise<void> {
  const s = zfs.send(opts);
  await Promise.all([zfs.receive(target, s.stream, { force }), s.done]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait up to 10 s for a process to be gone (reaped). */
async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 500 && isAlive(pid); i++) await sleep(20);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('capabilities and snapshot listing on this ZFS', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(async ({ name, zfs }) => {
    const caps = await zfs.capabilities();
    assert.notEqual(caps.implementation, 'unknown');
    if (caps.implementation === 'zfs-fuse') {
      assert.equal(caps.holdsList, false);
      assert.equal(caps.bookmarks, false);
      assert.equal(await zfs.estimateSendSize({ snapshot: `${name}@x` }), null);
    }
    await zfs.createDataset(`${name}/a`);
    await zfs.createDataset(`${name}/a/child`);
    await zfs.snapshot(`${name}/a@s1`);
    await zfs.snapshot(`${name}/a/child@c1`);
    await zfs.snapshot(`${name}/a@s2`);
    const snaps = await zfs.listSnapshots(`${name}/a`);
    assert.deepEqual(
      snaps.map((s) => s.name),
      [`${name}/a@s1`, `${name}/a@s2`],
    );
    assert.ok(snaps[0]!.createtxg < snaps[1]!.createtxg);
    assert.equal(typeof snaps[0]!.guid, 'bigint');
    const one = await zfs.getSnapshot(`${name}/a@s2`);
    assert.deepEqual(one, snaps[1]);
    assert.equal(await zfs.exists(`${name}/a@s1`), true);
    assert.equal(await zfs.exists(`${name}/nope`), false);
    await assert.rejects(zfs.getSnapshot(`${name}/a@nope`), ZfsNotFoundError);
  });
});

test('full send → receive, then incremental → receive: every file identical', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(async ({ name, zfs }) => {
    const src = `${name}/photos`;
    await zfs.createDataset(src);
    const srcDir = await zfs.mount(src);
    writeRandomFiles(srcDir, { files: 12, bytesEach: 200_000, seed: 'full' });
    writeFileSync(join(srcDir, 'empty.txt'), '');
    await zfs.snapshot(`${src}@s1`);
    const atS1 = await hashTree(srcDir);

    await sendInto(zfs, { snapshot: `${src}@s1` }, `${name}/copy`);
    const copyDir = await zfs.mount(`${name}/copy`);
    assert.deepEqual(await hashTree(copyDir), atS1);
    const recv = await zfs.getSnapshot(`${name}/copy@s1`);
    assert.equal(recv.guid, (await zfs.getSnapshot(`${src}@s1`)).guid, 'a received snapshot keeps its guid');

    writeRandomFiles(srcDir, { files: 4, bytesEach: 50_000, seed: 'incr' });
    appendFileSync(join(srcDir, 'empty.txt'), 'now not empty');
    await zfs.snapshot(`${src}@s2`);
    const atS2 = await hashTree(srcDir);
    assert.notDeepEqual(atS2, atS1);

    // -F: reading the copy above updated atime, which counts as a modification.
    await sendInto(zfs, { snapshot: `${src}@s2`, from: `${src}@s1` }, `${name}/copy`, true);
    // remount: zfs-fuse serves stale cached contents after a receive into a mounted dataset.
    assert.deepEqual(await hashTree(await zfs.remount(`${name}/copy`)), atS2);
    assert.deepEqual(
      (await zfs.listSnapshots(`${name}/copy`)).map((s) => s.shortName),
      ['s1', 's2'],
    );
  });
});

test('receive: a failing input aborts the receive with the input\'s error; an existing target is a typed error', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(async ({ name, zfs }) => {
    const src = `${name}/src`;
    await zfs.createDataset(src);
    writeRandomFiles(await zfs.mount(src), { files: 4, bytesEach: 500_000, seed: 'recv' });
    await zfs.snapshot(`${src}@s1`);
    assert.equal(await zfs.isEncrypted(src), false);

    // Pass the first 64 KiB of a real stream, then fail like a decryption error would.
    const s = await zfs.openSend({ snapshot: `${src}@s1` });
    const boom = new Error('integrity check failed on part 3');
    async function* cut(): AsyncGenerator<Buffer> {
      let n = 0;
      for await (const c of s.stream) {
        n += (c as Buffer).length;
        yield c as Buffer;
        if (n >= 65536) throw boom;
      }
    }
    await assert.rejects(zfs.receive(`${name}/dst`, Readable.from(cut())), (e: unknown) => e === boom);
    assert.equal(await zfs.exists(`${name}/dst`), false, 'a partial receive must not leave a dataset');
    assert.equal(await zfs.exists(`${name}/dst@s1`), false);

    await sendInto(zfs, { snapshot: `${src}@s1` }, `${name}/dst`);
    const again = zfs.send({ snapshot: `${src}@s1` });
    again.stream.on('error', () => undefined);
    await assert.rejects(zfs.receive(`${name}/dst`, again.stream), (e: unknown) => e instanceof ZfsExistsError && /exists/.test(e.stderrTail));
    await again.done.catch(() => undefined);
  });
});

test('a held snapshot cannot be destroyed; released, it can; hold/release are idempotent', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(async ({ name, zfs }) => {
    const snap = `${name}@base`;
    await zfs.snapshot(snap);
    await zfs.hold('zbk', snap);
    await zfs.hold('zbk', snap);
    assert.equal(await zfs.userRefs(snap), 1);
    const tags = await zfs.holds(snap);
    if (tags !== null) assert.deepEqual(tags, ['zbk']);
    await assert.rejects(zfs.destroy(snap), (e: unknown) => e instanceof ZfsBusyError && e.stderrTail.length > 0);
    assert.equal(await zfs.exists(snap), true);
    await zfs.release('zbk', snap);
    await zfs.release('zbk', snap);
    assert.equal(await zfs.userRefs(snap), 0);
    await zfs.destroy(snap);
    assert.equal(await zfs.exists(snap), false);
  });
});

test('sending a missing snapshot: typed error naming it, with zfs stderr', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(async ({ name, zfs }) => {
    const missing = `${name}@does-not-exist`;
    const s = zfs.send({ snapshot: missing });
    s.stream.resume();
    s.stream.on('error', () => undefined);
    await assert.rejects(s.done, (e: unknown) => {
      assert.ok(e instanceof ZfsNotFoundError, String(e));
      assert.equal(e.code, 'ZFS_NOT_FOUND');
      assert.equal(e.exitCode, 7);
      assert.ok(e.message.includes(missing), e.message);
      assert.ok(e.stderrTail.includes(missing), e.stderrTail);
      assert.ok(e.message.includes(e.stderrTail.trim().split('\n')[0]!.trim()), 'message carries what zfs said');
      assert.equal(e.exitStatus, 1);
      return true;
    });
  });
});

test('destroying the consumer stream kills zfs send; no unhandled rejection', async (t) => {
  if (!requireZfs(t)) return;
  await withTestPool(
    async ({ name, zfs }) => {
      const src = `${name}/big`;
      await zfs.createDataset(src);
      writeRandomFiles(await zfs.mount(src), { files: 8, bytesEach: 4 * 1024 * 1024, seed: 'big' });
      await zfs.snapshot(`${src}@s`);
      const s = zfs.send({ snapshot: `${src}@s` });
      try {
        // Read one chunk, then stop: zfs is now blocked on a full pipe.
        await new Promise<void>((resolve, reject) => {
          s.stream.once('data', () => resolve());
          s.stream.once('error', reject);
        });
        s.stream.pause();
        assert.ok(s.pid !== undefined && isAlive(s.pid), 'zfs send should be running');
        s.stream.destroy();
        // Bounded wait, so a regression fails here instead of hanging the run.
        await waitForExit(s.pid);
        assert.equal(isAlive(s.pid), false, 'zfs send still running after the stream was destroyed');
        await assert.rejects(s.done, (e: unknown) => e instanceof ZfsError && e.code === 'ZFS_KILLED');
      } finally {
        s.kill();
      }
      // Destroying without ever looking at `done` must not leave an unhandled rejection.
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const s2 = zfs.send({ snapshot: `${src}@s` });
        await new Promise<void>((resolve) => s2.stream.once('data', () => resolve()));
        s2.stream.destroy();
        // Wait (bounded) for the process to be gone, then let rejections propagate.
        await waitForExit(s2.pid!);
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        assert.equal(isAlive(s2.pid!), false);
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      // Draining a third send completely proves the dataset is not left busy.
      const s3 = zfs.send({ snapshot: `${src}@s` });
      let bytes = 0;
      await Promise.all([
        s3.done,
        new Promise<void>((resolve, reject) =>
          s3.stream
            .pipe(
              new Writable({
                write(c: Buffer, _e, cb) {
                  bytes += c.length;
                  cb();
                },
              }),
            )
            .on('finish', () => resolve())
            .on('error', reject),
        ),
      ]);
      assert.ok(bytes > 32 * 1024 * 1024, `full stream is ${bytes} bytes`);
    },
    { sizeMiB: 256 },
  );
});
