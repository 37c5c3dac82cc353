/**
 * Row types the Manifest API returns and accepts.
 *
 * 64-bit ZFS values (guid, createtxg) cross the API as `bigint` and are
 * stored as canonical decimal TEXT; see `./guid.ts`. Times are `Date`.
 * Byte counts are `number` (exact below 2^53).
 */

export type StreamKind = 'full' | 'incremental';
/**
 * - `uploading`: push in progress (or interrupted; resumable).
 * - `complete`: every volume confirmed and the stream record written.
 * - `superseded`: replaced by consolidation; still in the store until deleted.
 * - `deleted`: every volume removed from the store.
 * - `abandoned`: an upload given up (restart from scratch); its objects are cleanup candidates.
 */
export type StreamState = 'uploading' | 'complete' | 'superseded' | 'deleted' | 'abandoned';
export type VolumeState = 'uploading' | 'complete' | 'aborted' | 'deleted';

export interface RepositoryRow {
  storeUrl: string;
  keyId: string;
  createdAt: Date;
}

export interface SnapshotRef {
  name: string;
  guid: bigint;
}

export interface TargetSnapshot extends SnapshotRef {
  createtxg: bigint;
  /** Unix seconds, as `zfs get creation -p` prints it. */
  creation: number;
}

export interface SnapshotRow extends TargetSnapshot {
  dataset: string;
}

export interface DatasetRow {
  name: string;
  opaqueId: string | null;
  createdAt: Date;
}

export interface StreamRow {
  /** 32 lower-case hex chars. */
  streamId: string;
  dataset: string;
  kind: StreamKind;
  from: SnapshotRef | null;
  to: TargetSnapshot;
  /** Known once complete. */
  plaintextSize: number | null;
  storedSize: number | null;
  state: StreamState;
  volumeSize: number;
  partSize: number;
  startedAt: Date;
  completedAt: Date | null;
  supersededAt: Date | null;
  abandonedAt: Date | null;
  abandonReason: string | null;
  /**
   * The `zfs send` flags of the stream in argument order (`-i <base>` not
   * included), e.g. `['-w', '-c', '-L', '-e']`; null when unknown (recorded
   * by a zbk before flags were recorded).
   */
  sendFlags: string[] | null;
}

export interface VolumeRow {
  streamId: string;
  volumeIndex: number;
  key: string;
  state: VolumeState;
  /** Set while a multipart upload is in flight. */
  uploadId: string | null;
  storageClass: string;
  storedSize: number | null;
  partCount: number | null;
  plaintextSize: number | null;
  /** hex SHA-256 of the volume's plaintext. */
  plaintextSha256: string | null;
  /**
   * ETag (without quotes) the store reported for the completed object; null
   * when unknown (recorded before zbk kept it, or the store reports none).
   */
  etag: string | null;
  startedAt: Date;
  uploadedAt: Date | null;
  deletedAt: Date | null;
}

/** One acknowledged part of an in-flight volume (an upload checkpoint). */
export interface PartCheckpoint {
  streamId: string;
  volumeIndex: number;
  /** 1-based multipart part number. */
  partNumber: number;
  plaintextSize: number;
  /** hex SHA-256 of the part's plaintext. */
  plaintextSha256: string;
  sealedSize: number;
  etag: string;
  /** base64 SHA-256 of the sealed bytes, as sent to the store. */
  checksumSha256: string | null;
  ackedAt: Date;
}

/** A stream with its volumes, as chain queries return it. */
export interface StreamWithVolumes extends StreamRow {
  volumes: VolumeRow[];
}

export interface InFlightUpload {
  streamId: string;
  dataset: string;
  streamState: StreamState;
  volumeIndex: number;
  key: string;
  uploadId: string;
  storageClass: string;
  startedAt: Date;
}

export interface EventRow {
  id: number;
  at: Date;
  kind: string;
  dataset: string | null;
  detail: unknown;
}

export interface BeginStreamInput {
  /** 32 hex chars (16 random bytes), as used in object keys and part contexts. */
  streamId: string;
  dataset: string;
  /** Base snapshot for an incremental; null for a full stream. */
  from: SnapshotRef | null;
  to: TargetSnapshot;
  volumeSize: number;
  partSize: number;
  startedAt?: Date;
  /** Optional opaque dataset id (keyed hash), stored on first sight of the dataset. */
  datasetOpaqueId?: string;
  /** The `zfs send` flags the stream is made with (see StreamRow.sendFlags); absent or null: unknown. */
  sendFlags?: readonly string[] | null;
}

export interface PartAckInput {
  streamId: string;
  volumeIndex: number;
  partNumber: number;
  plaintextSize: number;
  plaintextSha256: string;
  sealedSize: number;
  etag: string;
  checksumSha256?: string | null;
}

export interface VolumeCompletedInput {
  streamId: string;
  volumeIndex: number;
  storedSize: number;
  partCount: number;
  plaintextSize: number;
  plaintextSha256: string;
  /** The completed object's ETag as the store reported it (absent: the store reports none). */
  etag?: string | null;
  uploadedAt?: Date;
}

/** A complete stream as rebuild imports it (from a stream record + HEADs). */
export interface ImportStreamInput {
  streamId: string;
  dataset: string;
  from: { name: string; guid: bigint } | null;
  to: { name: string; guid: bigint; createtxg: bigint; creation: number };
  plaintextSize: number;
  storedSize: number;
  volumeSize: number;
  partSize: number;
  startedAt: Date;
  completedAt: Date;
  /** From the stream record; absent or null when the record does not say (written before flags were recorded). */
  sendFlags?: readonly string[] | null;
  volumes: {
    index: number;
    key: string;
    storageClass: string;
    storedSize: number;
    partCount: number;
    plaintextSize: number;
    plaintextSha256: string;
    /** From the stream record; absent in records written before zbk kept ETags. */
    etag?: string | null;
    uploadedAt: Date;
  }[];
}

/** A volume in the store as the cost model sees it (`Manifest.storedVolumes`). */
export interface StoredVolume {
  streamId: string;
  dataset: string;
  streamKind: StreamRow['kind'];
  key: string;
  storedSize: number;
  storageClass: string;
  uploadedAt: Date | null;
}

/** A volume that no kept snapshot needs: a deletion candidate. */
export interface UnneededObject {
  key: string;
  streamId: string;
  dataset: string;
  streamState: StreamState;
  storedSize: number | null;
  storageClass: string;
  /** When the object was created in the store (for minimum-storage-duration checks). */
  uploadedAt: Date | null;
}

/** Who found an object damaged. */
export type DamageSource = 'verify' | 'restore';

/**
 * What a damage record proves: `bad` (missing, or proven bad: restores skip
 * it) or `mismatch` (only the ETag or storage class differs, or the store no
 * longer reports an ETag, while size and sealed metadata are right: reported,
 * but restores try it and authentication decides). See schema V6.
 */
export type DamageKind = 'bad' | 'mismatch';

/**
 * An object the manifest relies on that `zbk verify` or a restore found
 * wrong (missing, replaced, failing authentication, …).
 */
export interface DamageRow {
  /** Object key: a volume (`data/…`) or a stream record (`streams/…`). */
  key: string;
  streamId: string;
  dataset: string;
  /** Short name of the snapshot the stream ends at. */
  snapshot: string;
  /** The volume's index, or null for a stream record. */
  volumeIndex: number | null;
  problem: string;
  foundBy: DamageSource;
  foundAt: Date;
  /** The ETag the store reported when the damage was found (null: missing or unknown). */
  etagSeen: string | null;
  kind: DamageKind;
}

export interface IntegrityReport {
  ok: boolean;
  problems: string[];
}
