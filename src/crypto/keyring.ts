/**
 * The opened repository key: subkeys derived from the master key, and the
 * sealing operations of the `Keyring` contract (src/crypto/types.ts).
 * Byte layouts: docs/FORMAT.md.
 */
import { concat, toHex, u32le, utf8 } from './bytes.js';
import {
  CHUNK_SIZE,
  ContainerOpener,
  containerSize,
  HEADER_BYTES,
  makeHeader,
  NONCE_PREFIX_BYTES,
  openContainer,
  sealContainer,
  type ContainerKind,
} from './chunked.js';
import { openMetadata, sealMetadata } from './metadata.js';
import type { SodiumBackend } from './sodium.js';
import type { Keyring, PartContext, VolumeMetadata } from './types.js';

/** Master key length in bytes. */
export const MASTER_KEY_BYTES = 32;
/** Plaintext bytes per chunk inside a sealed part. */
export const PART_CHUNK_SIZE = CHUNK_SIZE;
/** Bytes of the sealed-part header. */
export const PART_HEADER_BYTES = HEADER_BYTES;

/**
 * crypto_kdf_derive_from_key parameters of each subkey (context, id). Never
 * change these for format version 1: every stored byte depends on them.
 */
export const SUBKEYS = {
  data: { context: 'zbk-data', id: 1 },
  metadata: { context: 'zbk-meta', id: 1 },
  names: { context: 'zbk-name', id: 1 },
} as const;

/** BLAKE2b message (keyed with the master key) whose first 8 output bytes are the key id. */
export const KEY_ID_CONTEXT = 'zbk key id v1';

const PART_KIND: ContainerKind = { label: 'part', magic: utf8('ZBKP') };
const BLOB_KIND: ContainerKind = { label: 'blob', magic: utf8('ZBKB') };

/** Sealed length of a part with `plainLen` plaintext bytes (pure; the restore side computes ranges with it). */
export function sealedPartSize(plainLen: number): number {
  return containerSize(plainLen);
}

/** Sealed length of a blob with `plainLen` plaintext bytes. */
export function sealedBlobSize(plainLen: number): number {
  return containerSize(plainLen);
}

/** Compute the 8-byte key id of a master key. */
export function keyIdOf(sodium: SodiumBackend, masterKey: Uint8Array): Uint8Array {
  const h = new Uint8Array(32);
  sodium.genericHash(h, utf8(KEY_ID_CONTEXT), masterKey);
  return h.slice(0, 8);
}

/** Options for tests and vectors. */
export interface KeyringOptions {
  /** Source of nonces (default: the backend's CSPRNG). Only tests inject one. */
  randomBytes?: (out: Uint8Array) => void;
}

/** The bytes a part's chunks bind as context: streamId ‖ u32le(volume) ‖ u32le(part) ‖ u8(final). */
export function partContextAd(ctx: PartContext): Uint8Array {
  if (!(ctx.streamId instanceof Uint8Array) || ctx.streamId.length !== 16) throw new TypeError('streamId must be 16 bytes');
  const ad = new Uint8Array(25);
  ad.set(ctx.streamId, 0);
  ad.set(u32le(ctx.volumeIndex), 16);
  ad.set(u32le(ctx.partIndex), 20);
  ad[24] = ctx.final ? 1 : 0;
  return ad;
}

function blobContextAd(kind: string): Uint8Array {
  if (kind.length === 0) throw new TypeError('blob kind must not be empty');
  const k = utf8(kind);
  return concat(u32le(k.length), k);
}

/**
 * What a thread other than the keyring's needs to open parts: the data
 * subkey and the key id (copies; whoever holds them wipes them). Only
 * `ZbkKeyring.partOpeningKey` makes one, for the part-opening worker of the
 * restore pipeline (src/pipeline/part-opener.ts), which runs in this
 * process: the key never leaves it.
 */
export interface PartOpeningKey {
  dataKey: Uint8Array;
  keyId: Uint8Array;
}

/**
 * Authenticate and decrypt one sealed part with `key` into `out` (≥ its
 * plaintext length), returning the filled prefix; IntegrityError (prefix
 * wiped) otherwise. The one implementation behind ZbkKeyring.openPartInto
 * and the part-opening worker.
 */
export function openPartWithKey(sodium: SodiumBackend, key: PartOpeningKey, ctx: PartContext, sealed: Uint8Array, out?: Uint8Array): Uint8Array {
  return openContainer(sodium, key.dataKey, PART_KIND, key.keyId, partContextAd(ctx), sealed, out);
}

/** Keyring implementation. Obtain one from the key file (or keyringFromMasterKey in tests). */
export class ZbkKeyring implements Keyring {
  readonly keyId: string;
  /** Raw 8-byte key id as written into headers. */
  readonly keyIdBytes: Uint8Array;
  private readonly dataKey = new Uint8Array(32);
  private readonly metaKey = new Uint8Array(32);
  private readonly nameKey = new Uint8Array(32);
  private readonly random: (out: Uint8Array) => void;

  constructor(
    private readonly sodium: SodiumBackend,
    masterKey: Uint8Array,
    opts: KeyringOptions = {},
  ) {
    if (masterKey.length !== MASTER_KEY_BYTES) throw new TypeError('master key must be 32 bytes');
    this.keyIdBytes = keyIdOf(sodium, masterKey);
    this.keyId = toHex(this.keyIdBytes);
    sodium.kdfDerive(this.dataKey, SUBKEYS.data.id, SUBKEYS.data.context, masterKey);
    sodium.kdfDerive(this.metaKey, SUBKEYS.metadata.id, SUBKEYS.metadata.context, masterKey);
    sodium.kdfDerive(this.nameKey, SUBKEYS.names.id, SUBKEYS.names.context, masterKey);
    this.random = opts.randomBytes ?? ((out) => sodium.randomBytes(out));
  }

  /** Name of the libsodium backend in use (`native` / `wasm`). */
  get backend(): string {
    return this.sodium.name;
  }

  sealPart(ctx: PartContext, plaintext: Uint8Array): Uint8Array {
    return sealContainer(this.sodium, this.dataKey, this.freshHeader(PART_KIND), partContextAd(ctx), plaintext);
  }

  openPart(ctx: PartContext, sealed: Uint8Array): Uint8Array {
    return openPartWithKey(this.sodium, this.partKey(), ctx, sealed);
  }

  /**
   * sealPart into a caller-owned buffer (at least `sealedPartSize(plaintext.length)`
   * bytes), returning the filled prefix. Lets a pipeline reuse one buffer
   * per upload slot instead of faulting in fresh pages for every part.
   */
  sealPartInto(ctx: PartContext, plaintext: Uint8Array, out: Uint8Array): Uint8Array {
    return sealContainer(this.sodium, this.dataKey, this.freshHeader(PART_KIND), partContextAd(ctx), plaintext, out);
  }

  /** openPart into a caller-owned buffer; on IntegrityError the buffer prefix is wiped. */
  openPartInto(ctx: PartContext, sealed: Uint8Array, out: Uint8Array): Uint8Array {
    return openPartWithKey(this.sodium, this.partKey(), ctx, sealed, out);
  }

  /** Copies of what opening parts needs, for a worker thread of this process (see PartOpeningKey). */
  partOpeningKey(): PartOpeningKey {
    return { dataKey: this.dataKey.slice(), keyId: this.keyIdBytes.slice() };
  }

  /**
   * Streaming opener for one part of known sealed length: push sealed bytes,
   * get back each chunk's plaintext once its tag verifies. Output is
   * provisional until `finish()` returns (a later chunk may still fail).
   */
  openPartChunks(ctx: PartContext, sealedLength: number): ContainerOpener {
    return new ContainerOpener(this.sodium, this.dataKey, PART_KIND, this.keyIdBytes, partContextAd(ctx), sealedLength);
  }

  sealVolumeMetadata(meta: VolumeMetadata): string {
    const nonce = new Uint8Array(24);
    this.random(nonce);
    return sealMetadata(this.sodium, this.metaKey, this.keyIdBytes, nonce, meta);
  }

  openVolumeMetadata(sealed: string): VolumeMetadata {
    return openMetadata(this.sodium, this.metaKey, this.keyIdBytes, sealed);
  }

  sealBlob(kind: string, plaintext: Uint8Array): Uint8Array {
    return sealContainer(this.sodium, this.metaKey, this.freshHeader(BLOB_KIND), blobContextAd(kind), plaintext);
  }

  openBlob(kind: string, sealed: Uint8Array): Uint8Array {
    return openContainer(this.sodium, this.metaKey, BLOB_KIND, this.keyIdBytes, blobContextAd(kind), sealed);
  }

  opaqueName(domain: string, name: string): string {
    if (domain.includes('\0')) throw new TypeError('opaqueName domain must not contain NUL');
    const out = new Uint8Array(16);
    this.sodium.genericHash(out, concat(utf8(domain), new Uint8Array([0]), utf8(name)), this.nameKey);
    return toHex(out);
  }

  /** Wipe the subkeys. The keyring is unusable afterwards. */
  dispose(): void {
    this.sodium.memzero(this.dataKey);
    this.sodium.memzero(this.metaKey);
    this.sodium.memzero(this.nameKey);
  }

  private partKey(): PartOpeningKey {
    return { dataKey: this.dataKey, keyId: this.keyIdBytes };
  }

  private freshHeader(kind: ContainerKind): Uint8Array {
    const prefix = new Uint8Array(NONCE_PREFIX_BYTES);
    this.random(prefix);
    return makeHeader(kind.magic, this.keyIdBytes, prefix);
  }
}

/** Build a keyring straight from a master key (tests, vectors, paper-key import). */
export function keyringFromMasterKey(sodium: SodiumBackend, masterKey: Uint8Array, opts?: KeyringOptions): ZbkKeyring {
  return new ZbkKeyring(sodium, masterKey, opts);
}
