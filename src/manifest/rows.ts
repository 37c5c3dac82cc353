/**
 * The manifest's row ↔ object mapping and input validators, shared by the
 * concern modules next to it (streams.ts, uploads.ts, …). Pure: no
 * statements run here.
 *
 * Database rows use the column names of `./schema.ts`; the objects are the
 * types of `./types.ts` (64-bit values as `bigint` via `./guid.ts`, times as
 * `Date`).
 */
import { ManifestError } from '../errors.js';
import { textToId, textToU64 } from './guid.js';
import type { StreamRow, VolumeRow } from './types.js';

export interface StreamDbRow {
  stream_id: string;
  dataset: string;
  kind: 'full' | 'incremental';
  from_guid: string | null;
  from_name: string | null;
  to_guid: string;
  to_name: string;
  to_createtxg: string;
  to_creation: number;
  plaintext_size: number | null;
  stored_size: number | null;
  state: StreamRow['state'];
  volume_size: number;
  part_size: number;
  started_at: string;
  completed_at: string | null;
  superseded_at: string | null;
  abandoned_at: string | null;
  abandon_reason: string | null;
  send_flags: string | null;
}

export interface VolumeDbRow {
  stream_id: string;
  volume_index: number;
  object_key: string;
  state: VolumeRow['state'];
  upload_id: string | null;
  storage_class: string;
  stored_size: number | null;
  part_count: number | null;
  plaintext_size: number | null;
  plaintext_sha256: string | null;
  etag: string | null;
  started_at: string;
  uploaded_at: string | null;
  deleted_at: string | null;
}

/** The columns of a `StreamDbRow`, selected `FROM ${STREAM_FROM}`. */
export const STREAM_COLUMNS = `s.stream_id, d.name AS dataset, s.kind, s.from_guid, s.from_name, s.to_guid, s.to_name,
  s.to_createtxg, s.to_creation, s.plaintext_size, s.stored_size, s.state, s.volume_size, s.part_size,
  s.started_at, s.completed_at, s.superseded_at, s.abandoned_at, s.abandon_reason, s.send_flags`;
export const STREAM_FROM = `streams s JOIN datasets d ON d.id = s.dataset_id`;

const HEX32 = /^[0-9a-f]{32}$/;
export const HEX64 = /^[0-9a-f]{64}$/;
/** One send option as recorded: `zfs send -w`, `btrfs send --proto=2` (long spellings, with a simple value). */
const SEND_FLAG = /^--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9.-]+)?$/;

/** A stored ISO timestamp as a Date (null stays null). */
export function d(s: string): Date;
export function d(s: string | null): Date | null;
export function d(s: string | null): Date | null {
  return s === null ? null : new Date(s);
}

export function toStream(r: StreamDbRow): StreamRow {
  return {
    streamId: r.stream_id,
    dataset: r.dataset,
    kind: r.kind,
    from: r.from_guid === null ? null : { name: r.from_name!, guid: textToId(r.from_guid, 'from guid') },
    to: { name: r.to_name, guid: textToId(r.to_guid, 'to guid'), createtxg: textToU64(r.to_createtxg, 'createtxg'), creation: r.to_creation },
    plaintextSize: r.plaintext_size,
    storedSize: r.stored_size,
    state: r.state,
    volumeSize: r.volume_size,
    partSize: r.part_size,
    startedAt: d(r.started_at),
    completedAt: d(r.completed_at),
    supersededAt: d(r.superseded_at),
    abandonedAt: d(r.abandoned_at),
    abandonReason: r.abandon_reason,
    sendFlags: r.send_flags === null ? null : sendFlagsFromText(r.send_flags, r.stream_id),
  };
}

function sendFlagsFromText(text: string, streamId: string): string[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string' && SEND_FLAG.test(f))) {
    throw new ManifestError(`stream ${streamId} records send flags that are not a list of send options: ${text}`, 'MANIFEST_CORRUPT');
  }
  return v as string[];
}

/** The JSON text of a flag list for the send_flags column (null stays null). */
export function sendFlagsText(flags: readonly string[] | null | undefined): string | null {
  if (flags === null || flags === undefined) return null;
  if (!flags.every((f) => typeof f === 'string' && SEND_FLAG.test(f))) {
    throw new ManifestError(`send flags must be send options like "-w" or "--proto=2", got ${JSON.stringify(flags)}`, 'BAD_INPUT');
  }
  return JSON.stringify(flags);
}

export function toVolume(r: VolumeDbRow): VolumeRow {
  return {
    streamId: r.stream_id,
    volumeIndex: r.volume_index,
    key: r.object_key,
    state: r.state,
    uploadId: r.upload_id,
    storageClass: r.storage_class,
    storedSize: r.stored_size,
    partCount: r.part_count,
    plaintextSize: r.plaintext_size,
    plaintextSha256: r.plaintext_sha256,
    etag: r.etag ?? null,
    startedAt: d(r.started_at),
    uploadedAt: d(r.uploaded_at),
    deletedAt: d(r.deleted_at),
  };
}

export function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ManifestError(`${what} must be a non-negative safe integer, got ${n}`, 'BAD_INPUT');
}

export function checkStreamId(id: string): void {
  if (!HEX32.test(id)) throw new ManifestError(`stream id must be 32 lower-case hex chars, got ${JSON.stringify(id)}`, 'BAD_INPUT');
}

/** An ETag as stored: without quotes, null when absent or empty. */
export function etagText(etag: string | null | undefined): string | null {
  if (etag === null || etag === undefined) return null;
  const t = etag.replace(/"/g, '');
  return t === '' ? null : t;
}

/** JSON with bigints (guids) as decimal strings. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Why a stream's volumes do not form a complete set for `totals`, or null. */
export function volumeSetProblem(
  vols: readonly Pick<VolumeRow, 'volumeIndex' | 'state' | 'plaintextSize' | 'storedSize'>[],
  totals: { plaintextSize: number; storedSize: number },
): string | null {
  if (vols.length === 0) return 'it has no volumes';
  let plain = 0;
  let stored = 0;
  for (let i = 0; i < vols.length; i++) {
    const v = vols[i]!;
    if (v.volumeIndex !== i) return `volume ${i} is missing`;
    if (v.state !== 'complete') return `volume ${i} is ${v.state}`;
    plain += v.plaintextSize ?? 0;
    stored += v.storedSize ?? 0;
  }
  if (plain !== totals.plaintextSize) return `volumes hold ${plain} plaintext bytes, the stream ${totals.plaintextSize}`;
  if (stored !== totals.storedSize) return `volumes hold ${stored} stored bytes, the stream ${totals.storedSize}`;
  return null;
}
