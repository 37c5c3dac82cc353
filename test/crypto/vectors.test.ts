import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { repoRoot } from '../helpers/paths.js';
import { createHash } from 'node:crypto';
import { concat, toHex, u32le, utf8 } from '../../src/crypto/bytes.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import { backends, vectorMasterKey, vectorStreamId } from './helpers.js';
import {
  computeVectors,
  streamVector,
  twoChunkPlaintext,
  VECTOR_METADATA,
  VECTOR_PART_PLAINTEXT,
  VECTOR_PASSPHRASE,
  VECTOR_STREAM_PLAINTEXT,
  vectorKeyFile,
  vectorPaperKey,
} from './vectors.js';
import { keyringFromMasterKey } from '../../src/crypto/keyring.js';
import { openKeyFile } from '../../src/crypto/keyfile.js';
import { BLOB_STREAM_RECORD } from '../../src/layout.js';
import { parseStreamRecord } from '../../src/manifest/rebuild.js';

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
  it('the document lists every vector', async () => {
    const doc = documented();
    assert.deepEqual([...doc.keys()], (await computeVectors(be.native)).map(([k]) => k));
  });

  for (const name of ['native', 'wasm'] as const) {
    it(`are reproduced byte for byte by the ${name} backend`, async () => {
      const doc = documented();
      for (const [k, v] of await computeVectors(be[name])) assert.equal(v, doc.get(k), `${k} (${name})`);
    });

    it(`paper key vector is reproduced by the ${name} backend`, () => {
      assert.equal(vectorPaperKey(be[name]), block('zbk-paper-vector'));
    });

    it(`key file vector is reproduced by the ${name} backend`, async () => {
      assert.equal(await vectorKeyFile(be[name]), block('zbk-keyfile-vector'));
    });

    it(`stream record vector is the JSON the ${name} backend seals`, () => {
      assert.equal(streamVector(be[name]).recordJson + '\n', block('zbk-stream-record-vector'));
    });
  }

  it('the key file vector opens with its passphrase to the vector master key', async () => {
    for (const s of [be.native, be.wasm]) {
      const kr = await openKeyFile(s, utf8(block('zbk-keyfile-vector')), VECTOR_PASSPHRASE);
      assert.equal(kr.keyId, documented().get('key_id'));
    }
  });

  it('the stream vector decodes to its plaintext, and its record passes the record checks', () => {
    const doc = documented();
    const id = vectorStreamId();
    for (const s of [be.native, be.wasm]) {
      const k = keyringFromMasterKey(s, vectorMasterKey());
      const record = parseStreamRecord(k.openBlob(BLOB_STREAM_RECORD, Buffer.from(doc.get('stream_record')!, 'hex')), toHex(id));
      assert.equal(JSON.stringify(record) + '\n', block('zbk-stream-record-vector'));
      const out: Buffer[] = [];
      for (const v of record.volumes) {
        const sealed = Buffer.from(doc.get(`stream_volume_${v.index}`)!, 'hex');
        assert.equal(sealed.length, v.storedSize);
        const full = 32 + v.partSize + 16;
        const vol: Buffer[] = [];
        for (let p = 0, off = 0; p < v.partCount; p++) {
          const len = p < v.partCount - 1 ? full : sealed.length - off;
          vol.push(Buffer.from(k.openPart({ streamId: id, volumeIndex: v.index, partIndex: p, final: p === v.partCount - 1 }, sealed.subarray(off, off + len))));
          off += len;
        }
        const plain = Buffer.concat(vol);
        assert.equal(createHash('sha256').update(plain).digest('hex'), v.plaintextSha256);
        out.push(plain);
      }
      assert.equal(Buffer.concat(out).toString(), VECTOR_STREAM_PLAINTEXT);
    }
  });

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
  async function fromSpec(s: SodiumBackend): Promise<Record<string, string>> {
    const mk = vectorMasterKey();
    const sub = (ctx: string): Uint8Array => {
      const k = new Uint8Array(32);
      s.kdfDerive(k, 1, ctx, mk);
      return k;
    };
    const kid = new Uint8Array(32);
    s.genericHash(kid, utf8('zbk key id v1'), mk);
    const keyId = kid.subarray(0, 8);
    // The container: 256 KiB chunks, nonce = prefix ‖ u64le(i), AD = header ‖ context ‖ u64le(i) ‖ u8(last).
    const sealBytes = (key: Uint8Array, magic: string, contextAd: Uint8Array, pt: Uint8Array, prefix = pattern(16)): Uint8Array => {
      const header = concat(utf8(magic), new Uint8Array([1, 0, 0, 0]), keyId, prefix);
      const n = Math.max(1, Math.ceil(pt.length / 262144));
      const out: Uint8Array[] = [header];
      for (let i = 0; i < n; i++) {
        const m = pt.subarray(i * 262144, (i + 1) * 262144);
        const c = new Uint8Array(m.length + 16);
        s.aeadEncrypt(c, m, concat(header, contextAd, u64le(i), new Uint8Array([i === n - 1 ? 1 : 0])), concat(prefix, u64le(i)), key);
        out.push(c);
      }
      return concat(...out);
    };
    const seal = (key: Uint8Array, magic: string, contextAd: Uint8Array, pt: Uint8Array): string => toHex(sealBytes(key, magic, contextAd, pt));
    const partAd = concat(vectorStreamId(), u32le(2), u32le(3), new Uint8Array([1]));
    const two = sealBytes(sub('zbk-data'), 'ZBKP', concat(vectorStreamId(), u32le(2), u32le(4), new Uint8Array([0])), twoChunkPlaintext());
    const kek = async (pw: Uint8Array): Promise<string> => {
      const out = new Uint8Array(32);
      await s.pwhashArgon2id(out, pw, pattern(16), 1, 8192);
      return toHex(out);
    };
    // The stream vector: parts of 16 bytes, 2 per volume, part k of the stream under prefix 16 × (0x80 + k).
    const streamPlain = utf8(VECTOR_STREAM_PLAINTEXT);
    const vols: Record<string, string> = {};
    for (let v = 0, k = 0; v * 32 < streamPlain.length; v++) {
      const vp = streamPlain.subarray(v * 32, (v + 1) * 32);
      const count = Math.ceil(vp.length / 16);
      const sealed: Uint8Array[] = [];
      for (let p = 0; p < count; p++, k++) {
        const ad = concat(vectorStreamId(), u32le(v), u32le(p), new Uint8Array([p === count - 1 ? 1 : 0]));
        sealed.push(sealBytes(sub('zbk-data'), 'ZBKP', ad, vp.subarray(p * 16, (p + 1) * 16), new Uint8Array(16).fill(0x80 + k)));
      }
      vols[`stream_volume_${v}`] = toHex(concat(...sealed));
    }
    const kind = utf8('zbk-stream-v1');
    const metaHeader = concat(utf8('ZBKM'), new Uint8Array([1]), keyId, pattern(24));
    // Padded with spaces to the next multiple of 256 bytes (section 13).
    const bare = utf8(JSON.stringify(VECTOR_METADATA));
    const json = new Uint8Array(Math.ceil(bare.length / 256) * 256).fill(0x20);
    json.set(bare);
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
      part_two_chunks_sha256: createHash('sha256').update(two).digest('hex'),
      part_two_chunks_tail: toHex(two.subarray(two.length - 116)),
      kek: await kek(utf8('correct horse battery staple')),
      // The composed "café" (U+00E9): what NFC makes of the decomposed vector passphrase.
      kek_nfc: await kek(utf8('caf\u00e9')),
      ...vols,
      stream_record: toHex(sealBytes(sub('zbk-meta'), 'ZBKB', concat(u32le(kind.length), kind), utf8(block('zbk-stream-record-vector').trimEnd()), new Uint8Array(16).fill(0xa0))),
    };
  }

  it('match an independent construction from the specification text', async () => {
    const doc = documented();
    for (const s of [be.native, be.wasm]) {
      for (const [k, v] of Object.entries(await fromSpec(s))) assert.equal(v, doc.get(k), `${k} (${s.name})`);
    }
  });
});
