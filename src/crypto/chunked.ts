/**
 * The chunked AEAD container shared by sealed parts (`ZBKP`) and sealed
 * blobs (`ZBKB`). Layout, nonce rule and associated data are specified in
 * docs/FORMAT.md ("Chunked container"); this module is the single
 * implementation of it.
 *
 *   header (32) = magic(4) ‖ version(1) ‖ reserved(3, zero) ‖ keyId(8) ‖ noncePrefix(16)
 *   chunk i     = XChaCha20-Poly1305(key, nonce = noncePrefix ‖ u64le(i),
 *                   ad = header ‖ contextAd ‖ u64le(i) ‖ u8(last), plaintext_i)
 *
 * Sizes are a pure function of the plaintext length, so a reader can compute
 * any part's byte range in a volume, and a length that no plaintext length
 * produces is rejected before any decryption.
 */
import { IntegrityError } from '../errors.js';
import { equalBytes, toHex } from './bytes.js';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, type SodiumBackend } from './sodium.js';

/** Plaintext bytes per chunk (256 KiB; the last chunk may be shorter). See FORMAT.md for why. */
export const CHUNK_SIZE = 256 * 1024;
/** Sealed bytes of a full chunk. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + AEAD_TAG_BYTES;
/** Container header length. */
export const HEADER_BYTES = 32;
/** Random part of every chunk nonce (the rest is the chunk index). */
export const NONCE_PREFIX_BYTES = 16;
/** The only container version this code writes and reads. */
export const CONTAINER_VERSION = 1;

/** Number of chunks for `plainLen` bytes: at least one, so empty input is still authenticated. */
export function chunkCount(plainLen: number): number {
  return plainLen === 0 ? 1 : Math.ceil(plainLen / CHUNK_SIZE);
}

/** Sealed length of a container holding `plainLen` bytes. */
export function containerSize(plainLen: number): number {
  if (!Number.isSafeInteger(plainLen) || plainLen < 0) throw new RangeError('plaintext length must be a non-negative integer');
  return HEADER_BYTES + plainLen + AEAD_TAG_BYTES * chunkCount(plainLen);
}

/** Inverse of containerSize; null when no plaintext length seals to `sealedLen`. */
export function plainLengthOf(sealedLen: number): number | null {
  const body = sealedLen - HEADER_BYTES;
  if (body < AEAD_TAG_BYTES) return null;
  if (body === AEAD_TAG_BYTES) return 0;
  const full = Math.floor(body / SEALED_CHUNK_SIZE);
  const rem = body % SEALED_CHUNK_SIZE;
  if (rem === 0) return full * CHUNK_SIZE;
  // A trailing chunk must carry at least one byte: writers never emit an
  // empty chunk after full ones, so such a length means tampering.
  if (rem <= AEAD_TAG_BYTES) return null;
  return full * CHUNK_SIZE + rem - AEAD_TAG_BYTES;
}

/** Build the 32-byte header. */
export function makeHeader(magic: Uint8Array, keyId: Uint8Array, noncePrefix: Uint8Array): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  h.set(magic, 0);
  h[4] = CONTAINER_VERSION;
  h.set(keyId, 8);
  h.set(noncePrefix, 16);
  return h;
}

/** What the container is called in error messages ("part", "blob"). */
export interface ContainerKind {
  label: string;
  magic: Uint8Array;
}

/** Reusable per-chunk AD and nonce buffers: no allocation per chunk. */
class ChunkParams {
  readonly ad: Uint8Array;
  readonly nonce = new Uint8Array(AEAD_NONCE_BYTES);
  private readonly adView: DataView;
  private readonly nonceView: DataView;
  private readonly tail: number;

  constructor(header: Uint8Array, contextAd: Uint8Array) {
    this.tail = HEADER_BYTES + contextAd.length;
    this.ad = new Uint8Array(this.tail + 9);
    this.ad.set(header.subarray(0, HEADER_BYTES), 0);
    this.ad.set(contextAd, HEADER_BYTES);
    this.nonce.set(header.subarray(16, 16 + NONCE_PREFIX_BYTES), 0);
    this.adView = new DataView(this.ad.buffer);
    this.nonceView = new DataView(this.nonce.buffer);
  }

  set(index: number, last: boolean): void {
    const lo = index >>> 0;
    const hi = Math.floor(index / 0x100000000);
    this.nonceView.setUint32(16, lo, true);
    this.nonceView.setUint32(20, hi, true);
    this.adView.setUint32(this.tail, lo, true);
    this.adView.setUint32(this.tail + 4, hi, true);
    this.ad[this.tail + 8] = last ? 1 : 0;
  }
}

/**
 * The output buffer: a view of the caller's `into` (reused across parts, so
 * no page faults per part), or a fresh uninitialised allocation. Skipping
 * the zero-fill is safe because every byte is written before the buffer is
 * returned, and open wipes it on failure.
 */
function outputBuffer(len: number, into?: Uint8Array): Uint8Array {
  if (!into) return new Uint8Array(Buffer.allocUnsafeSlow(len).buffer, 0, len);
  if (into.length < len) throw new RangeError(`output buffer too small: ${into.length} < ${len}`);
  return into.subarray(0, len);
}

/** Seal `plaintext` into one buffer (fresh, or a prefix of `into`) of containerSize(plaintext.length). */
export function sealContainer(
  sodium: SodiumBackend,
  key: Uint8Array,
  header: Uint8Array,
  contextAd: Uint8Array,
  plaintext: Uint8Array,
  into?: Uint8Array,
): Uint8Array {
  const n = plaintext.length;
  const out = outputBuffer(containerSize(n), into);
  out.set(header, 0);
  const p = new ChunkParams(header, contextAd);
  const chunks = chunkCount(n);
  let src = 0;
  let dst = HEADER_BYTES;
  for (let i = 0; i < chunks; i++) {
    const len = Math.min(CHUNK_SIZE, n - src);
    p.set(i, i === chunks - 1);
    sodium.aeadEncrypt(out.subarray(dst, dst + len + AEAD_TAG_BYTES), plaintext.subarray(src, src + len), p.ad, p.nonce, key);
    src += len;
    dst += len + AEAD_TAG_BYTES;
  }
  return out;
}

/** Parse and check the header; returns the plaintext length. Throws IntegrityError. */
export function checkHeader(kind: ContainerKind, sealed: Uint8Array, keyId: Uint8Array, sealedLen = sealed.length): number {
  if (sealed.length < HEADER_BYTES) throw new IntegrityError(`sealed ${kind.label} is too short to hold a header`, 'TRUNCATED');
  if (!equalBytes(sealed.subarray(0, 4), kind.magic)) {
    throw new IntegrityError(`not a zbk sealed ${kind.label} (bad magic)`, 'BAD_MAGIC');
  }
  if (sealed[4] !== CONTAINER_VERSION) {
    throw new IntegrityError(
      `sealed ${kind.label} has format version ${sealed[4]}, this zbk reads version ${CONTAINER_VERSION} (written by a newer zbk, or corrupted)`,
      'UNSUPPORTED_VERSION',
    );
  }
  if (sealed[5] !== 0 || sealed[6] !== 0 || sealed[7] !== 0) {
    throw new IntegrityError(`sealed ${kind.label} has non-zero reserved header bytes`, 'BAD_HEADER');
  }
  const fileKeyId = sealed.subarray(8, 16);
  if (!equalBytes(fileKeyId, keyId)) {
    throw new IntegrityError(
      `sealed ${kind.label} was made with key ${toHex(fileKeyId)}, the open key is ${toHex(keyId)} (another repository's key, or corrupted)`,
      'KEY_MISMATCH',
    );
  }
  const plainLen = plainLengthOf(sealedLen);
  if (plainLen === null) {
    throw new IntegrityError(`sealed ${kind.label} has an impossible length ${sealedLen} (truncated or extended)`, 'BAD_LENGTH');
  }
  return plainLen;
}

/**
 * Authenticate and decrypt a whole container. Every chunk is verified before
 * the plaintext is returned; on any failure the partial output is wiped and
 * IntegrityError is thrown.
 */
export function openContainer(
  sodium: SodiumBackend,
  key: Uint8Array,
  kind: ContainerKind,
  keyId: Uint8Array,
  contextAd: Uint8Array,
  sealed: Uint8Array,
  into?: Uint8Array,
): Uint8Array {
  const n = checkHeader(kind, sealed, keyId);
  const out = outputBuffer(n, into);
  const p = new ChunkParams(sealed, contextAd);
  const chunks = chunkCount(n);
  let src = HEADER_BYTES;
  let dst = 0;
  for (let i = 0; i < chunks; i++) {
    const len = Math.min(CHUNK_SIZE, n - dst);
    p.set(i, i === chunks - 1);
    const ok = sodium.aeadDecrypt(out.subarray(dst, dst + len), sealed.subarray(src, src + len + AEAD_TAG_BYTES), p.ad, p.nonce, key);
    if (!ok) {
      sodium.memzero(out);
      throw new IntegrityError(
        `sealed ${kind.label} failed authentication at chunk ${i} of ${chunks} (corrupted, truncated, reordered, or not the ${kind.label} expected here)`,
      );
    }
    src += len + AEAD_TAG_BYTES;
    dst += len;
  }
  return out;
}

/**
 * Incremental opener for one container whose total sealed length is known
 * up front (the restore side computes it). Feed bytes in any slicing; each
 * authenticated chunk is returned as soon as it is complete. A chunk is only
 * released once its own tag verifies, but a later chunk may still fail:
 * consumers must treat output as provisional until `finish()` returns.
 */
export class ContainerOpener {
  private header: Uint8Array | null = null;
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  private index = 0;
  private plainLeft = 0;
  private chunks = 0;
  private p: ChunkParams | null = null;

  constructor(
    private readonly sodium: SodiumBackend,
    private readonly key: Uint8Array,
    private readonly kind: ContainerKind,
    private readonly keyId: Uint8Array,
    private readonly contextAd: Uint8Array,
    private readonly sealedLength: number,
  ) {}

  /** Add sealed bytes; returns the plaintext of every chunk completed by them. */
  push(bytes: Uint8Array): Uint8Array[] {
    if (bytes.length > 0) {
      this.pending.push(bytes);
      this.pendingLen += bytes.length;
    }
    const out: Uint8Array[] = [];
    if (!this.header) {
      if (this.pendingLen < HEADER_BYTES) return out;
      const h = this.take(HEADER_BYTES);
      this.plainLeft = checkHeader(this.kind, h, this.keyId, this.sealedLength);
      this.chunks = chunkCount(this.plainLeft);
      this.header = h;
      this.p = new ChunkParams(h, this.contextAd);
    }
    while (this.index < this.chunks) {
      const len = Math.min(CHUNK_SIZE, this.plainLeft);
      if (this.pendingLen < len + AEAD_TAG_BYTES) break;
      const c = this.take(len + AEAD_TAG_BYTES);
      const m = new Uint8Array(len);
      this.p!.set(this.index, this.index === this.chunks - 1);
      if (!this.sodium.aeadDecrypt(m, c, this.p!.ad, this.p!.nonce, this.key)) {
        this.sodium.memzero(m);
        throw new IntegrityError(`sealed ${this.kind.label} failed authentication at chunk ${this.index} of ${this.chunks}`);
      }
      this.index++;
      this.plainLeft -= len;
      out.push(m);
    }
    if (this.index === this.chunks && this.pendingLen > 0) {
      throw new IntegrityError(`sealed ${this.kind.label} is longer than its stated length (extended)`, 'BAD_LENGTH');
    }
    return out;
  }

  /** Throws IntegrityError unless every chunk, including the last, was authenticated. */
  finish(): void {
    if (!this.header || this.index !== this.chunks || this.pendingLen !== 0) {
      throw new IntegrityError(`sealed ${this.kind.label} ended early (truncated)`, 'TRUNCATED');
    }
  }

  private take(n: number): Uint8Array {
    const all = this.pending.length === 1 ? this.pending[0]! : concatList(this.pending, this.pendingLen);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingLen = rest.length;
    return head;
  }
}

function concatList(list: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of list) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
