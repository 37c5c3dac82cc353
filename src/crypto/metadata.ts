/**
 * Sealed VolumeMetadata: the printable string stored in a volume's S3 user
 * metadata (`zbk-meta`), so `manifest rebuild` can place a volume from a
 * HeadObject without restoring archived data.
 *
 *   bytes  = "ZBKM" ‖ version(1) ‖ keyId(8) ‖ nonce(24) ‖ XChaCha20-Poly1305(metaKey, nonce, ad = bytes[0..37), json ‖ spaces)
 *   string = base64url(bytes), no padding
 *
 * The JSON is padded with spaces (which every JSON parser skips) to a size
 * class, so the stored length does not tell how long the dataset and
 * snapshot names are (`paddedMetadataLength`).
 */
import { IntegrityError, UsageError } from '../errors.js';
import { equalBytes, fromBase64url, fromUtf8, toBase64url, toHex, utf8 } from './bytes.js';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, type SodiumBackend } from './sodium.js';
import type { VolumeMetadata } from './types.js';

export const METADATA_MAGIC = utf8('ZBKM');
export const METADATA_VERSION = 1;
/** Header length (magic, version, key id, nonce), all of it associated data. */
export const METADATA_HEADER_BYTES = 4 + 1 + 8 + AEAD_NONCE_BYTES;
/** S3 allows 2 KB of user metadata per object; the sealed string must fit with room for the header name. */
export const METADATA_MAX_CHARS = 2000;
/** Padded plaintext lengths are multiples of this, up to the most that fits. */
export const METADATA_PAD_CLASS = 256;
/** The longest plaintext whose sealed string fits in METADATA_MAX_CHARS: ⌈(37 + m + 16)·4/3⌉ ≤ 2000. */
export const METADATA_MAX_PLAINTEXT = Math.floor((METADATA_MAX_CHARS * 3) / 4) - METADATA_HEADER_BYTES - AEAD_TAG_BYTES;

/** The padded length of a `jsonLength`-byte plaintext: the next multiple of 256, at most METADATA_MAX_PLAINTEXT. */
export function paddedMetadataLength(jsonLength: number): number {
  return Math.min(Math.ceil(Math.max(jsonLength, 1) / METADATA_PAD_CLASS) * METADATA_PAD_CLASS, METADATA_MAX_PLAINTEXT);
}

const HEX32 = /^[0-9a-f]{32}$/;
const DECIMAL = /^[0-9]{1,20}$/;
/** A snapshot identity: a ZFS guid, or a btrfs pin's UUID as a 128-bit decimal (39 digits). */
const ID = /^[0-9]{1,39}$/;

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function snapRef(v: unknown): { name: string; guid: string } | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string' || typeof o.guid !== 'string' || !ID.test(o.guid)) return null;
  return { name: o.name, guid: o.guid };
}

/**
 * Validate and canonicalise (fixed key order, no extra fields) so the same
 * metadata always serialises to the same JSON. Returns null when invalid.
 */
export function canonicalMetadata(v: unknown): VolumeMetadata | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.dataset !== 'string' || typeof o.streamId !== 'string' || !HEX32.test(o.streamId)) return null;
  let from: VolumeMetadata['fromSnapshot'] = null;
  if (o.fromSnapshot !== null) {
    from = snapRef(o.fromSnapshot);
    if (!from) return null;
  }
  const toRef = snapRef(o.toSnapshot);
  if (!toRef) return null;
  const to = o.toSnapshot as Record<string, unknown>;
  if (typeof to.createtxg !== 'string' || !DECIMAL.test(to.createtxg) || !isUint(to.creation)) return null;
  if (!isUint(o.volumeIndex) || !isUint(o.volumeSize) || !isUint(o.partSize) || typeof o.startedAt !== 'string') return null;
  return {
    dataset: o.dataset,
    streamId: o.streamId,
    fromSnapshot: from,
    toSnapshot: { name: toRef.name, guid: toRef.guid, createtxg: to.createtxg, creation: to.creation },
    volumeIndex: o.volumeIndex,
    volumeSize: o.volumeSize,
    partSize: o.partSize,
    startedAt: o.startedAt,
  };
}

/** Seal metadata with an explicit nonce (the keyring supplies a random one). */
export function sealMetadata(
  sodium: SodiumBackend,
  key: Uint8Array,
  keyId: Uint8Array,
  nonce: Uint8Array,
  meta: VolumeMetadata,
): string {
  const canon = canonicalMetadata(meta);
  if (!canon) throw new UsageError('volume metadata is malformed (check streamId, snapshot guids, indices)', 'METADATA_INVALID');
  const json = utf8(JSON.stringify(canon));
  if (json.length > METADATA_MAX_PLAINTEXT) {
    throw new UsageError(
      `volume metadata is ${json.length} bytes, over the ${METADATA_MAX_PLAINTEXT} that fit sealed in S3 user metadata (dataset or snapshot names too long)`,
      'METADATA_TOO_LARGE',
    );
  }
  const padded = new Uint8Array(paddedMetadataLength(json.length)).fill(0x20);
  padded.set(json, 0);
  const out = new Uint8Array(METADATA_HEADER_BYTES + padded.length + AEAD_TAG_BYTES);
  out.set(METADATA_MAGIC, 0);
  out[4] = METADATA_VERSION;
  out.set(keyId, 5);
  out.set(nonce, 13);
  const header = out.subarray(0, METADATA_HEADER_BYTES);
  sodium.aeadEncrypt(out.subarray(METADATA_HEADER_BYTES), padded, header, nonce, key);
  padded.fill(0);
  const s = toBase64url(out);
  if (s.length > METADATA_MAX_CHARS) {
    throw new UsageError(
      `sealed volume metadata is ${s.length} characters, over the ${METADATA_MAX_CHARS} that fit in S3 user metadata (dataset or snapshot names too long)`,
      'METADATA_TOO_LARGE',
    );
  }
  return s;
}

/** Authenticate and parse sealed metadata. IntegrityError on any tampering. */
export function openMetadata(sodium: SodiumBackend, key: Uint8Array, keyId: Uint8Array, sealed: string): VolumeMetadata {
  const bytes = sealed.length <= METADATA_MAX_CHARS ? fromBase64url(sealed) : null;
  if (!bytes || bytes.length < METADATA_HEADER_BYTES + AEAD_TAG_BYTES) {
    throw new IntegrityError('sealed volume metadata is not valid base64url of a plausible length', 'BAD_METADATA');
  }
  if (!equalBytes(bytes.subarray(0, 4), METADATA_MAGIC)) throw new IntegrityError('not zbk volume metadata (bad magic)', 'BAD_MAGIC');
  if (bytes[4] !== METADATA_VERSION) {
    throw new IntegrityError(
      `volume metadata has format version ${bytes[4]}, this zbk reads version ${METADATA_VERSION} (written by a newer zbk, or corrupted)`,
      'UNSUPPORTED_VERSION',
    );
  }
  const fileKeyId = bytes.subarray(5, 13);
  if (!equalBytes(fileKeyId, keyId)) {
    throw new IntegrityError(`volume metadata was sealed with key ${toHex(fileKeyId)}, the open key is ${toHex(keyId)}`, 'KEY_MISMATCH');
  }
  const header = bytes.subarray(0, METADATA_HEADER_BYTES);
  const ct = bytes.subarray(METADATA_HEADER_BYTES);
  const plain = new Uint8Array(ct.length - AEAD_TAG_BYTES);
  if (!sodium.aeadDecrypt(plain, ct, header, bytes.subarray(13, 37), key)) {
    throw new IntegrityError('sealed volume metadata failed authentication (corrupted or tampered)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plain));
  } catch {
    parsed = null;
  }
  const meta = canonicalMetadata(parsed);
  if (!meta) throw new IntegrityError('sealed volume metadata authenticated but its content is malformed', 'METADATA_INVALID');
  return meta;
}
