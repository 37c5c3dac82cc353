import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { repoRoot } from '../helpers/paths.js';
import { concat, toHex, u32le, utf8 } from '../../src/crypto/bytes.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import { backends, vectorMasterKey, vectorStreamId } from './helpers.js';
import { computeVectors, VECTOR_METADATA, VECTOR_PART_PLAINTEXT, vectorPaperKey } from './vectors.js';
import { keyringFromMasterKey } from '../../src/crypto/keyring.js';

const formatMd = readFileSync(resolve(repoRoot, 'docs', 'FORMAT.md'), 'utf8');

function block(name: string): string {
  const m = new RegExp(`<!-- ${name}:begin -->\\s*\`\`\`text\\n([\\s\\S]*?)\`\`\`\\s*<!-- ${name}:end -->`).exec(formatMd);
  assert.ok(m, `docs/FORMAT.md has no ${name} block`);
  return m[1]!;
}

/** name → value pairs published in docs/FORMAT.md. */
function documented(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of block('zbk-test-vectors').split('\n')) {
    const m = /^(\w+) = ([A-Za-z0-9_-]+)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

const u64le = (n: number): Uint8Array => concat(u32le(n), u32le(0));
const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => 0x40 + i);

let be: Awaited<ReturnType<typeof backends>>;
before(async () => {
  be = await backends();
});

describe('test vectors in docs/FORMAT.md', () => {
  it('the document lists every vector', () => {
    const doc = documented();
    assert.deepEqual([...doc.keys()], computeVectors(be.native).map(([k]) => k));
  });

  for (const name of ['native', 'wasm'] as const) {
    it(`are reproduced byte for byte by the ${name} backend`, () => {
      const doc = documented();
      for (const [k, v] of computeVectors(be[name])) assert.equal(v, doc.get(k), `${k} (${name})`);
    });

    it(`paper key vector is reproduced by the ${name} backend`, () => {
      assert.equal(vectorPaperKey(be[name]), block('zbk-paper-vector'));
    });
  }

  it('the metadata JSON shown in the document is what is sealed', () => {
    assert.ok(formatMd.includes('\n' + JSON.stringify(VECTOR_METADATA) + '\n'));
  });

  it('documented vectors open with both backends', () => {
    const doc = documented();
    const ctx = { streamId: vectorStreamId(), volumeIndex: 2, partIndex: 3, final: true };
    for (const s of [be.native, be.wasm]) {
      const k = keyringFromMasterKey(s, vectorMasterKey());
      assert.equal(Buffer.from(k.openPart(ctx, Buffer.from(doc.get('part_small')!, 'hex'))).toString(), VECTOR_PART_PLAINTEXT);
      assert.equal(k.openPart(ctx, Buffer.from(doc.get('part_empty')!, 'hex')).length, 0);
      assert.equal(Buffer.from(k.openBlob('zbk-stream-v1', Buffer.from(doc.get('blob_stream_record')!, 'hex'))).toString(), '{"v":1}');
      assert.deepEqual(k.openVolumeMetadata(doc.get('volume_metadata')!), VECTOR_METADATA);
    }
  });

  // Rebuild the vectors from the prose of FORMAT.md with raw primitives,
  // independently of src/crypto/chunked.ts and metadata.ts.
  function fromSpec(s: SodiumBackend): Record<string, string> {
    const mk = vectorMasterKey();
    const sub = (ctx: string): Uint8Array => {
      const k = new Uint8Array(32);
      s.kdfDerive(k, 1, ctx, mk);
      return k;
    };
    const kid = new Uint8Array(32);
    s.genericHash(kid, utf8('zbk key id v1'), mk);
    const keyId = kid.subarray(0, 8);
    const seal = (key: Uint8Array, magic: string, contextAd: Uint8Array, pt: Uint8Array): string => {
      const header = concat(utf8(magic), new Uint8Array([1, 0, 0, 0]), keyId, pattern(16));
      const nonce = concat(pattern(16), u64le(0));
      const ad = concat(header, contextAd, u64le(0), new Uint8Array([1]));
      const c = new Uint8Array(pt.length + 16);
      s.aeadEncrypt(c, pt, ad, nonce, key);
      return toHex(concat(header, c));
    };
    const partAd = concat(vectorStreamId(), u32le(2), u32le(3), new Uint8Array([1]));
    const kind = utf8('zbk-stream-v1');
    const metaHeader = concat(utf8('ZBKM'), new Uint8Array([1]), keyId, pattern(24));
    const json = utf8(JSON.stringify(VECTOR_METADATA));
    const metaCt = new Uint8Array(json.length + 16);
    s.aeadEncrypt(metaCt, json, metaHeader, pattern(24), sub('zbk-meta'));
    const name = new Uint8Array(16);
    s.genericHash(name, concat(utf8('dataset'), new Uint8Array([0]), utf8('tank/photos')), sub('zbk-name'));
    return {
      key_id: toHex(keyId),
      part_empty: seal(sub('zbk-data'), 'ZBKP', partAd, new Uint8Array(0)),
      part_small: seal(sub('zbk-data'), 'ZBKP', partAd, utf8(VECTOR_PART_PLAINTEXT)),
      blob_stream_record: seal(sub('zbk-meta'), 'ZBKB', concat(u32le(kind.length), kind), utf8('{"v":1}')),
      volume_metadata: Buffer.from(concat(metaHeader, metaCt)).toString('base64url'),
      opaque_name: toHex(name),
    };
  }

  it('match an independent construction from the specification text', () => {
    const doc = documented();
    for (const s of [be.native, be.wasm]) {
      for (const [k, v] of Object.entries(fromSpec(s))) assert.equal(v, doc.get(k), `${k} (${s.name})`);
    }
  });
});
