/**
 * The two part openers (inline, worker thread) against each other: same
 * plaintext and hashes from the same sealed parts, the same refusals.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyringFromMasterKey, loadSodium, type ZbkKeyring } from '../../src/crypto/index.js';
import type { PartContext } from '../../src/crypto/types.js';
import { IntegrityError } from '../../src/errors.js';
import { createPartOpener, InlinePartOpener, WorkerPartOpener, type PartOpener } from '../../src/pipeline/part-opener.js';
import { bytesOf } from './helpers.js';

let keyring: ZbkKeyring;
const streamId = randomBytes(16);
const ctx = (partIndex: number, final = false): PartContext => ({ streamId, volumeIndex: 3, partIndex, final });
const openers: { name: string; opener: PartOpener }[] = [];

before(async () => {
  keyring = keyringFromMasterKey(await loadSodium(), randomBytes(32));
  openers.push({ name: 'inline', opener: new InlinePartOpener(keyring) }, { name: 'worker', opener: new WorkerPartOpener(keyring.partOpeningKey()) });
});
after(async () => {
  for (const o of openers) await o.opener.close();
});

/** Seal `plain` as part `i` into a buffer from `opener`. */
function sealInto(opener: PartOpener, i: number, plain: Buffer, final = false): Buffer {
  const sealed = keyring.sealPart(ctx(i, final), plain);
  const buf = opener.allocate(sealed.length);
  buf.set(sealed);
  return buf;
}

describe('PartOpener', () => {
  it('opens parts into the given buffer and hashes each volume in order, identically inline and on the worker', async () => {
    const parts = [bytesOf(300_000, 1), bytesOf(5, 2), bytesOf(262_144, 3)];
    const whole = createHash('sha256').update(Buffer.concat(parts)).digest('hex');
    for (const { name, opener } of openers) {
      const a = opener.beginVolume();
      const b = opener.beginVolume();
      for (const [i, p] of parts.entries()) {
        const out = opener.allocate(p.length + 7);
        const plain = await opener.open(a, ctx(i, i === parts.length - 1), sealInto(opener, i, p, i === parts.length - 1), out);
        assert.ok(Buffer.from(plain).equals(p), `${name}: part ${i}`);
        assert.equal(plain.buffer, out.buffer, `${name}: opened into the caller's buffer`);
      }
      await opener.open(b, ctx(0), sealInto(opener, 0, parts[0]!), opener.allocate(parts[0]!.length));
      assert.equal(await opener.digest(a), whole, `${name}: volume hash`);
      assert.equal(await opener.digest(b), createHash('sha256').update(parts[0]!).digest('hex'), `${name}: hashes are per volume`);
    }
  });

  it('refuses a flipped byte or a part in the wrong place with IntegrityError, leaving the hash untouched', async () => {
    const p = bytesOf(100_000, 4);
    for (const { name, opener } of openers) {
      const v = opener.beginVolume();
      const bad = sealInto(opener, 0, p);
      bad[40_000]! ^= 1;
      await assert.rejects(opener.open(v, ctx(0), bad, opener.allocate(p.length)), IntegrityError, `${name}: flipped byte`);
      await assert.rejects(opener.open(v, ctx(1), sealInto(opener, 0, p), opener.allocate(p.length)), IntegrityError, `${name}: wrong part index`);
      await opener.open(v, ctx(0), sealInto(opener, 0, p), opener.allocate(p.length));
      assert.equal(await opener.digest(v), createHash('sha256').update(p).digest('hex'), `${name}: only the authentic part was hashed`);
    }
  });

  it('the worker refuses buffers outside shared memory instead of copying them silently', async () => {
    const worker = openers.find((o) => o.name === 'worker')!.opener;
    const sealed = Buffer.from(keyring.sealPart(ctx(0), bytesOf(10, 5)));
    await assert.rejects(worker.open(worker.beginVolume(), ctx(0), sealed, worker.allocate(10)), /not from PartOpener\.allocate/);
  });

  it('the key handed to a worker is wiped on this side, and createPartOpener picks the worker for a ZbkKeyring', async () => {
    const key = keyring.partOpeningKey();
    const w = new WorkerPartOpener(key);
    assert.ok(key.dataKey.every((b) => b === 0));
    const p = bytesOf(1000, 6);
    const plain = await w.open(w.beginVolume(), ctx(0), sealInto(w, 0, p), w.allocate(p.length));
    assert.ok(Buffer.from(plain).equals(p));
    await w.close();
    await w.close(); // idempotent
    const auto = createPartOpener(keyring);
    assert.ok(auto instanceof WorkerPartOpener);
    await auto.close();
  });
});
