/**
 * The encryption contract the rest of zbk depends on. The byte layouts behind
 * it are specified in docs/FORMAT.md; implementations live beside this file.
 */

/** Where a sealed part belongs. Bound into every chunk's associated data. */
export interface PartContext {
  /** 16 random bytes naming one stream (one `zfs send`), shared by all its volumes. */
  streamId: Uint8Array;
  /** 0-based volume (object) index within the stream. */
  volumeIndex: number;
  /** 0-based part index within the volume (multipart part number − 1). */
  partIndex: number;
  /** True for the last part of the volume: dropping trailing parts is detected. */
  final: boolean;
}

/**
 * What one data object (volume) is, sealed into its S3 user metadata at
 * CreateMultipartUpload time, so `manifest rebuild` can place it from a
 * HeadObject without restoring archived data. Only what is known before the
 * upload starts is here; sizes and hashes live in the stream record.
 */
export interface VolumeMetadata {
  dataset: string;
  /** 32 hex chars. */
  streamId: string;
  /** Base snapshot for incrementals (null for a full stream). guid as decimal string. */
  fromSnapshot: { name: string; guid: string } | null;
  toSnapshot: { name: string; guid: string; createtxg: string; creation: number };
  volumeIndex: number;
  /** Upper bound of plaintext bytes per volume the writer used. */
  volumeSize: number;
  /** Plaintext bytes per part the writer used (every part but the volume's last). */
  partSize: number;
  /** ISO time the stream started. */
  startedAt: string;
}

/** Keys of an opened repository. Created by the key-file code, never persisted in plaintext. */
export interface Keyring {
  /** 16 hex chars identifying the master key (not secret, not reversible). */
  readonly keyId: string;

  /** Encrypt one part's plaintext. Output size is `sealedPartSize(plaintext.length)`. */
  sealPart(ctx: PartContext, plaintext: Uint8Array): Uint8Array;

  /**
   * Authenticate and decrypt a whole part. Throws IntegrityError (nothing
   * released) if any byte is wrong, the part is truncated or extended, or
   * it belongs to another stream/volume/index/final position.
   */
  openPart(ctx: PartContext, sealed: Uint8Array): Uint8Array;

  /** Seal a VolumeMetadata into a printable string ≤ 2,000 bytes (fits S3 user metadata). */
  sealVolumeMetadata(meta: VolumeMetadata): string;
  /** Inverse of sealVolumeMetadata; IntegrityError on any tampering. */
  openVolumeMetadata(sealed: string): VolumeMetadata;

  /**
   * Seal a small blob (manifest mirror, stream record). `kind` is bound as
   * associated data, so a blob of one kind cannot be passed off as another.
   */
  sealBlob(kind: string, plaintext: Uint8Array): Uint8Array;
  openBlob(kind: string, sealed: Uint8Array): Uint8Array;

  /**
   * Deterministic opaque name (keyed hash, hex) for `name` within `domain`:
   * equal inputs give equal outputs, nothing about the name is revealed.
   */
  opaqueName(domain: string, name: string): string;
}
