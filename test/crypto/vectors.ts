/**
 * Computes the test vectors published in docs/FORMAT.md. The vectors test
 * recomputes them with both backends and compares with the text of the
 * document, so the document and the code cannot drift apart; the
 * independent decoder (recovery/zbk-recover.py selftest) checks itself
 * against the same text.
 */
import { createHash } from 'node:crypto';
import { toHex, utf8 } from '../../src/crypto/bytes.js';
import { importPaperKey } from '../../src/crypto/keyfile.js';
import { keyIdOf, keyringFromMasterKey, sealedPartSize, SUBKEYS } from '../../src/crypto/keyring.js';
import { encodePaperKey } from '../../src/crypto/paper.js';
import type { SodiumBackend } from '../../src/crypto/sodium.js';
import type { VolumeMetadata } from '../../src/crypto/types.js';
import { BLOB_STREAM_RECORD, volumeKey, type StreamRecord, type VolumeRecord } from '../../src/layout.js';
import { ctx, patternNonces, vectorKeyring, vectorMasterKey, vectorStreamId } from './helpers.js';

/** The VolumeMetadata sealed in the vector. */
export const VECTOR_METADATA: VolumeMetadata = {
  dataset: 'tank/photos',
  streamId: 'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff',
  fromSnapshot: { name: 'autosnap_2024-01-01', guid: '1234567890123456789' },
  toSnapshot: { name: 'autosnap_2024-02-01', guid: '18446744073709551615', createtxg: '4242', creation: 1706745600 },
  volumeIndex: 2,
  volumeSize: 53687091200,
  partSize: 67108864,
  startedAt: '2024-02-01T03:00:00.000Z',
};

export const VECTOR_PART_PLAINTEXT = 'zbk test vector\n';

/** Passphrase of the key-file and KEK vectors. */
export const VECTOR_PASSPHRASE = 'correct horse battery staple';
/** "café" typed decomposed (e + U+0301): NFC makes it the composed "café" before Argon2id. */
export const VECTOR_PASSPHRASE_NFD = 'cafe\u0301';

/** 262144 + 100 bytes, byte i = i mod 251: two chunks, the second of 100 bytes. */
export function twoChunkPlaintext(): Uint8Array {
  return Uint8Array.from({ length: 262144 + 100 }, (_, i) => i % 251);
}

/** The stream vector: 40 bytes cut into parts of 16 bytes, volumes of 2 parts. */
export const VECTOR_STREAM_PLAINTEXT = '0123456789abcdefghijklmnopqrstuvwxyzABCD';
export const VECTOR_STREAM_PART_SIZE = 16;
export const VECTOR_STREAM_PARTS_PER_VOLUME = 2;

/** A backend whose random bytes follow the vector pattern (key-file vector). */
function patternBackend(sodium: SodiumBackend): SodiumBackend {
  return { ...sodium, randomBytes: patternNonces };
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const md5 = (b: Uint8Array): Buffer => createHash('md5').update(b).digest();

/** Argon2id (crypto_pwhash) KEK of `pass` (NFC) with the vector salt 40…4f and the `min` cost. */
async function vectorKek(sodium: SodiumBackend, pass: string): Promise<string> {
  const out = new Uint8Array(32);
  const salt = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
  await sodium.pwhashArgon2id(out, utf8(pass.normalize('NFC')), salt, 1, 8192);
  return toHex(out);
}

/** The key file of the vector master key under VECTOR_PASSPHRASE (cost `min`, pattern salt, nonce and slot id). */
export async function vectorKeyFile(sodium: SodiumBackend): Promise<string> {
  const { keyFile } = await importPaperKey(patternBackend(sodium), vectorPaperKey(sodium), VECTOR_PASSPHRASE, { params: 'min' });
  return Buffer.from(keyFile).toString('utf8');
}

export interface StreamVector {
  /** Sealed volumes, in order. */
  volumes: Uint8Array[];
  record: StreamRecord;
  /** The record's JSON as sealed (one line). */
  recordJson: string;
  sealedRecord: Uint8Array;
}

/**
 * A whole stream as zbk lays it out: the plaintext cut into parts of 16
 * bytes, 2 parts per volume (so volumes of 32, 32… bytes and a shorter
 * last one); part k of the stream (0-based, across volumes) sealed with
 * nonce prefix 16 × (0x80 + k); the stream record sealed with 16 × 0xa0.
 */
export function streamVector(sodium: SodiumBackend): StreamVector {
  const plain = utf8(VECTOR_STREAM_PLAINTEXT);
  const S = VECTOR_STREAM_PART_SIZE;
  const P = VECTOR_STREAM_PARTS_PER_VOLUME;
  let k = 0;
  const parts = keyringFromMasterKey(sodium, vectorMasterKey(), { randomBytes: (out) => out.fill(0x80 + k++) });
  const streamId = vectorStreamId();
  const streamHex = toHex(streamId);
  const volumes: Uint8Array[] = [];
  const records: VolumeRecord[] = [];
  for (let v = 0; v * P * S < plain.length; v++) {
    const vPlain = plain.subarray(v * P * S, Math.min(plain.length, (v + 1) * P * S));
    const count = Math.max(1, Math.ceil(vPlain.length / S));
    const sealed: Uint8Array[] = [];
    for (let p = 0; p < count; p++) {
      sealed.push(parts.sealPart({ streamId, volumeIndex: v, partIndex: p, final: p === count - 1 }, vPlain.subarray(p * S, (p + 1) * S)));
    }
    const bytes = Buffer.concat(sealed);
    volumes.push(bytes);
    // An S3 multipart ETag: MD5 of the parts' binary MD5s, "-" part count.
    const etag = `${md5(Buffer.concat(sealed.map(md5))).toString('hex')}-${count}`;
    records.push({ index: v, key: volumeKey(streamHex, v), plaintextSize: vPlain.length, plaintextSha256: sha256(vPlain), storedSize: bytes.length, partCount: count, partSize: S, etag });
  }
  const record: StreamRecord = {
    v: 1,
    streamId: streamHex,
    dataset: 'tank/photos',
    from: { name: 'autosnap_2024-01-01', guid: '1234567890123456789' },
    to: { name: 'autosnap_2024-02-01', guid: '18446744073709551615', createtxg: '4242', creation: 1706745600 },
    plaintextSize: plain.length,
    storedSize: records.reduce((n, r) => n + r.storedSize, 0),
    volumes: records,
    startedAt: '2024-02-01T03:00:00.000Z',
    completedAt: '2024-02-01T03:00:05.000Z',
    sendFlags: ['-c', '-L', '-e'],
  };
  const recordJson = JSON.stringify(record);
  const blobs = keyringFromMasterKey(sodium, vectorMasterKey(), { randomBytes: (out) => out.fill(0xa0) });
  return { volumes, record, recordJson, sealedRecord: blobs.sealBlob(BLOB_STREAM_RECORD, utf8(recordJson)) };
}

/** name → value (hex, or base64url for metadata), in document order. */
export async function computeVectors(sodium: SodiumBackend): Promise<[string, string][]> {
  const mk = vectorMasterKey();
  const kr = vectorKeyring(sodium);
  const sub = (s: { context: string; id: number }): string => {
    const out = new Uint8Array(32);
    sodium.kdfDerive(out, s.id, s.context, mk);
    return toHex(out);
  };
  const two = kr.sealPart(ctx(4, { final: false }), twoChunkPlaintext());
  if (two.length !== sealedPartSize(262144 + 100)) throw new Error('two-chunk vector has the wrong size');
  const sv = streamVector(sodium);
  return [
    ['master_key', toHex(mk)],
    ['key_id', toHex(keyIdOf(sodium, mk))],
    ['subkey_data', sub(SUBKEYS.data)],
    ['subkey_metadata', sub(SUBKEYS.metadata)],
    ['subkey_names', sub(SUBKEYS.names)],
    ['part_empty', toHex(kr.sealPart(ctx(3, { final: true }), new Uint8Array(0)))],
    ['part_small', toHex(kr.sealPart(ctx(3, { final: true }), utf8(VECTOR_PART_PLAINTEXT)))],
    ['part_two_chunks_sha256', sha256(two)],
    ['part_two_chunks_tail', toHex(two.subarray(two.length - 116))],
    ['blob_stream_record', toHex(kr.sealBlob('zbk-stream-v1', utf8('{"v":1}')))],
    ['volume_metadata', kr.sealVolumeMetadata(VECTOR_METADATA)],
    ['opaque_name', kr.opaqueName('dataset', 'tank/photos')],
    ['kek', await vectorKek(sodium, VECTOR_PASSPHRASE)],
    ['passphrase_nfd', toHex(utf8(VECTOR_PASSPHRASE_NFD))],
    ['kek_nfc', await vectorKek(sodium, VECTOR_PASSPHRASE_NFD)],
    ['stream_plaintext', toHex(utf8(VECTOR_STREAM_PLAINTEXT))],
    ...sv.volumes.map((v, i): [string, string] => [`stream_volume_${i}`, toHex(v)]),
    ['stream_record', toHex(sv.sealedRecord)],
  ];
}

/** The paper key of the vector master key, as printed. */
export function vectorPaperKey(sodium: SodiumBackend): string {
  return encodePaperKey(sodium, vectorMasterKey(), toHex(keyIdOf(sodium, vectorMasterKey())));
}
