/** In-memory model of buckets, objects, uploads and parts (persisted by `persist.ts`). */

/**
 * Where a body lives: a Buffer (in-memory mode), a file (persistDir mode),
 * or, for a completed multipart object, `pieces`: its parts' blobs end to
 * end (completing does not copy them, as S3 does not read them again
 * either). Exactly one is set.
 */
export interface BlobRef {
  mem?: Buffer;
  file?: string;
  pieces?: BlobRef[];
  size: number;
}

/** A restore request and its outcome, times in clock epoch ms. */
export interface RestoreInfo {
  requestedAt: number;
  /** When the temporary copy becomes readable (requestedAt + restoreDelayMs). */
  completesAt: number;
  /** When the temporary copy disappears (midnight UTC). */
  expiresAt: number;
  days: number;
  tier: string;
}

export interface StoredObject {
  key: string;
  size: number;
  /** Quoted, as sent in headers. */
  etag: string;
  lastModified: number;
  storageClass: string;
  metadata: Record<string, string>;
  contentType?: string;
  /** Full-object (or composite, with "-N") checksums, base64, by algorithm. */
  checksums: Record<string, string>;
  /** The multipart upload that produced this object, so a retried Complete answers 200. */
  uploadId?: string;
  partsCount?: number;
  restore?: RestoreInfo;
  blob: BlobRef;
}

export interface StoredPart {
  partNumber: number;
  size: number;
  /** Quoted hex MD5. */
  etag: string;
  lastModified: number;
  checksums: Record<string, string>;
  blob: BlobRef;
}

export interface Upload {
  uploadId: string;
  key: string;
  initiated: number;
  storageClass: string;
  metadata: Record<string, string>;
  contentType?: string;
  checksumAlgorithm?: string;
  parts: Map<number, StoredPart>;
}

export interface Bucket {
  name: string;
  created: number;
  /** Raw LifecycleConfiguration XML as last put. */
  lifecycle?: string;
  objects: Map<string, StoredObject>;
  uploads: Map<string, Upload>;
}

export type RestorePhase = 'none' | 'ongoing' | 'restored';

/** Restore phase of an object at clock time `now`. */
export function restorePhase(obj: StoredObject, now: number): RestorePhase {
  const r = obj.restore;
  if (!r) return 'none';
  if (now < r.completesAt) return 'ongoing';
  if (now < r.expiresAt) return 'restored';
  return 'none';
}

const DAY_MS = 86_400_000;

/** `t + days`, rounded up to the next midnight UTC (exact midnights stay). */
export function restoreExpiry(t: number, days: number): number {
  const raw = t + days * DAY_MS;
  return Math.ceil(raw / DAY_MS) * DAY_MS;
}
