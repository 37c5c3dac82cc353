import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ConfigError, IntegrityError, UsageError } from '../../src/errors.js';
import { keyringFromMasterKey } from '../../src/crypto/keyring.js';
import { METADATA_MAX_CHARS } from '../../src/crypto/metadata.js';
import { CHUNK_SIZE, HEADER_BYTES } from '../../src/crypto/chunked.js';
import { loadSodium } from '../../src/crypto/sodium.js';
import type { VolumeMetadata } from '../../src/crypto/types.js';
import { backends, plaintext, vectorMasterKey } from './helpers.js';
import { VECTOR_METADATA } from './vectors.js';

let be: Awaited<ReturnType<typeof backends>>;
before(async () => {
  be = await backends();
});

const kr = (s: Parameters<typeof keyringFromMasterKey>[0]) => keyringFromMasterKey(s, vectorMasterKey());

function realistic(): VolumeMetadata {
  return {
    ...VECTOR_METADATA,
    dataset: 'tank/' + 'd'.repeat(195),
    fromSnapshot: { name: 's'.repeat(100), guid: '18446744073709551615' },
    toSnapshot: { name: 't'.repeat(100), guid: '18446744073709551614', createtxg: '18446744073709551613', creation: 4102444800 },
    volumeIndex: 9999,
  };
}

describe('sealed volume metadata', () => {
  it('round-trips across backends', () => {
    for (const [a, b] of be.pairs) {
      const s = kr(a).sealVolumeMetadata(VECTOR_METADATA);
      assert.match(s, /^[A-Za-z0-9_-]+$/);
      assert.deepEqual(kr(b).openVolumeMetadata(s), VECTOR_METADATA);
    }
  });

  it('fits in 2,000 bytes for 200-char datasets and 100-char snapshots', () => {
    const s = kr(be.native).sealVolumeMetadata(realistic());
    assert.ok(Buffer.byteLength(s) <= METADATA_MAX_CHARS, `${s.length}`);
    assert.deepEqual(kr(be.wasm).openVolumeMetadata(s), realistic());
  });

  it('is padded to size classes: its length does not tell the length of the names', () => {
    const seal = (dataset: string, snap: string): string =>
      kr(be.native).sealVolumeMetadata({ ...realistic(), dataset, toSnapshot: { ...realistic().toSnapshot, name: snap } });
    const short = seal('tank/a', 'daily-1');
    const longer = seal('tank/family/photos-2026', 'autosnap_2026-12-01_00:00:00_daily');
    assert.equal(short.length, longer.length, 'names of different lengths in one class seal to one length');
    const plainLen = (s: string): number => Buffer.from(s, 'base64url').length - 37 - 16;
    assert.equal(plainLen(short) % 256, 0);
    // The largest class is what fits: a 200-character dataset with 100-character snapshot names.
    const big = kr(be.native).sealVolumeMetadata(realistic());
    assert.ok(plainLen(big) % 256 === 0 || plainLen(big) === 1447, String(plainLen(big)));
    assert.deepEqual(kr(be.wasm).openVolumeMetadata(short).dataset, 'tank/a');
  });

  it('too large → clear UsageError', () => {
    const big = { ...realistic(), dataset: 'x'.repeat(1500) };
    assert.throws(() => kr(be.native).sealVolumeMetadata(big), (e: unknown) => e instanceof UsageError && e.code === 'METADATA_TOO_LARGE');
  });

  it('names do not appear in the sealed string', () => {
    const s = kr(be.native).sealVolumeMetadata(VECTOR_METADATA);
    assert.ok(!Buffer.from(s, 'base64url').includes(Buffer.from('tank/photos')));
  });

  it('any changed character, truncation, or a different key → IntegrityError', () => {
    const s = kr(be.native).sealVolumeMetadata(VECTOR_METADATA);
    for (let i = 0; i < s.length; i += 7) {
      const c = s[i] === 'A' ? 'B' : 'A';
      const t = s.slice(0, i) + c + s.slice(i + 1);
      assert.throws(() => kr(be.wasm).openVolumeMetadata(t), IntegrityError, `char ${i}`);
    }
    for (const t of ['', s.slice(0, -1), s.slice(0, -4), s + 'AAAA', s + '!']) {
      assert.throws(() => kr(be.wasm).openVolumeMetadata(t), IntegrityError);
    }
    assert.throws(() => keyringFromMasterKey(be.wasm, new Uint8Array(32)).openVolumeMetadata(s), IntegrityError);
  });

  it('malformed input metadata is refused when sealing', () => {
    assert.throws(() => kr(be.native).sealVolumeMetadata({ ...VECTOR_METADATA, streamId: 'nothex' }), UsageError);
  });
});

describe('sealed blobs', () => {
  it('round-trip across backends for empty, small and multi-chunk blobs', () => {
    for (const [a, b] of be.pairs) {
      for (const n of [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 3]) {
        const p = plaintext(n, 5);
        assert.deepEqual(kr(b).openBlob('zbk-manifest-v1', kr(a).sealBlob('zbk-manifest-v1', p)), p);
      }
    }
  });

  it('kind is bound; truncation, extension and flips are detected; parts and blobs are not interchangeable', () => {
    const k = kr(be.native);
    const sealed = k.sealBlob('zbk-manifest-v1', plaintext(CHUNK_SIZE + 10));
    assert.throws(() => k.openBlob('zbk-stream-v1', sealed), IntegrityError);
    assert.throws(() => k.openBlob('zbk-manifest-v1', sealed.subarray(0, sealed.length - 11)), IntegrityError);
    assert.throws(() => k.openBlob('zbk-manifest-v1', sealed.subarray(0, HEADER_BYTES + CHUNK_SIZE + 16)), IntegrityError);
    assert.throws(() => k.openBlob('zbk-manifest-v1', Buffer.concat([sealed, Buffer.alloc(1)])), IntegrityError);
    for (const pos of [0, 4, 9, 20, HEADER_BYTES, sealed.length - 1]) {
      const t = sealed.slice();
      t[pos]! ^= 4;
      assert.throws(() => k.openBlob('zbk-manifest-v1', t), IntegrityError, `pos ${pos}`);
    }
    const part = k.sealPart({ streamId: new Uint8Array(16), volumeIndex: 0, partIndex: 0, final: true }, plaintext(10));
    assert.throws(() => k.openBlob('zbk-manifest-v1', part), IntegrityError);
  });
});

describe('opaqueName', () => {
  it('is 32 hex, deterministic, backend-independent, key-dependent and domain-separated', () => {
    const a = kr(be.native).opaqueName('dataset', 'tank/photos');
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.equal(kr(be.wasm).opaqueName('dataset', 'tank/photos'), a);
    assert.notEqual(kr(be.native).opaqueName('snapshot', 'tank/photos'), a);
    assert.notEqual(kr(be.native).opaqueName('dataset', 'tank/photo'), a);
    assert.notEqual(kr(be.native).opaqueName('datase', 'ttank/photos'), a);
    assert.notEqual(keyringFromMasterKey(be.native, new Uint8Array(32)).opaqueName('dataset', 'tank/photos'), a);
  });
});

describe('loadSodium', () => {
  it('names the backend and honours ZBK_SODIUM', async () => {
    assert.equal(be.native.name, 'native');
    assert.equal(be.wasm.name, 'wasm');
    const saved = process.env.ZBK_SODIUM;
    try {
      process.env.ZBK_SODIUM = 'wasm';
      assert.equal((await loadSodium()).name, 'wasm');
      process.env.ZBK_SODIUM = 'native';
      assert.equal((await loadSodium()).name, 'native');
      process.env.ZBK_SODIUM = 'bogus';
      assert.throws(() => loadSodium(), ConfigError);
    } finally {
      if (saved === undefined) delete process.env.ZBK_SODIUM;
      else process.env.ZBK_SODIUM = saved;
    }
  });
});
