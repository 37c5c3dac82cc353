import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { IntegrityError } from '../../src/errors.js';
import { CHUNK_SIZE, HEADER_BYTES, plainLengthOf, SEALED_CHUNK_SIZE } from '../../src/crypto/chunked.js';
import { keyringFromMasterKey, PART_CHUNK_SIZE, sealedPartSize } from '../../src/crypto/keyring.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import type { PartContext } from '../../src/crypto/types.js';
import { backends, ctx, plaintext, vectorMasterKey } from './helpers.js';

const C = PART_CHUNK_SIZE;
const SIZES = [0, 1, C - 1, C, C + 1, 2 * C, 2 * C - 1, 2 * C + 1, 3 * C + 12345];

let be: Awaited<ReturnType<typeof backends>>;
before(async () => {
  be = await backends();
});

function kr(s: SodiumBackend) {
  return keyringFromMasterKey(s, vectorMasterKey());
}

/** Asserts IntegrityError, and that nothing was returned. */
function rejects(open: () => Uint8Array, what: string): void {
  let out: Uint8Array | undefined;
  assert.throws(() => {
    out = open();
  }, IntegrityError, what);
  assert.equal(out, undefined, `${what}: plaintext was returned`);
}

describe('sealed part sizes', () => {
  it('chunk size is within 64 KiB–1 MiB', () => {
    assert.ok(C >= 64 * 1024 && C <= 1024 * 1024);
  });

  it('sealedPartSize is header + plaintext + one tag per chunk, and invertible', () => {
    assert.equal(sealedPartSize(0), HEADER_BYTES + 16);
    assert.equal(sealedPartSize(1), HEADER_BYTES + 1 + 16);
    assert.equal(sealedPartSize(C), HEADER_BYTES + C + 16);
    assert.equal(sealedPartSize(C + 1), HEADER_BYTES + C + 1 + 32);
    for (const n of [...SIZES, 64 * 1024 * 1024, 5 * 1024 ** 3]) assert.equal(plainLengthOf(sealedPartSize(n)), n, `n=${n}`);
  });

  it('lengths no plaintext produces are rejected', () => {
    for (const bad of [0, HEADER_BYTES, HEADER_BYTES + 15, HEADER_BYTES + SEALED_CHUNK_SIZE + 16, HEADER_BYTES + SEALED_CHUNK_SIZE + 5]) {
      assert.equal(plainLengthOf(bad), null, `len=${bad}`);
    }
  });
});

describe('sealed parts across backends', () => {
  it('seal with one backend, open with the other, all sizes', () => {
    for (const [a, b] of be.pairs) {
      for (const n of SIZES) {
        const p = plaintext(n, n + 7);
        const c = ctx(1, { final: n % 2 === 0 });
        const sealed = kr(a).sealPart(c, p);
        assert.equal(sealed.length, sealedPartSize(n), `${a.name} n=${n}`);
        assert.deepEqual(kr(b).openPart(c, sealed), p, `${a.name}→${b.name} n=${n}`);
      }
    }
  });

  it('uses a fresh nonce per part (same input seals differently)', () => {
    const k = kr(be.native);
    const p = plaintext(100);
    assert.notDeepEqual(k.sealPart(ctx(0), p), k.sealPart(ctx(0), p));
  });

  it('a different master key cannot open the part', () => {
    const other = new Uint8Array(32).fill(9);
    const sealed = kr(be.native).sealPart(ctx(0), plaintext(10));
    rejects(() => keyringFromMasterKey(be.wasm, other).openPart(ctx(0), sealed), 'other key');
  });
});

describe('tamper matrix', () => {
  const N = 2 * C + 1000; // three chunks, the last one short
  const c0 = ctx(4);
  let sealed: Uint8Array;

  before(() => {
    sealed = kr(be.native).sealPart(c0, plaintext(N));
  });

  function flipped(pos: number): Uint8Array {
    const t = sealed.slice();
    t[pos]! ^= 0x01;
    return t;
  }

  function eachOpener(bytes: Uint8Array, c: PartContext, what: string): void {
    for (const s of [be.native, be.wasm]) rejects(() => kr(s).openPart(c, bytes), `${s.name}: ${what}`);
  }

  it('flipped bit in every header byte', () => {
    for (let i = 0; i < HEADER_BYTES; i++) eachOpener(flipped(i), c0, `header byte ${i}`);
  });

  it('flipped bit in sampled chunk bodies and in every tag byte', () => {
    const positions: number[] = [];
    for (let chunk = 0; chunk < 3; chunk++) {
      const start = HEADER_BYTES + chunk * SEALED_CHUNK_SIZE;
      const len = chunk < 2 ? C : 1000;
      positions.push(start, start + 1, start + (len >> 1), start + len - 1);
      for (let t = 0; t < 16; t++) positions.push(start + len + t);
    }
    for (const p of positions) eachOpener(flipped(p), c0, `byte ${p}`);
  });

  it('truncation: at every chunk boundary, mid-chunk, dropping the final chunk, inside the header', () => {
    const cuts = [
      0, 5, HEADER_BYTES, HEADER_BYTES + 10,
      HEADER_BYTES + SEALED_CHUNK_SIZE, // only chunk 0
      HEADER_BYTES + 2 * SEALED_CHUNK_SIZE, // final chunk dropped
      HEADER_BYTES + SEALED_CHUNK_SIZE + 777, // mid-chunk
      sealed.length - 1, sealed.length - 16, sealed.length - 17,
    ];
    for (const cut of cuts) eachOpener(sealed.subarray(0, cut), c0, `truncated to ${cut}`);
  });

  it('extension: garbage appended, last chunk duplicated', () => {
    const lastChunk = sealed.subarray(HEADER_BYTES + 2 * SEALED_CHUNK_SIZE);
    for (const extra of [new Uint8Array(1), new Uint8Array(16), new Uint8Array(SEALED_CHUNK_SIZE), lastChunk]) {
      const t = new Uint8Array(sealed.length + extra.length);
      t.set(sealed);
      t.set(extra, sealed.length);
      eachOpener(t, c0, `extended by ${extra.length}`);
    }
  });

  it('chunks reordered within a part', () => {
    const t = sealed.slice();
    const a = HEADER_BYTES;
    const b = HEADER_BYTES + SEALED_CHUNK_SIZE;
    t.set(sealed.subarray(b, b + SEALED_CHUNK_SIZE), a);
    t.set(sealed.subarray(a, a + SEALED_CHUNK_SIZE), b);
    eachOpener(t, c0, 'chunks 0 and 1 swapped');
  });

  it('part opened at the wrong place: other stream, volume, index, final flag', () => {
    const otherStream = ctx(4, { streamId: Uint8Array.from({ length: 16 }, (_, i) => i) });
    eachOpener(sealed, otherStream, 'other stream');
    eachOpener(sealed, ctx(4, { volumeIndex: 3 }), 'other volume');
    eachOpener(sealed, ctx(5), 'other index');
    eachOpener(sealed, ctx(4, { final: true }), 'final flag set');
    const fin = kr(be.wasm).sealPart(ctx(9, { final: true }), plaintext(10));
    eachOpener(fin, ctx(9, { final: false }), 'final flag cleared');
  });

  it('two parts of a volume swapped', () => {
    const k = kr(be.native);
    const p0 = k.sealPart(ctx(0), plaintext(C, 1));
    const p1 = k.sealPart(ctx(1), plaintext(C, 2));
    eachOpener(p1, ctx(0), 'part 1 at index 0');
    eachOpener(p0, ctx(1), 'part 0 at index 1');
    // and the genuine placement still opens
    assert.deepEqual(k.openPart(ctx(1), p1), plaintext(C, 2));
  });

  it('a chunk spliced in from another part at the same position', () => {
    const k = kr(be.native);
    const other = k.sealPart(c0, plaintext(N, 99));
    const t = sealed.slice();
    t.set(other.subarray(HEADER_BYTES, HEADER_BYTES + SEALED_CHUNK_SIZE), HEADER_BYTES);
    eachOpener(t, c0, 'spliced chunk');
  });
});

describe('streaming opener', () => {
  it('yields the same plaintext for any slicing, both backends', () => {
    const p = plaintext(3 * C + 5, 3);
    for (const [a, b] of be.pairs) {
      const sealed = kr(a).sealPart(ctx(0), p);
      const opener = kr(b).openPartChunks(ctx(0), sealed.length);
      const got: Uint8Array[] = [];
      for (let o = 0; o < sealed.length; o += 100_003) got.push(...opener.push(sealed.subarray(o, o + 100_003)));
      opener.finish();
      assert.deepEqual(Buffer.concat(got), Buffer.from(p));
      assert.ok(got.every((g) => g.length <= CHUNK_SIZE));
    }
  });

  it('detects truncation at finish and extension on push', () => {
    const sealed = kr(be.native).sealPart(ctx(0), plaintext(C + 10));
    const o1 = kr(be.native).openPartChunks(ctx(0), sealed.length);
    o1.push(sealed.subarray(0, sealed.length - 1));
    assert.throws(() => o1.finish(), IntegrityError);
    const o2 = kr(be.native).openPartChunks(ctx(0), sealed.length);
    assert.throws(() => o2.push(Buffer.concat([sealed, Buffer.from([1])])), IntegrityError);
  });

  it('a corrupted chunk throws when reached', () => {
    const sealed = kr(be.native).sealPart(ctx(0), plaintext(C + 10));
    sealed[HEADER_BYTES + SEALED_CHUNK_SIZE + 3]! ^= 1;
    const o = kr(be.wasm).openPartChunks(ctx(0), sealed.length);
    assert.equal(o.push(sealed.subarray(0, HEADER_BYTES + SEALED_CHUNK_SIZE)).length, 1);
    assert.throws(() => o.push(sealed.subarray(HEADER_BYTES + SEALED_CHUNK_SIZE)), IntegrityError);
  });
});

describe('sealPartInto / openPartInto', () => {
  it('produce the same format into reused buffers, and wipe the output on failure', () => {
    const p = plaintext(2 * C + 9, 11);
    const sealBuf = new Uint8Array(sealedPartSize(p.length) + 100);
    const openBuf = new Uint8Array(p.length + 100);
    for (const [a, b] of be.pairs) {
      const sealed = kr(a).sealPartInto(ctx(0), p, sealBuf);
      assert.equal(sealed.length, sealedPartSize(p.length));
      assert.equal(sealed.buffer, sealBuf.buffer);
      assert.deepEqual(kr(b).openPart(ctx(0), sealed), p);
      assert.deepEqual(kr(b).openPartInto(ctx(0), sealed, openBuf), p);
      sealed[sealed.length - 1]! ^= 1; // last chunk's tag: earlier chunks were already decrypted into openBuf
      assert.throws(() => kr(b).openPartInto(ctx(0), sealed, openBuf), IntegrityError);
      assert.ok(openBuf.subarray(0, p.length).every((x) => x === 0), `${b.name}: plaintext left in the buffer`);
    }
    assert.throws(() => kr(be.native).sealPartInto(ctx(0), p, new Uint8Array(10)), RangeError);
  });
});
