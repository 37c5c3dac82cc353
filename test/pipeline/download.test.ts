import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { IntegrityError } from '../../src/errors.js';
import type { VolumeRecord } from '../../src/layout.js';
import { downloadVolume, openVolumeFiles, openVolumesFromStore, partLayout, PlaintextFeed } from '../../src/pipeline/download.js';
import { uploadStream, type UploadResult } from '../../src/pipeline/upload.js';
import { FaultInjectingStore } from '../../src/store/fault-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { bytesOf, collect, RecordingCheckpoint, sealedSize, sourceOf, testKeyring } from './helpers.js';

const PS = 4096;
const VS = 4 * PS;

let keyring: Keyring;
let dir: string;
before(async () => {
  keyring = await testKeyring();
  dir = mkdtempSync(join(tmpdir(), 'zbk-download-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function stored(size: number, seed = 1, volumeSize = VS): Promise<{ store: MemoryStore; streamId: Uint8Array; res: UploadResult; data: Buffer }> {
  const store = new MemoryStore({ minPartSize: PS, archive: false });
  const streamId = randomBytes(16);
  const data = bytesOf(size, seed);
  const res = await uploadStream({
    store,
    keyring,
    source: sourceOf(data),
    streamId,
    partSize: PS,
    volumeSize,
    parallel: 2,
    storageClass: 'STANDARD',
    volumeMetadata: () => ({}),
    sealedSize,
    checkpoint: new RecordingCheckpoint(),
  });
  return { store, streamId, res, data };
}

async function flipStoredByte(store: MemoryStore, key: string, offset: number): Promise<void> {
  const bytes = Buffer.from(await store.getBytes(key));
  bytes[offset] ^= 0x01;
  await store.put(key, bytes);
}

let n = 0;
const dest = (): string => join(dir, `vol-${n++}.zbkv`);

/** One stored volume of 4 parts, and a staging file holding its first `stagedBytes` sealed bytes with bits flipped at `flips`. */
async function stagedWithFlips(flips: number[], stagedBytes?: number) {
  const { store, streamId, res, data } = await stored(VS);
  const record = res.volumes[0]!;
  const full = Buffer.from(await store.getBytes(record.key));
  const path = dest();
  const bad = Buffer.from(full.subarray(0, stagedBytes ?? full.length));
  for (const at of flips) bad[at]! ^= 0x80;
  writeFileSync(`${path}.partial`, bad);
  return { store, streamId, record, data, full, path, s: sealedSize(PS) };
}

describe('partLayout', () => {
  const rec = (o: Partial<VolumeRecord>): VolumeRecord => ({
    index: 0,
    key: 'data/x/000000.zbkv',
    plaintextSize: 2 * PS + 1,
    plaintextSha256: '',
    storedSize: 2 * sealedSize(PS) + sealedSize(1),
    partCount: 3,
    partSize: PS,
    ...o,
  });

  it('gives contiguous ranges of sealed parts', () => {
    const l = partLayout(rec({}), sealedSize);
    assert.deepEqual(
      l.map((r) => [r.partNumber, r.plainSize, r.sealedOffset, r.sealedSize]),
      [
        [1, PS, 0, sealedSize(PS)],
        [2, PS, sealedSize(PS), sealedSize(PS)],
        [3, 1, 2 * sealedSize(PS), sealedSize(1)],
      ],
    );
  });

  it('accepts the single empty part of an empty stream', () => {
    const l = partLayout(rec({ plaintextSize: 0, partCount: 1, storedSize: sealedSize(0) }), sealedSize);
    assert.deepEqual(l, [{ partNumber: 1, plainSize: 0, sealedOffset: 0, sealedSize: sealedSize(0) }]);
  });

  it('rejects records whose sizes do not add up', () => {
    assert.throws(() => partLayout(rec({ storedSize: 5 }), sealedSize), IntegrityError);
    assert.throws(() => partLayout(rec({ plaintextSize: 3 * PS + 1 }), sealedSize), IntegrityError);
    assert.throws(() => partLayout(rec({ plaintextSize: 2 * PS, storedSize: 2 * sealedSize(PS) + sealedSize(0) }), sealedSize), IntegrityError);
    assert.throws(() => partLayout(rec({ partCount: 0 }), sealedSize), IntegrityError);
  });
});

describe('downloadVolume', () => {
  it('stages every volume; openVolumeFiles gives back the plaintext', async () => {
    const { store, streamId, res, data } = await stored(2 * VS + PS + 3);
    const files = [];
    for (const record of res.volumes) {
      const path = dest();
      const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
      assert.equal(r.downloadedBytes, record.storedSize);
      assert.equal(r.reusedBytes, 0);
      assert.deepEqual(readFileSync(path), Buffer.from(await store.getBytes(record.key)));
      assert.equal(existsSync(`${path}.partial`), false);
      files.push({ record, path });
    }
    assert.deepEqual(await collect(openVolumeFiles({ keyring, streamId, volumes: files, sealedSize })), data);
  });

  it('resumes a partial download without fetching verified parts again', async () => {
    const { store, streamId, res } = await stored(VS);
    const record = res.volumes[0]!;
    const full = Buffer.from(await store.getBytes(record.key));
    const path = dest();
    const s = sealedSize(PS);
    writeFileSync(`${path}.partial`, full.subarray(0, 2 * s + 100)); // two parts and a torn third
    store.resetCounts();
    const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
    assert.equal(r.reusedBytes, 2 * s);
    assert.equal(r.downloadedBytes, record.storedSize - 2 * s);
    assert.equal(store.counts.get, 2);
    assert.deepEqual(readFileSync(path), full);

    // Run again on the finished file: all verified, nothing fetched.
    store.resetCounts();
    const again = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
    assert.deepEqual(again, { downloadedBytes: 0, reusedBytes: record.storedSize });
    assert.equal(store.counts.get, 0);
  });

  it('re-fetches only a corrupted part on disk when whole parts follow it', async () => {
    const ps = sealedSize(PS);
    // Inside part 2, and inside part 4 (the last).
    const { store, streamId, record, full, path, s } = await stagedWithFlips([ps + 50, 3 * ps + 7]);
    store.resetCounts();
    const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
    assert.equal(store.counts.get, 2, 'parts 2 and 4 fetched, nothing else');
    assert.equal(r.reusedBytes, 2 * s);
    assert.equal(r.downloadedBytes, 2 * s);
    assert.deepEqual(readFileSync(path), full);
  });

  it('with a consumer of the plaintext, re-fetches from a corrupted part on disk onwards (parts reach it in order)', async () => {
    const { store, streamId, record, data, full, path, s } = await stagedWithFlips([sealedSize(PS) + 50]); // inside part 2
    const got: Buffer[] = [];
    const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize, onPlaintext: async (_i, chunks) => void got.push(...chunks) });
    assert.equal(r.reusedBytes, s);
    assert.equal(r.downloadedBytes, record.storedSize - s);
    assert.deepEqual(readFileSync(path), full);
    assert.deepEqual(Buffer.concat(got), data);
  });

  it('refuses a flipped byte in the store, keeping the verified prefix', async () => {
    const { store, streamId, res } = await stored(VS);
    const record = res.volumes[0]!;
    const s = sealedSize(PS);
    await flipStoredByte(store, record.key, 2 * s + 7);
    const path = dest();
    await assert.rejects(downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize }), (e: unknown) => {
      assert.ok(e instanceof IntegrityError);
      assert.match(e.message, /part 3 of data\//);
      return true;
    });
    assert.equal(existsSync(path), false);
    assert.equal(statSync(`${path}.partial`).size, 2 * s);
  });

  it('moves a volume whose plaintext hash differs from the record aside as .bad', async () => {
    const { store, streamId, res } = await stored(PS + 1);
    const record = { ...res.volumes[0]!, plaintextSha256: '00'.repeat(32) };
    const path = dest();
    await assert.rejects(downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize }), /plaintext SHA-256/);
    assert.equal(existsSync(`${path}.bad`), true);
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(`${path}.partial`), false);
  });

  it('keeps progress across a transfer that fails midway', async () => {
    const { store: inner, streamId, res } = await stored(VS);
    const record = res.volumes[0]!;
    const store = new FaultInjectingStore(inner).script('get', null, null, 'stream-reset');
    const path = dest();
    await assert.rejects(downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize }));
    const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
    assert.equal(r.reusedBytes, 2 * sealedSize(PS));
    assert.deepEqual(readFileSync(path), Buffer.from(await inner.getBytes(record.key)));
  });
});

describe('downloadVolume egress accounting', () => {
  /** Runs a download that is expected to fail; returns what onProgress last reported and every part it reported. */
  async function failingRun(opts: Omit<Parameters<typeof downloadVolume>[0], 'onProgress'>): Promise<{ downloaded: number; parts: number[] }> {
    let downloaded = 0;
    const parts: number[] = [];
    await assert.rejects(
      downloadVolume({
        ...opts,
        onProgress: (p) => {
          assert.ok(p.downloadedBytes >= downloaded, 'downloadedBytes is cumulative');
          downloaded = p.downloadedBytes;
          parts.push(p.partNumber);
        },
      }),
    );
    return { downloaded, parts };
  }

  it('counts every part whose GET returned, also when it then fails authentication (the prefetched next part included)', async () => {
    const { store, streamId, res } = await stored(8 * PS, 1, 8 * PS);
    const record = res.volumes[0]!;
    const s = sealedSize(PS);
    await flipStoredByte(store, record.key, s + 100); // inside part 2 of 8
    store.resetCounts();
    const r = await failingRun({ store, keyring, volume: record, streamId, destPath: dest(), sealedSize });
    // Part 1 written; part 2 fetched and refused; parts 3 and 4 fetched while part 2 was opened; nothing after.
    assert.equal(store.counts.get, 4);
    assert.equal(r.downloaded, store.counts.get * s, 'every byte the store served is reported as egress');
    assert.deepEqual([...r.parts].sort(), [1, 2, 3, 4], 'each fetched part is reported exactly once');
  });

  it('counts the fetched parts when the consumer fails or the run is aborted', async () => {
    const { store, streamId, res } = await stored(8 * PS, 1, 8 * PS);
    const record = res.volumes[0]!;
    const s = sealedSize(PS);

    store.resetCounts();
    const sinkFails = await failingRun({
      store,
      keyring,
      volume: record,
      streamId,
      destPath: dest(),
      sealedSize,
      onPlaintext: async (i) => {
        if (i === 1) throw new Error('receive died');
      },
    });
    // The sink's failure on part 2 is seen after part 3 was opened (it overlaps the sink): parts 4 and 5 were fetched by then.
    assert.equal(store.counts.get, 5);
    assert.equal(sinkFails.downloaded, store.counts.get * s);
    assert.deepEqual([...sinkFails.parts].sort(), [1, 2, 3, 4, 5]);

    store.resetCounts();
    const ac = new AbortController();
    const aborted = await failingRun({
      store,
      keyring,
      volume: record,
      streamId,
      destPath: dest(),
      sealedSize,
      signal: ac.signal,
      onPlaintext: async (i) => {
        if (i === 0) ac.abort();
      },
    });
    assert.equal(store.counts.get, 3, 'parts 2 and 3 were already being fetched when the run was aborted');
    assert.equal(aborted.downloaded, store.counts.get * s);
    assert.deepEqual([...aborted.parts].sort(), [1, 2, 3]);
  });

  it('never counts a part twice, and keeps parts verified on disk apart as reused', async () => {
    const { store, streamId, res } = await stored(VS);
    const record = res.volumes[0]!;
    const full = Buffer.from(await store.getBytes(record.key));
    const s = sealedSize(PS);
    const path = dest();
    writeFileSync(`${path}.partial`, full.subarray(0, s));
    const seen: { downloadedBytes: number; reusedBytes: number; partNumber: number }[] = [];
    const r = await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize, onProgress: (p) => void seen.push(p) });
    assert.deepEqual(r, { downloadedBytes: 3 * s, reusedBytes: s });
    assert.deepEqual(
      seen.map((p) => p.partNumber),
      [2, 3, 4],
    );
    assert.equal(seen.at(-1)!.downloadedBytes, 3 * s);
    assert.ok(seen.every((p) => p.reusedBytes === s));
  });
});

describe('downloadVolume onPlaintext (live receive)', () => {
  it('hands over every part once, in order, only authenticated, verified-on-disk parts included', async () => {
    const ps = sealedSize(PS);
    // Three parts staged, part 3 damaged: parts 1-2 reused, 3-4 fetched.
    const { store, streamId, record, data, full, path, s } = await stagedWithFlips([2 * ps + 60], 3 * ps);
    const got: { index: number; bytes: Buffer }[] = [];
    const r = await downloadVolume({
      store,
      keyring,
      volume: record,
      streamId,
      destPath: path,
      sealedSize,
      onPlaintext: async (index, chunks) => {
        got.push({ index, bytes: Buffer.concat(chunks) });
        await new Promise((res) => setImmediate(res));
      },
    });
    assert.equal(r.reusedBytes, 2 * s);
    assert.deepEqual(
      got.map((g) => g.index),
      [0, 1, 2, 3],
    );
    assert.deepEqual(Buffer.concat(got.map((g) => g.bytes)), data);
    assert.deepEqual(readFileSync(path), full);
  });

  it('hands over nothing of a part that fails authentication', async () => {
    const { store, streamId, res } = await stored(VS);
    const record = res.volumes[0]!;
    const s = sealedSize(PS);
    await flipStoredByte(store, record.key, s + 4000); // inside part 2
    const got: number[] = [];
    await assert.rejects(
      downloadVolume({ store, keyring, volume: record, streamId, destPath: dest(), sealedSize, onPlaintext: async (i) => void got.push(i) }),
      IntegrityError,
    );
    assert.deepEqual(got, [0]);
  });
});

describe('PlaintextFeed', () => {
  it('applies backpressure at its high-water mark and delivers bytes in order', async () => {
    const feed = new PlaintextFeed({ highWaterMark: 100 });
    let settled = false;
    const p = feed.write([Buffer.alloc(60, 1), Buffer.alloc(60, 2)]).then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'a write beyond the high-water mark waits for the consumer');
    const out = collect(feed.readable);
    await p;
    await feed.write([Buffer.alloc(5, 3)]);
    feed.end();
    assert.deepEqual(await out, Buffer.concat([Buffer.alloc(60, 1), Buffer.alloc(60, 2), Buffer.alloc(5, 3)]));
  });

  it('fail() errors the stream; writes after the consumer is gone are dropped', async () => {
    const feed = new PlaintextFeed({ highWaterMark: 10 });
    const out = collect(feed.readable);
    feed.fail(new IntegrityError('bad'));
    await assert.rejects(out, IntegrityError);
    await feed.write([Buffer.alloc(1000)]); // resolves at once
  });

  it('fail() before anyone listens is no uncaught error; a consumer attached later still gets the error', async () => {
    const feed = new PlaintextFeed({ highWaterMark: 10 });
    const boom = new IntegrityError('bad before the receive started');
    feed.fail(boom);
    await new Promise((r) => setImmediate(r)); // the 'error' event has been emitted by now
    assert.equal(feed.readable.errored, boom);
    await assert.rejects(collect(feed.readable), (e: unknown) => e === boom);
  });
  it('reuses a pooled buffer only after the consumer reported its bytes written, and never after a failure', async () => {
    const feed = new PlaintextFeed({ highWaterMark: 1 << 20, poolSize: 1 });
    const a = feed.acquire(100);
    const b = feed.acquire(100);
    assert.notEqual(b.buffer, a.buffer, 'a pooled buffer still out is not handed out twice');
    const drained = collect(feed.readable);
    await feed.write([a.subarray(0, 60)]);
    await feed.write([Buffer.alloc(10)]);
    assert.notEqual(feed.acquire(100).buffer, a.buffer, 'not before the consumer took its bytes');
    feed.written(59);
    assert.notEqual(feed.acquire(100).buffer, a.buffer, 'not before every byte from it was taken');
    feed.written(1);
    assert.equal(feed.acquire(100).buffer, a.buffer, 'reused once its 60 bytes were written');
    feed.release(a);
    assert.equal(feed.acquire(50).buffer, a.buffer, 'a released buffer is reused');
    await feed.write([a.subarray(0, 5)]);
    feed.fail(new Error('receive died'));
    await assert.rejects(drained);
    feed.written(1000);
    assert.notEqual(feed.acquire(10).buffer, a.buffer, 'after a failure the dead consumer may still hold it');
  });
});

describe('plaintext readers', () => {
  it('openVolumesFromStore emits IntegrityError for a flipped stored byte', async () => {
    const { store, streamId, res } = await stored(VS + 10);
    await flipStoredByte(store, res.volumes[1]!.key, 40);
    await assert.rejects(collect(openVolumesFromStore({ store, keyring, streamId, volumes: res.volumes, sealedSize })), IntegrityError);
  });

  it('openVolumeFiles refuses swapped, missing or truncated volumes', async () => {
    const { store, streamId, res } = await stored(2 * VS);
    const files = [];
    for (const record of res.volumes) {
      const path = dest();
      await downloadVolume({ store, keyring, volume: record, streamId, destPath: path, sealedSize });
      files.push({ record, path });
    }
    // Swapped files (same size): parts bind their volume index.
    const swapped = [
      { record: files[0]!.record, path: files[1]!.path },
      { record: files[1]!.record, path: files[0]!.path },
    ];
    await assert.rejects(collect(openVolumeFiles({ keyring, streamId, volumes: swapped, sealedSize })), IntegrityError);
    // Volume 0 left out.
    await assert.rejects(collect(openVolumeFiles({ keyring, streamId, volumes: [files[1]!], sealedSize })), IntegrityError);
    // A truncated file.
    const cut = dest();
    writeFileSync(cut, readFileSync(files[1]!.path).subarray(0, 100));
    await assert.rejects(collect(openVolumeFiles({ keyring, streamId, volumes: [files[0]!, { record: files[1]!.record, path: cut }], sealedSize })), IntegrityError);
    // Another stream's key material: wrong stream id.
    await assert.rejects(collect(openVolumeFiles({ keyring, streamId: randomBytes(16), volumes: files, sealedSize })), IntegrityError);
  });

  it('respects backpressure: nothing is read far ahead of the consumer', async () => {
    const { store, streamId, res } = await stored(2 * VS);
    store.resetCounts();
    const stream = openVolumesFromStore({ store, keyring, streamId, volumes: res.volumes, sealedSize });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setImmediate(r));
    assert.ok(store.counts.get <= 3, `fetched ${store.counts.get} of 8 parts before the consumer asked`);
    stream.destroy();
  });
});
