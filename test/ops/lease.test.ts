/**
 * The writer lease: one machine writes a repository at a time. Two holders
 * are two state dirs (the holder id is machine id + state dir); the clock is
 * injected, so expiry is tested without waiting.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { LEASE_KEY } from '../../src/layout.js';
import { LeaseGuardedStore } from '../../src/services/lease/guarded-store.js';
import { LEASE_TTL_MS, LeaseHeldError, LeaseLostError, WriterLease, readLease, type LeaseEnv } from '../../src/services/lease/writer-lease.js';
import { FaultInjectingStore } from '../../src/store/fault-store.js';
import { PermanentStoreError } from '../../src/store/errors.js';
import { LocalStore } from '../../src/store/local-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { RetryingStore } from '../../src/store/retry-store.js';
import { tempDir, testKeyring } from '../manifest/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
let n = 0;
let clock = Date.parse('2026-12-01T10:00:00Z');
const now = (): Date => new Date(clock);

function machine(store: ObjectStore, warnings: string[] = []): LeaseEnv {
  const stateDir = join(tmp.dir, `state${n++}`);
  mkdirSync(stateDir);
  return { store, keyring, stateDir, storageClass: 'STANDARD', now, warn: (m) => warnings.push(m) };
}

describe('writer lease', () => {
  it('one holder at a time: another machine is refused with the holder named; after release it may take it', async () => {
    const store = new MemoryStore();
    const a = machine(store);
    const b = machine(store);
    const la = await WriterLease.acquire(a, 'zbk push', { renew: false });
    await assert.rejects(WriterLease.acquire(b, 'zbk push', { renew: false }), (e: unknown) => {
      assert.ok(e instanceof LeaseHeldError);
      assert.equal(e.exitCode, 8);
      assert.match(e.message, /being written by another state directory on this host: .* \(zbk push, pid \d+\) since .* until .*zbk lease break --yes/);
      return true;
    });
    // The same machine (another process after the manifest lock) may take it again.
    const again = await WriterLease.acquire(a, 'zbk consolidate --apply', { renew: false });
    await again.release();
    await la.release();
    const lb = await WriterLease.acquire(b, 'zbk push', { renew: false });
    lb.assertHeld();
    await lb.release();
    assert.equal((await readLease({ store, keyring }))?.record?.released, true);
    // Sealed: the store learns no host name.
    assert.equal(Buffer.from(await store.getBytes(LEASE_KEY)).includes(Buffer.from('zbk push')), false);
  });

  it('a lease expires an hour after its last renewal; the old holder then stops before its next write', async () => {
    const store = new MemoryStore();
    const warnings: string[] = [];
    const a = machine(store);
    const b = machine(store, warnings);
    const la = await WriterLease.acquire(a, 'zbk push', { renew: false });
    const guarded = new LeaseGuardedStore(store, () => la.assertHeld());
    await guarded.put('streams/x.zbks', new Uint8Array(1));
    clock += LEASE_TTL_MS / 2;
    await la.renew();
    clock += LEASE_TTL_MS / 2 + 1000;
    await assert.rejects(WriterLease.acquire(b, 'zbk push', { renew: false }), LeaseHeldError, 'renewed: still valid');
    clock += LEASE_TTL_MS;
    const lb = await WriterLease.acquire(b, 'zbk push', { renew: false });
    assert.deepEqual(warnings, [], 'an expired lease is taken without a warning');
    await assert.rejects(guarded.put('streams/y.zbks', new Uint8Array(1)), LeaseLostError);
    await assert.rejects(guarded.deleteMany(['streams/x.zbks']), LeaseLostError);
    assert.equal((await guarded.getBytes('streams/x.zbks')).length, 1, 'reads still work');
    await la.release();
    lb.assertHeld();
    assert.equal((await readLease({ store, keyring }))?.record?.released, false, "the old holder's release did not free the new holder's lease");
  });

  it('a lease broken by another machine is noticed at the next renewal', async () => {
    const store = new MemoryStore();
    const a = machine(store);
    const b = machine(store);
    const la = await WriterLease.acquire(a, 'zbk push', { renew: false });
    const lb = await WriterLease.acquire(b, 'zbk lease break', { takeOver: true, renew: false });
    la.assertHeld();
    await la.renew();
    assert.throws(() => la.assertHeld(), (e: unknown) => e instanceof LeaseLostError && /taken by .*zbk lease break/.test(e.message));
    lb.assertHeld();
  });

  it('two machines racing for a free lease: exactly one gets it', async () => {
    const store = new MemoryStore();
    const got = await Promise.allSettled([WriterLease.acquire(machine(store), 'zbk push', { renew: false }), WriterLease.acquire(machine(store), 'zbk push', { renew: false })]);
    assert.deepEqual(got.map((g) => g.status).sort(), ['fulfilled', 'rejected']);
    assert.ok((got.find((g) => g.status === 'rejected') as PromiseRejectedResult).reason instanceof LeaseHeldError);
  });

  it('a write whose reply was lost (retried, then refused by its own condition) is recognised as ours', async () => {
    const inner = new MemoryStore();
    const faulty = new FaultInjectingStore(inner).addFault({ method: 'putConditional', kind: 'transient-after', times: 1 });
    const store = new RetryingStore(faulty, { retries: 3, minTimeoutMs: 1, maxTimeoutMs: 2 });
    const la = await WriterLease.acquire(machine(store), 'zbk push', { renew: false });
    la.assertHeld();
    assert.equal(faulty.injected.putConditional, 1);
    await la.release();
    assert.equal((await readLease({ store, keyring }))?.record?.released, true);
  });

  it('a lease that does not open with this key (garbage, another repository) is taken over with a warning', async () => {
    const store = new MemoryStore();
    await store.put(LEASE_KEY, new Uint8Array(100).fill(3));
    const warnings: string[] = [];
    const l = await WriterLease.acquire(machine(store, warnings), 'zbk push', { renew: false });
    l.assertHeld();
    assert.match(warnings.join('\n'), /does not open with this key/);
  });

  it('a store without conditional writes (501 NotImplemented) still pushes, unguarded, with a warning', async () => {
    class NoConditional extends MemoryStore {
      override async putConditional(): Promise<string> {
        throw new PermanentStoreError('S3 putConditional zbk.lease: NotImplemented (HTTP 501)', 'NOT_IMPLEMENTED');
      }
    }
    const warnings: string[] = [];
    const l = await WriterLease.acquire(machine(new NoConditional(), warnings), 'zbk push', { renew: false });
    l.assertHeld();
    await l.release();
    assert.match(warnings.join('\n'), /cannot do conditional writes .*not enforced/);
  });

  it('without --no-wait, a writer waits while another holds the lease and takes it once released', async () => {
    const store = new MemoryStore();
    const a = machine(store);
    const la = await WriterLease.acquire(a, 'zbk push', { renew: false });
    let waited: string | null = null;
    const waiting = WriterLease.acquire(machine(store), 'zbk push', {
      renew: false,
      wait: true,
      pollMs: 5,
      onWait: (r) => {
        waited = r.command;
        void la.release();
      },
    });
    const lb = await waiting;
    assert.equal(waited, 'zbk push', 'it said whom it waited for');
    lb.assertHeld();
    await lb.release();
  });

  it('a lease broken by another machine is noticed at the next commit point (one HEAD), not only at the next renewal', async () => {
    const store = new MemoryStore();
    const la = await WriterLease.acquire(machine(store), 'zbk push', { renew: false });
    const guarded = new LeaseGuardedStore(store, () => la.assertHeld(), () => la.confirm());
    await guarded.put('streams/a.zbks', new Uint8Array(1));
    await WriterLease.acquire(machine(store), 'zbk lease break', { takeOver: true, renew: false });
    await assert.rejects(guarded.put('streams/b.zbks', new Uint8Array(1)), (e: unknown) => e instanceof LeaseLostError && /taken by .*zbk lease break/.test(e.message));
    await assert.rejects(store.head('streams/b.zbks'), /not found/);
  });

  it('a lease object the store reports no ETag for (a file:// file without its sidecar) does not switch the lease off', async (t) => {
    const dir = join(tmp.dir, `local${n++}`);
    const store = new LocalStore(dir);
    await store.put('zbk.key', new Uint8Array(1)); // the store exists
    writeFileSync(join(dir, LEASE_KEY), 'junk');
    const warnings: string[] = [];
    const la = await WriterLease.acquire(machine(store, warnings), 'zbk push', { renew: false });
    t.after(() => la.release());
    await assert.rejects(WriterLease.acquire(machine(store), 'zbk push', { renew: false }), LeaseHeldError, 'the second machine is still refused');
    assert.doesNotMatch(warnings.join('\n'), /not enforced/);
  });

  it('an oversized lease object is not downloaded: taken over as not a lease', async () => {
    const store = new MemoryStore();
    await store.put(LEASE_KEY, new Uint8Array(5 * 1024 * 1024));
    store.resetCounts();
    const warnings: string[] = [];
    const l = await WriterLease.acquire(machine(store, warnings), 'zbk push', { renew: false });
    l.assertHeld();
    assert.equal(store.counts.getBytes, 0, 'nothing downloaded');
    assert.match(warnings.join('\n'), /does not open with this key/);
  });
});
