/**
 * `zfs receive` commits as soon as it reads a stream's END record, without
 * waiting for end of input. So the live receive must not see a volume's last
 * part before the whole-volume SHA-256 matched: otherwise a volume that
 * fails its hash would still leave its snapshot on the target. Wiring
 * mirrors run.ts: sink → feed.write, afterLiveVolume → feed.end, failure →
 * abortLive → feed.fail.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { downloadVolume, PlaintextFeed } from '../../src/pipeline/download.js';
import { uploadStream } from '../../src/pipeline/upload.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { createTestPool, requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { RecordingCheckpoint, sealedSize, testKeyring } from '../pipeline/helpers.js';

test('a volume whose whole-volume SHA-256 fails must not leave its snapshot on the target (live receive)', { timeout: 120_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const pool = await createTestPool({ sizeMiB: 128 });
  t.after(() => pool.destroy());
  const ds = `${pool.name}/src`;
  await pool.zfs.createDataset(ds);
  writeRandomFiles((await pool.zfs.mountpoint(ds))!, { files: 2, bytesEach: 1024 * 1024, seed: 'x' });
  await pool.zfs.snapshot(`${ds}@s1`);
  const send = spawnSync('zfs', ['send', `${ds}@s1`], { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(send.status, 0);
  const stream = send.stdout;

  const keyring = await testKeyring();
  const PS = 256 * 1024;
  const store = new MemoryStore({ minPartSize: 1, archive: false });
  const streamId = randomBytes(16);
  const res = await uploadStream({
    store, keyring, source: Readable.from([stream]), streamId, partSize: PS, volumeSize: 64 * PS, parallel: 2,
    storageClass: 'STANDARD', volumeMetadata: () => ({}), sealedSize, checkpoint: new RecordingCheckpoint(),
  });
  assert.equal(res.volumes.length, 1);
  // Every part authenticates, but the stream record's volume hash disagrees
  // (e.g. what an upload-side hashing/buffer bug, or a mixed resume, produces).
  const record = { ...res.volumes[0]!, plaintextSha256: '00'.repeat(32) };

  const target = `${pool.name}/restored`;
  const dir = mkdtempSync(join(tmpdir(), 'zbk-livehash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const feed = new PlaintextFeed({ highWaterMark: 2 * PS });
  const done = pool.zfs.receive(target, feed.readable, {});
  done.catch(() => undefined);
  let downloadError: unknown = null;
  try {
    await downloadVolume({ store, keyring, volume: record, streamId, destPath: join(dir, 'v0.zbkv'), sealedSize, onPlaintext: (_i, c) => feed.write(c) });
    feed.end();
  } catch (err) {
    downloadError = err;
    feed.fail(err as Error); // abortLive
  }
  await done.catch(() => undefined);
  assert.ok(downloadError, 'the whole-volume hash check must fail');
  const snaps = spawnSync('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', target], { encoding: 'utf8' });
  assert.equal(snaps.stdout.includes(`${target}@s1`), false, `zfs received @s1 from a volume that failed its SHA-256:\n${snaps.stdout}`);
});
