import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultInjectingStore, SimulatedCrashError } from '../../src/store/fault-store.js';
import { AccessDeniedError, TransientStoreError } from '../../src/store/errors.js';
import { readAll, runStoreSuite, sha256b64 } from './suite.js';

/** A frozen clock tests move by hand. */
export function manualClock(start = new Date('2030-01-15T10:00:00Z')): { now: () => Date; advance(ms: number): void } {
  let t = start.getTime();
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

const MIN = 64 * 1024;
const RESTORE_DELAY = 12 * 3_600_000;

runStoreSuite('MemoryStore', async () => {
  const clock = manualClock();
  const store = new MemoryStore({ now: clock.now, minPartSize: MIN, restoreDelayMs: RESTORE_DELAY });
  return { store, cleanup: async () => {}, caps: { archive: true, minPartSize: MIN, advanceClock: clock.advance, restoreDelayMs: RESTORE_DELAY } };
});

describe('MemoryStore specifics', () => {
  it('counts operations', async () => {
    const s = new MemoryStore();
    await s.put('a', Buffer.from('x'));
    await s.getBytes('a');
    await s.getBytes('a');
    assert.equal(s.counts.put, 1);
    assert.equal(s.counts.getBytes, 2);
    s.resetCounts();
    assert.equal(s.counts.getBytes, 0);
  });

  it('archive: false makes archive classes readable', async () => {
    const s = new MemoryStore({ archive: false });
    await s.put('d', Buffer.from('deep'), { storageClass: 'DEEP_ARCHIVE' });
    assert.equal(Buffer.from(await s.getBytes('d')).toString(), 'deep');
    assert.equal(await s.requestRestore('d', 1, 'Bulk'), 'not-archived');
  });

  it('default minimum part size is 5 MiB', async () => {
    const s = new MemoryStore();
    const a = randomBytes(1024);
    const id = await s.createMultipartUpload('k');
    const p1 = await s.uploadPart('k', id, 1, a, sha256b64(a));
    const p2 = await s.uploadPart('k', id, 2, a, sha256b64(a));
    await assert.rejects(s.completeMultipartUpload('k', id, [p1, p2]), { code: 'ENTITY_TOO_SMALL' });
  });

  it('the restored copy expires at request time + days, rounded up to midnight UTC', async () => {
    const clock = manualClock(new Date('2030-01-15T10:00:00Z'));
    const s = new MemoryStore({ now: clock.now, restoreDelayMs: 1000 });
    await s.put('d', Buffer.from('x'), { storageClass: 'GLACIER' });
    assert.equal(await s.requestRestore('d', 3, 'Standard'), 'started');
    clock.advance(2000);
    assert.deepEqual((await s.head('d')).restore, { state: 'restored', expiry: new Date('2030-01-19T00:00:00Z') });
    // A repeat moves the expiry to now + days.
    clock.advance(2 * 86_400_000);
    assert.equal(await s.requestRestore('d', 3, 'Standard'), 'already-restored');
    assert.deepEqual((await s.head('d')).restore, { state: 'restored', expiry: new Date('2030-01-21T00:00:00Z') });
  });
});

describe('FaultInjectingStore', () => {
  it('scripted sequence injects per call, then passes', async () => {
    const f = new FaultInjectingStore(new MemoryStore());
    f.script('put', 'transient', null, 'access-denied');
    await assert.rejects(f.put('a', Buffer.from('1')), TransientStoreError);
    await f.put('a', Buffer.from('1'));
    await assert.rejects(f.put('a', Buffer.from('2')), AccessDeniedError);
    await f.put('a', Buffer.from('3'));
    assert.equal(Buffer.from(await f.getBytes('a')).toString(), '3');
    assert.equal(f.calls.put, 4);
    assert.equal(f.injected.put, 2);
  });

  it('"-after" faults let the call take effect; crashes are not StoreErrors', async () => {
    const inner = new MemoryStore();
    const f = new FaultInjectingStore(inner);
    f.addFault({ method: 'put', kind: 'crash-after', times: 1 });
    await assert.rejects(f.put('a', Buffer.from('1')), SimulatedCrashError);
    assert.deepEqual(inner.keys(), ['a']);
    f.addFault({ method: 'deleteMany', kind: 'crash' });
    await assert.rejects(f.deleteMany(['a']), SimulatedCrashError);
    assert.deepEqual(inner.keys(), ['a']);
  });

  it('probability uses the injected random source', async () => {
    let i = 0;
    const seq = [0.1, 0.9, 0.1, 0.9];
    const f = new FaultInjectingStore(new MemoryStore(), { random: () => seq[i++ % seq.length]! });
    f.addFault({ method: ['head'], kind: 'transient', probability: 0.5 });
    await f.put('a', Buffer.from('x'));
    await assert.rejects(f.head('a'), TransientStoreError);
    await f.head('a');
    await assert.rejects(f.head('a'), TransientStoreError);
  });

  it('stream-reset fails the body midway with a TransientStoreError', async () => {
    const f = new FaultInjectingStore(new MemoryStore());
    const data = randomBytes(1000);
    await f.put('a', data);
    f.addFault({ method: 'get', kind: 'stream-reset', afterBytes: 300, times: 1 });
    const s = await f.get('a');
    const got: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of s) got.push(c as Buffer);
      })(),
      TransientStoreError,
    );
    // Bytes buffered before the failure may or may not reach the reader; what
    // did arrive is a true prefix, and a ranged get resumes from there.
    const have = Buffer.concat(got);
    assert.ok(have.length <= 300);
    assert.deepEqual(have, data.subarray(0, have.length));
    const rest = await readAll(await f.get('a', { start: have.length, end: 999 }));
    assert.deepEqual(Buffer.concat([have, rest]), data);
  });
});
