/**
 * The bandwidth limiter (src/pipeline/bandwidth.ts) on an injected clock:
 * the token bucket's waits and permits, one bucket shared first come first
 * served by parallel transfers, the burst bound, a schedule boundary that
 * changes the rate under waiting requests, aborts; and the pipeline paced
 * by it (uploads to the memory and local stores, a resumed upload, paced
 * downloads), which must store and read back exactly the same bytes.
 * Nothing here measures wall-clock time: assertions are on computed waits,
 * grant times of the fake clock and byte counts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { parseBandwidth } from '../../src/config/bandwidth.js';
import type { Keyring } from '../../src/crypto/types.js';
import { BandwidthLimiter, burstFor, chunkFor, limiterFor, TokenBucket, type LimiterClock } from '../../src/pipeline/bandwidth.js';
import { downloadVolume, openVolumesFromStore } from '../../src/pipeline/download.js';
import { AbortError } from '../../src/pipeline/errors.js';
import { uploadStream, type UploadResult, type UploadStreamOptions } from '../../src/pipeline/upload.js';
import { LocalStore } from '../../src/store/local-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { RetryingStore } from '../../src/store/retry-store.js';
import { S3Store } from '../../src/store/s3-store.js';
import { startS3TestServer } from '../s3-server/index.js';
import { bytesOf, collect, RecordingCheckpoint, sealedSize, sourceOf, testKeyring } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * A clock that moves only when told: `now` is `base` + t (local time for
 * the schedule), `monotonic` is t, timers fire when `advance` passes them.
 */
class FakeClock implements LimiterClock {
  t = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;
  constructor(private readonly base: Date) {}
  now(): Date {
    return new Date(this.base.getTime() + this.t);
  }
  monotonic(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }
  get pending(): number {
    return this.timers.length;
  }
  /** Fire the earliest timer (moving t to it); false when none is set. */
  fireNext(): boolean {
    if (this.timers.length === 0) return false;
    this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const next = this.timers.shift()!;
    this.t = Math.max(this.t, next.at);
    next.fn();
    return true;
  }
  /** Move to `t + ms`, firing the timers due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.fireNext();
    }
    this.t = end;
    await settle();
  }
}

/** Let promise callbacks (and the I/O they started) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Run `work` to the end, firing the fake clock's timers whenever it waits on one. */
async function drive<T>(clock: FakeClock, work: Promise<T>): Promise<T> {
  let done = false;
  const tracked = work.finally(() => {
    done = true;
  });
  tracked.catch(() => undefined);
  while (!done) {
    await settle();
    if (!done) clock.fireNext();
  }
  return tracked;
}

/** A local time today, as the schedule reads it. */
const at = (h: number, m = 0, s = 0): Date => new Date(2026, 5, 15, h, m, s);

describe('token bucket', () => {
  it('starts full at its burst, then permits bytes at the rate: waits computed, never slept', () => {
    const b = new TokenBucket(MiB, 0);
    assert.equal(b.capacity, 256 * KiB, 'burst = max(64 KiB, rate × 250 ms)');
    for (let i = 0; i < 4; i++) {
      assert.equal(b.delay(64 * KiB, 0), 0);
      b.take(64 * KiB, 0);
    }
    assert.equal(b.tokens(0), 0);
    // 64 KiB at 1 MiB/s is 62.5 ms: rounded up to whole milliseconds.
    assert.equal(b.delay(64 * KiB, 0), 63);
    assert.equal(b.delay(64 * KiB, 62), 1);
    assert.equal(b.delay(64 * KiB, 62.5), 0);
    assert.throws(() => b.take(128 * KiB, 62.5), RangeError, 'taking tokens that are not there is a bug');
    b.take(64 * KiB, 62.5);
    assert.equal(b.tokens(10_000), 256 * KiB, 'idle time refills up to the burst, never beyond');
  });

  it('a new rate keeps what accrued, capped at the new burst', () => {
    const b = new TokenBucket(4 * MiB, 0);
    assert.equal(b.capacity, MiB);
    b.setRate(128 * KiB, 0);
    assert.equal(b.capacity, 64 * KiB, 'a slow rate still bursts one 64 KiB piece');
    assert.equal(b.tokens(0), 64 * KiB);
    b.take(64 * KiB, 0);
    assert.equal(b.delay(64 * KiB, 0), 500);
    assert.throws(() => new TokenBucket(0, 0), RangeError);
  });

  it('burst and piece sizes: the bound stated in the module', () => {
    assert.equal(burstFor(KiB), 64 * KiB);
    assert.equal(burstFor(256 * KiB), 64 * KiB);
    assert.equal(burstFor(4 * MiB), MiB);
    for (const rate of [KiB, 16 * KiB, 256 * KiB, MiB, 4 * MiB, 100 * MiB]) {
      assert.ok(burstFor(rate) <= Math.max(64 * KiB, rate), `burst ≤ max(64 KiB, 1 s of rate) at ${rate}`);
      assert.ok(chunkFor(rate) <= burstFor(rate), 'a piece always fits the bucket');
    }
    assert.equal(chunkFor(4 * MiB), 64 * KiB);
    assert.equal(chunkFor(16 * KiB), 4 * KiB);
    assert.equal(chunkFor(KiB), KiB);
    assert.equal(chunkFor(null), 64 * KiB);
  });
});

describe('limiter', () => {
  it('is absent for no limit, off, or a schedule that is off all day', () => {
    const clock = new FakeClock(at(12));
    assert.equal(limiterFor(undefined, clock), undefined);
    assert.equal(limiterFor(parseBandwidth('off'), clock), undefined);
    assert.equal(limiterFor(parseBandwidth('00:00-12:00=off, 12:00-24:00=off'), clock), undefined);
    assert.ok(limiterFor(parseBandwidth('1MiB/s'), clock) instanceof BandwidthLimiter);
  });

  it('one bucket for three parallel transfers: first come first served, the sum held to the rate plus one burst in every interval', async () => {
    const clock = new FakeClock(at(12));
    const limiter = new BandwidthLimiter(parseBandwidth('1MiB/s'), clock);
    const grants: { t: number; part: number }[] = [];
    const part = async (p: number): Promise<number> => {
      for (let i = 0; i < 16; i++) {
        await limiter.take(limiter.chunkSize);
        grants.push({ t: clock.t, part: p });
      }
      return clock.t;
    };
    const ends = await drive(clock, Promise.all([part(0), part(1), part(2)]));
    const piece = 64 * KiB;
    assert.equal(grants.length, 48);
    assert.equal(limiter.stats.granted, 48 * piece);
    // The full bucket (256 KiB = 4 pieces) goes at once, then one piece per 62.5 ms.
    assert.deepEqual(grants.slice(0, 4).map((g) => g.t), [0, 0, 0, 0]);
    const last = grants[47]!.t;
    assert.ok(last >= 44 * 62.5 && last <= 44 * 62.5 + 2, `the 48th piece at ${last} ms, expected ≈ ${44 * 62.5}`);
    // Bound: in any interval, at most rate × its length + the burst.
    for (let i = 0; i < grants.length; i++) {
      for (let j = i; j < grants.length; j++) {
        const bytes = (j - i + 1) * piece;
        const allowed = (MiB * (grants[j]!.t - grants[i]!.t)) / 1000 + burstFor(MiB) + 1;
        assert.ok(bytes <= allowed, `${bytes} bytes granted in [${grants[i]!.t}, ${grants[j]!.t}] ms`);
      }
    }
    // Served in turn: the three finish within two pieces' time of each other, each having had its share all along.
    assert.ok(Math.max(...ends) - Math.min(...ends) <= 2 * 63, `ends ${ends.join(', ')}`);
    for (let k = 3; k <= grants.length; k += 3) {
      const counts = [0, 1, 2].map((p) => grants.slice(0, k).filter((g) => g.part === p).length);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `after ${k} grants: ${counts.join('/')}`);
    }
  });

  it('changes rate at the schedule boundary while requests wait (1 MiB/s until 12:00, then 256 KiB/s)', async () => {
    const clock = new FakeClock(at(11, 59, 58));
    const limiter = new BandwidthLimiter(parseBandwidth('00:00-12:00=1MiB/s, 12:00-24:00=256KiB/s'), clock);
    const grants: { t: number; n: number }[] = [];
    const stop = 4000;
    const transfer = async (): Promise<void> => {
      while (clock.t < stop) {
        const n = limiter.chunkSize;
        await limiter.take(n);
        grants.push({ t: clock.t, n });
      }
    };
    await drive(clock, Promise.all([transfer(), transfer()]));
    const sum = (from: number, to: number): number => grants.filter((g) => g.t > from && g.t <= to).reduce((a, g) => a + g.n, 0);
    // 2 s before the boundary at 1 MiB/s (after the first burst), 2 s after it at 256 KiB/s.
    assert.ok(Math.abs(sum(0, 2000) - 2 * MiB) <= 64 * KiB, `before: ${sum(0, 2000)}`);
    assert.ok(Math.abs(sum(2000, 4000) - 512 * KiB) <= 64 * KiB, `after: ${sum(2000, 4000)}`);
    assert.ok(grants.every((g) => g.t <= 2000 || g.n === 64 * KiB));
  });

  it('a request waiting at a slow rate is released when an "off" window begins, at the boundary', async () => {
    const clock = new FakeClock(at(11, 59, 59));
    const limiter = new BandwidthLimiter(parseBandwidth('00:00-12:00=1KiB/s, 12:00-24:00=off'), clock);
    assert.equal(limiter.chunkSize, KiB);
    await limiter.take(64 * KiB); // the bucket's one burst
    let releasedAt = -1;
    const waiting = limiter.take(64 * KiB).then(() => {
      releasedAt = clock.t;
    });
    await clock.advance(999);
    assert.equal(releasedAt, -1, 'still limited before 12:00 (64 s of tokens missing)');
    await clock.advance(2);
    await waiting;
    assert.ok(releasedAt >= 1000 && releasedAt <= 1001, `released at ${releasedAt} ms`);
    assert.equal(limiter.rate, null);
    assert.equal(limiter.chunkSize, 64 * KiB);
    await limiter.take(100 * MiB);
    assert.equal(clock.pending, 0, 'no timer while off');
  });

  it('an "off" window passes requests at once; the limited window that follows starts with a full bucket', async () => {
    const clock = new FakeClock(at(11, 59, 59));
    const limiter = new BandwidthLimiter(parseBandwidth('00:00-12:00=off, 12:00-24:00=1MiB/s'), clock);
    for (let i = 0; i < 100; i++) await limiter.take(64 * KiB);
    assert.equal(clock.pending, 0);
    await clock.advance(1000);
    assert.equal(limiter.rate, MiB);
    const times: number[] = [];
    const work = (async () => {
      for (let i = 0; i < 6; i++) {
        await limiter.take(64 * KiB);
        times.push(clock.t);
      }
    })();
    await drive(clock, work);
    assert.deepEqual(times.slice(0, 4), [1000, 1000, 1000, 1000]);
    assert.ok(times[4]! >= 1062 && times[4]! <= 1063 && times[5]! >= 1125 && times[5]! <= 1126, times.join(', '));
  });

  it('a request larger than the bucket is paid piece by piece at the head of the queue', async () => {
    const clock = new FakeClock(at(9));
    const limiter = new BandwidthLimiter(parseBandwidth('64KiB/s'), clock);
    let doneAt = -1;
    let secondAt = -1;
    const big = limiter.take(256 * KiB).then(() => (doneAt = clock.t));
    const small = limiter.take(KiB).then(() => (secondAt = clock.t));
    await drive(clock, Promise.all([big, small]));
    assert.equal(doneAt, 3000, 'one burst, then 3 × 64 KiB at 64 KiB/s');
    assert.ok(secondAt >= doneAt, 'the next request waits its turn');
  });

  it('an aborted wait rejects with the reason and leaves the queue; the next request is served', async () => {
    const clock = new FakeClock(at(9));
    const limiter = new BandwidthLimiter(parseBandwidth('64KiB/s'), clock);
    await limiter.take(64 * KiB);
    const ac = new AbortController();
    const first = limiter.take(64 * KiB, ac.signal);
    let secondAt = -1;
    const second = limiter.take(32 * KiB).then(() => (secondAt = clock.t));
    ac.abort(new AbortError('stop'));
    await assert.rejects(first, (e: unknown) => e instanceof AbortError && e.message === 'stop');
    await drive(clock, second);
    assert.equal(secondAt, 500, 'the aborted request took no tokens');
    await assert.rejects(limiter.take(1, ac.signal), AbortError, 'an aborted signal refuses at once');
  });
});

describe('the pipeline paced by a limiter', () => {
  const PS = 64 * KiB;
  let keyring: Keyring;
  let dir: string;
  before(async () => {
    keyring = await testKeyring();
    dir = mkdtempSync(join(tmpdir(), 'zbk-bw-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const options = (store: ObjectStore, data: Buffer, streamId: Uint8Array, checkpoint: RecordingCheckpoint, extra: Partial<UploadStreamOptions>): UploadStreamOptions => ({
    store,
    keyring,
    source: sourceOf(data),
    streamId,
    partSize: PS,
    volumeSize: 4 * PS,
    parallel: 3,
    storageClass: 'STANDARD',
    volumeMetadata: () => ({ 'zbk-meta': 'x' }),
    sealedSize,
    checkpoint,
    ...extra,
  });
  const readBack = (store: ObjectStore, streamId: Uint8Array, res: UploadResult): Promise<Buffer> =>
    collect(openVolumesFromStore({ store, keyring, streamId, volumes: res.volumes, sealedSize }));

  for (const kind of ['memory', 'local'] as const) {
    it(`uploads to the ${kind} store: every sealed byte passes the one shared bucket, paced at its rate, and reads back identically`, async () => {
      const store = kind === 'memory' ? new MemoryStore({ minPartSize: PS, archive: false }) : new LocalStore(join(dir, `store-${randomBytes(4).toString('hex')}`), { minPartSize: PS });
      const clock = new FakeClock(at(10));
      const limiter = new BandwidthLimiter(parseBandwidth('1MiB/s'), clock);
      const data = bytesOf(10 * PS + 1234, 7);
      const streamId = randomBytes(16);
      const res = await drive(clock, uploadStream(options(store, data, streamId, new RecordingCheckpoint(), { pacer: limiter })));
      assert.equal(limiter.stats.granted, res.storedSize, 'sealed bytes, not plaintext, are what is limited');
      assert.ok(res.storedSize > data.length);
      // The bucket's burst goes at once; the rest took (stored − burst) / rate of fake time at least.
      const expected = ((res.storedSize - burstFor(MiB)) / MiB) * 1000;
      assert.ok(clock.t >= expected - 1 && clock.t <= expected + 20, `fake time ${clock.t} ms, expected ≈ ${expected}`);
      assert.ok(limiter.stats.waited > 0);
      assert.ok((await readBack(store, streamId, res)).equals(data));
    });
  }

  it('a paced upload killed midway resumes (paced) to the same volumes', async () => {
    const store = new MemoryStore({ minPartSize: PS, archive: false });
    const data = bytesOf(9 * PS + 99, 8);
    const streamId = randomBytes(16);
    const clock = new FakeClock(at(10));
    const limiter = new BandwidthLimiter(parseBandwidth('2MiB/s'), clock);
    const crashing = new RecordingCheckpoint(5);
    await assert.rejects(drive(clock, uploadStream(options(store, data, streamId, crashing, { pacer: limiter }))));
    const resumed = crashing.restart();
    const res = await drive(clock, uploadStream(options(store, data, streamId, resumed, { pacer: limiter, resume: crashing.resumeState() })));
    assert.ok(res.partsSkipped > 0, 'acknowledged parts are not sent again');
    assert.ok((await readBack(store, streamId, res)).equals(data));
  });

  it('an upload stopped while its parts wait for the limit rejects at once, without retries of the stopped parts', async () => {
    const inner = new MemoryStore({ minPartSize: PS, archive: false });
    const store = new RetryingStore(inner, { retries: 5, minTimeoutMs: 1, maxTimeoutMs: 2 });
    // A clock that never moves: without the stop, the parts would wait forever.
    const clock = new FakeClock(at(10));
    const limiter = new BandwidthLimiter(parseBandwidth('1KiB/s'), clock);
    const ac = new AbortController();
    const running = uploadStream(options(store, bytesOf(8 * PS, 9), randomBytes(16), new RecordingCheckpoint(), { pacer: limiter, signal: ac.signal }));
    // Until a part waits for tokens (a condition, not a timing: the deadline only stops a broken test).
    for (const deadline = Date.now() + 20_000; clock.pending === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
    assert.ok(clock.pending > 0, 'a part waits for tokens');
    ac.abort();
    await assert.rejects(running, AbortError);
    assert.ok(inner.counts.uploadPart <= 3, `no retries of stopped parts (${inner.counts.uploadPart} uploadPart calls)`);
  });

  it('downloads: every ranged GET of a staged volume and of a read straight from the store is paced; the bytes are the same', async () => {
    const store = new MemoryStore({ minPartSize: PS, archive: false });
    const data = bytesOf(7 * PS + 5, 10);
    const streamId = randomBytes(16);
    const res = await uploadStream(options(store, data, streamId, new RecordingCheckpoint(), {}));
    const clock = new FakeClock(at(10));
    const limiter = new BandwidthLimiter(parseBandwidth('512KiB/s'), clock);
    let fetched = 0;
    for (const volume of res.volumes) {
      const r = await drive(clock, downloadVolume({ store, keyring, volume, streamId, destPath: join(dir, `v-${volume.index}`), sealedSize, pacer: limiter }));
      fetched += r.downloadedBytes;
    }
    assert.equal(fetched, res.storedSize);
    assert.equal(limiter.stats.granted, res.storedSize);
    const t = clock.t;
    const plain = await drive(clock, collect(openVolumesFromStore({ store, keyring, streamId, volumes: res.volumes, sealedSize, pacer: limiter })));
    assert.ok(plain.equals(data));
    assert.equal(limiter.stats.granted, 2 * res.storedSize);
    const expected = (res.storedSize / (512 * KiB)) * 1000;
    assert.ok(clock.t - t >= expected - burstFor(512 * KiB) / 512 - 1, `paced read took ${clock.t - t} ms of fake time, expected ≈ ${expected}`);
  });
});

describe('a paced part over HTTP (S3Store and the S3 test server)', () => {
  it('sends the body in paced pieces with its checksum; the server stores the exact bytes; a stop fails the part with its reason, not retried', async (t) => {
    const server = await startS3TestServer({ buckets: ['zbk-bw'] });
    t.after(() => server.close());
    const s3 = new S3Store(
      { url: 's3://zbk-bw/p', endpoint: server.endpoint, region: server.region, pathStyle: true, dataStorageClass: 'STANDARD', metaStorageClass: 'STANDARD', checksumCalculation: 'when_supported' },
      { credentials: server.credentials },
    );
    t.after(() => s3.destroy());
    const store = new RetryingStore(s3, { retries: 3, minTimeoutMs: 1, maxTimeoutMs: 2 });
    const body = Buffer.from(bytesOf(1 * MiB + 333, 11));
    const uploadId = await store.createMultipartUpload('obj');
    const clock = new FakeClock(at(10));
    const limiter = new BandwidthLimiter(parseBandwidth('512KiB/s'), clock);
    const part = await drive(clock, store.uploadPart('obj', uploadId, 1, body, undefined, { pacer: limiter }));
    assert.equal(part.size, body.length);
    assert.equal(part.checksumSha256, createHash('sha256').update(body).digest('base64'));
    assert.equal(limiter.stats.granted, body.length, 'every body byte passed the bucket, in pieces');
    assert.ok(clock.t >= ((body.length - burstFor(512 * KiB)) / (512 * KiB)) * 1000 - 1, `paced over ${clock.t} ms of fake time`);
    await store.completeMultipartUpload('obj', uploadId, [part]);
    assert.ok(Buffer.from(await store.getBytes('obj')).equals(body));

    const before = server.accounting.requests.UploadPart ?? 0;
    const stalled = new BandwidthLimiter(parseBandwidth('1KiB/s'), new FakeClock(at(10)));
    const ac = new AbortController();
    const id2 = await store.createMultipartUpload('obj2');
    const sending = store.uploadPart('obj2', id2, 1, body, undefined, { pacer: stalled, signal: ac.signal });
    for (const deadline = Date.now() + 20_000; stalled.stats.waited === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
    ac.abort(new AbortError('stopped by the test'));
    await assert.rejects(sending, (e: unknown) => e instanceof AbortError && e.message === 'stopped by the test');
    assert.ok((server.accounting.requests.UploadPart ?? 0) - before <= 1, 'the stopped part was not retried');
  });
});
