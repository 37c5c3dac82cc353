import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultInjectingStore } from '../../src/store/fault-store.js';
import { RetryingStore, type RetryEvent } from '../../src/store/retry-store.js';
import { AccessDeniedError, NoSuchUploadError, PermanentStoreError, TransientStoreError } from '../../src/store/errors.js';
import { runStoreSuite, sha256b64 } from './suite.js';

const FAST = { retries: 4, minTimeoutMs: 1, maxTimeoutMs: 2 };

function setup(retries = FAST.retries): { inner: MemoryStore; faults: FaultInjectingStore; store: RetryingStore; events: RetryEvent[] } {
  const inner = new MemoryStore({ minPartSize: 1024 });
  const faults = new FaultInjectingStore(inner);
  const events: RetryEvent[] = [];
  const store = new RetryingStore(faults, { ...FAST, retries }, { onRetry: (e) => events.push(e), randomize: false });
  return { inner, faults, store, events };
}

// The wrapper must not change the contract.
runStoreSuite('RetryingStore(MemoryStore)', async () => {
  const inner = new MemoryStore({ minPartSize: 1024 });
  return { store: new RetryingStore(inner, FAST), cleanup: async () => {}, caps: { archive: false, minPartSize: 1024, manyKeys: false } };
});

describe('RetryingStore', () => {
  it('retries transient failures and reports each retry', async () => {
    const { faults, store, events } = setup();
    faults.script('put', 'transient', 'transient', null);
    await store.put('a', Buffer.from('x'));
    assert.equal(faults.calls.put, 3);
    assert.deepEqual(
      events.map((e) => [e.method, e.key, e.attempt, e.error.code]),
      [
        ['put', 'a', 1, 'TRANSIENT'],
        ['put', 'a', 2, 'TRANSIENT'],
      ],
    );
  });

  it('listRestoreStates passes through both wrappers, retried and fault-injected like any call; absent when the inner store has none', async () => {
    const { inner, faults, store, events } = setup();
    await inner.put('d/a', Buffer.from('x'), { storageClass: 'DEEP_ARCHIVE' });
    faults.script('listRestoreStates', 'transient', null);
    const listed = await store.listRestoreStates!('d/');
    assert.deepEqual([...listed.entries()], [['d/a', { size: 1, storageClass: 'DEEP_ARCHIVE', restore: { state: 'archived' } }]]);
    assert.equal(faults.calls.listRestoreStates, 2);
    assert.equal(inner.counts.listRestoreStates, 1);
    assert.deepEqual(
      events.map((e) => [e.method, e.key]),
      [['listRestoreStates', 'd/']],
    );
    // A store without the method: neither wrapper invents one (callers HEAD instead).
    const bare: MemoryStore = new MemoryStore();
    Object.defineProperty(bare, 'listRestoreStates', { value: undefined });
    assert.equal(new FaultInjectingStore(bare).listRestoreStates, undefined);
    assert.equal(new RetryingStore(new FaultInjectingStore(bare), FAST).listRestoreStates, undefined);
  });

  it('never retries permanent errors', async () => {
    const { faults, store, events } = setup();
    faults.addFault({ method: 'head', kind: 'access-denied' });
    await assert.rejects(store.head('a'), AccessDeniedError);
    assert.equal(faults.calls.head, 1);
    const a = Buffer.from('abc');
    const id = await store.createMultipartUpload('k');
    await assert.rejects(store.uploadPart('k', id, 1, a, sha256b64(Buffer.from('other'))), PermanentStoreError);
    await assert.rejects(store.listParts('k', 'no-such-id'), NoSuchUploadError);
    assert.equal(faults.calls.uploadPart, 1);
    assert.equal(faults.calls.listParts, 1);
    assert.equal(events.length, 0);
  });

  it('gives up after the configured retries with the last transient error', async () => {
    const { faults, store } = setup(3);
    faults.addFault({ method: 'getBytes', kind: 'transient' });
    await assert.rejects(store.getBytes('a'), TransientStoreError);
    assert.equal(faults.calls.getBytes, 4);
  });

  it('each part is retried independently with the full budget', async () => {
    const { faults, store } = setup(2);
    const id = await store.createMultipartUpload('k');
    // Every part fails twice, then succeeds: needs a fresh budget per part.
    faults.addFault({ method: 'uploadPart', sequence: ['transient', 'transient', null, 'transient', 'transient', null, 'transient', 'transient', null] });
    const parts = [randomBytes(2048), randomBytes(2048), randomBytes(10)];
    const acked = [];
    for (const [i, p] of parts.entries()) acked.push(await store.uploadPart('k', id, i + 1, p, sha256b64(p)));
    await store.completeMultipartUpload('k', id, acked);
    assert.deepEqual(Buffer.from(await store.getBytes('k')), Buffer.concat(parts));
  });

  it('a complete whose reply was lost is recognised on retry', async () => {
    const { faults, store, inner } = setup();
    const id = await store.createMultipartUpload('k');
    const a = randomBytes(2048);
    const b = randomBytes(5);
    const acked = [await store.uploadPart('k', id, 1, a, sha256b64(a)), await store.uploadPart('k', id, 2, b, sha256b64(b))];
    faults.script('completeMultipartUpload', 'transient-after');
    await store.completeMultipartUpload('k', id, acked);
    assert.deepEqual(Buffer.from(await inner.getBytes('k')), Buffer.concat([a, b]));
    // Without a transient failure first, NoSuchUpload stands.
    await assert.rejects(store.completeMultipartUpload('k', id, acked), NoSuchUploadError);
  });

  it('a listing that fails midway resumes without duplicates', async () => {
    const { inner, faults, store } = setup();
    for (let i = 0; i < 5; i++) await inner.put(`p/${i}`, Buffer.from('x'));
    faults.script('list', null, 'transient');
    // Make the first listing fail after two entries.
    let n = 0;
    const orig = inner.list.bind(inner);
    inner.list = async function* (prefix: string) {
      const first = n++ === 0;
      let i = 0;
      for await (const e of orig(prefix)) {
        if (first && i++ === 2) throw new TransientStoreError('page fetch failed');
        yield e;
      }
    };
    const keys: string[] = [];
    for await (const e of store.list('p/')) keys.push(e.key);
    assert.deepEqual(keys, ['p/0', 'p/1', 'p/2', 'p/3', 'p/4']);
    assert.equal(faults.calls.list, 3);
  });

  it('callerIdentity is null for stores without identities', async () => {
    const { store } = setup();
    assert.equal(await store.callerIdentity(), null);
  });
});
