/**
 * Where things live in the store, and the small records zbk writes there.
 * Pure: no I/O. Object keys never contain dataset or snapshot names; stream
 * ids are random, so the store learns only sizes and timing.
 *
 *   zbk.key                          key file (JSON), metadata class
 *   zbk.key.next                     a new key file, confirmed before it replaces zbk.key
 *   zbk.key.prev                     written by older zbk (the previous passphrase); deleted by key passwd
 *   zbk.key.replaced-<time>          a key file replaced by init --force or key import
 *   zbk.lease                        writer lease (sealed), metadata class
 *   manifest/s<seq>-<time>-<rand>.zbkm  sealed manifest mirror, metadata class
 *   streams/<streamId>.zbks          sealed stream record, metadata class
 *   data/<streamId>/<volume>.zbkv    volume (sealed parts), data class;
 *                                    user metadata `zbk-meta` = sealed VolumeMetadata
 */

export const KEY_FILE_KEY = 'zbk.key';
/** Where a key file that was replaced (init --force, key import over a damaged one) is kept. */
export function replacedKeyFileKey(at: Date): string {
  return `${KEY_FILE_KEY}.replaced-${at.toISOString().replace(/[-:.]/g, '')}`;
}
/** The writer lease (sealed blob `zbk-lease-v1`): which machine may write the repository now. */
export const LEASE_KEY = 'zbk.lease';
export const MANIFEST_PREFIX = 'manifest/';
export const STREAMS_PREFIX = 'streams/';
export const DATA_PREFIX = 'data/';
/** S3 user-metadata name that carries the sealed VolumeMetadata of a volume. */
export const VOLUME_META_HEADER = 'zbk-meta';

/** Blob kinds bound into sealed blobs' associated data. */
export const BLOB_MANIFEST = 'zbk-manifest-v1';
export const BLOB_STREAM_RECORD = 'zbk-stream-v1';
export const BLOB_LEASE = 'zbk-lease-v1';

export function volumeKey(streamIdHex: string, volumeIndex: number): string {
  return `${DATA_PREFIX}${streamIdHex}/${String(volumeIndex).padStart(6, '0')}.zbkv`;
}

export function streamRecordKey(streamIdHex: string): string {
  return `${STREAMS_PREFIX}${streamIdHex}.zbks`;
}

/** Parse `data/<streamId>/<volume>.zbkv`; null for anything else. */
export function parseVolumeKey(key: string): { streamId: string; volumeIndex: number } | null {
  const m = /^data\/([0-9a-f]{32})\/(\d{6})\.zbkv$/.exec(key);
  return m ? { streamId: m[1]!, volumeIndex: Number(m[2]) } : null;
}

/**
 * Mirror keys: `manifest/s<seq>-<time>-<rand>.zbkm`, the sequence number as 12
 * digits (so keys sort by it), the write time in ISO basic format, a random
 * suffix. The name's sequence is only a claim: the mirror seals its own
 * sequence and key inside (docs/FORMAT.md §14), and readers trust that.
 */
export function manifestMirrorKey(seq: number, at: Date, randomHex: string): string {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_MIRROR_SEQ) throw new RangeError(`mirror sequence out of range: ${seq}`);
  return `${MANIFEST_PREFIX}s${String(seq).padStart(12, '0')}-${isoBasic(at)}-${randomHex}.zbkm`;
}
export const MAX_MIRROR_SEQ = 999_999_999_999;

/** Keys of mirrors written before sequence numbers (`manifest/<time>-<rand>.zbkm`): still read, as sequence 0. */
export function legacyManifestMirrorKey(at: Date, randomHex: string): string {
  return `${MANIFEST_PREFIX}${isoBasic(at)}-${randomHex}.zbkm`;
}

/** The sequence a mirror key claims (0 for a legacy key), or null for anything else. */
export function parseMirrorKey(key: string): { seq: number } | null {
  const m = /^manifest\/(?:s(\d{12})-)?\d{8}T\d{6}Z-[0-9a-f]+\.zbkm$/.exec(key);
  return m ? { seq: m[1] === undefined ? 0 : Number(m[1]) } : null;
}

function isoBasic(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** One volume as the stream record lists it. Sizes are exact byte counts. */
export interface VolumeRecord {
  index: number;
  key: string;
  plaintextSize: number;
  /** hex SHA-256 of the volume's plaintext. */
  plaintextSha256: string;
  /** Object size in the store (sealed). */
  storedSize: number;
  partCount: number;
  /** Plaintext bytes per part (all but the last part of the volume). */
  partSize: number;
  /**
   * The object's ETag (without quotes) as the store reported it after the
   * upload completed, when it reported one. Absent in records written before
   * zbk kept it. `zbk verify` compares it with what the store reports now.
   */
  etag?: string;
}

/**
 * Written (sealed, metadata class) after every volume of a stream is
 * confirmed by the store and before the manifest records the stream: its
 * presence means "this stream is complete". Rebuild reads these.
 */
export interface StreamRecord {
  v: 1;
  /** 32 hex chars. */
  streamId: string;
  dataset: string;
  from: { name: string; guid: string } | null;
  to: { name: string; guid: string; createtxg: string; creation: number };
  plaintextSize: number;
  storedSize: number;
  volumes: VolumeRecord[];
  startedAt: string;
  completedAt: string;
  /**
   * The `zfs send` flags the stream was made with, in argument order
   * (`-i <base>` not included), e.g. `["-w", "-c", "-L", "-e"]`. Absent in
   * records written before zbk recorded them (then unknown: `-c -L -e` where
   * that ZFS supported them, never `-w`). Version-1 readers that do not know
   * the field ignore it.
   */
  sendFlags?: string[];
  /**
   * The snapshot source, absent for ZFS: `"btrfs"` for a stream of `btrfs
   * send` (then `dataset` is the subvolume's absolute path, `guid`s are the
   * UUIDs of zbk's pins as 128-bit decimals, `createtxg` the snapshot's
   * otransid, and `sendFlags` btrfs's). Version-1 readers ignore it; zbk
   * also tells the source by the dataset name (a path starts with `/`).
   */
  source?: 'btrfs';
}
