import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { readParts } from '../../src/pipeline/parts.js';
import { bytesOf, sourceOf } from './helpers.js';

const PS = 1024;

describe('readParts', () => {
  for (const size of [0, 1, PS - 1, PS, PS + 1, 3 * PS, 3 * PS + 17, 100 * PS]) {
    it(`splits ${size} bytes into full parts and one last part`, async () => {
      const data = bytesOf(size, size);
      const parts = [];
      for await (const p of readParts(sourceOf(data), PS)) parts.push(p);
      const expectedCount = size === 0 ? 1 : Math.ceil(size / PS);
      assert.equal(parts.length, expectedCount);
      parts.forEach((p, i) => {
        assert.equal(p.last, i === parts.length - 1);
        if (!p.last) assert.equal(p.data.length, PS);
      });
      const lastLen = parts.at(-1)!.data.length;
      assert.equal(lastLen, size === 0 ? 0 : size - (expectedCount - 1) * PS);
      assert.deepEqual(Buffer.concat(parts.map((p) => p.data)), data);
    });
  }

  it('handles chunks larger than a part and zero-length chunks', async () => {
    const data = bytesOf(10 * PS + 5, 9);
    const src = Readable.from([Buffer.alloc(0), data.subarray(0, 5 * PS + 3), Buffer.alloc(0), data.subarray(5 * PS + 3)], { objectMode: false });
    const parts = [];
    for await (const p of readParts(src, PS)) parts.push(p);
    assert.equal(parts.length, 11);
    assert.deepEqual(Buffer.concat(parts.map((p) => p.data)), data);
  });

  for (const buffers of [1, 2, 3]) {
    it(`with reuseBuffer and ${buffers} buffer(s), part k stays intact until part k + ${buffers} is read`, async () => {
      const data = bytesOf(7 * PS + 11, 5);
      const allocated: Buffer[] = [];
      const seen: Buffer[] = [];
      const gen = readParts(sourceOf(data), PS, { reuseBuffer: true, buffers, allocate: (n) => (allocated.push(Buffer.alloc(n)), allocated.at(-1)!) });
      const copies: Buffer[] = [];
      for await (const p of gen) {
        const k = seen.length;
        seen.push(p.data);
        copies.push(Buffer.from(p.data));
        // Every part still inside the window of `buffers` parts holds its own bytes.
        for (let j = Math.max(0, k - buffers + 1); j <= k; j++) assert.deepEqual(seen[j], copies[j], `part ${j} overwritten while reading part ${k}`);
        // The part `buffers` back shares this part's memory: it was overwritten.
        if (k >= buffers) assert.equal(seen[k - buffers]!.buffer, p.data.buffer);
      }
      assert.equal(allocated.length, buffers);
      assert.deepEqual(Buffer.concat(copies), data);
    });
  }

  it('hands out independent buffers (a kept part is not overwritten)', async () => {
    const data = bytesOf(4 * PS, 3);
    const kept = [];
    for await (const p of readParts(sourceOf(data), PS)) kept.push(p.data);
    for (let i = 0; i < 4; i++) assert.deepEqual(kept[i], data.subarray(i * PS, (i + 1) * PS));
  });

  it('destroys the source when the consumer stops early', async () => {
    const src = sourceOf(bytesOf(50 * PS, 4));
    for await (const p of readParts(src, PS)) {
      assert.equal(p.last, false);
      break;
    }
    assert.equal(src.destroyed, true);
    assert.ok(src.readBytes() < 50 * PS, 'it did not read the whole source');
  });

  it('propagates a source error', async () => {
    const src = new Readable({
      read() {
        this.destroy(new Error('zfs send died'));
      },
    });
    await assert.rejects(async () => {
      for await (const _ of readParts(src, PS)) void _;
    }, /zfs send died/);
  });

  it('rejects text streams and bad part sizes', async () => {
    const src = Readable.from(['abc']);
    await assert.rejects(async () => {
      for await (const _ of readParts(src, PS)) void _;
    }, TypeError);
    await assert.rejects(async () => {
      for await (const _ of readParts(sourceOf(Buffer.alloc(1)), 0)) void _;
    }, RangeError);
  });
});
