/**
 * Reading streams and their volumes: one stream, a dataset's streams (all,
 * complete, in flight), volumes, the last pushed snapshot, the stream an
 * object key belongs to. Row mapping is in `./rows.ts`; which streams
 * restore a snapshot is `./restorable.ts`.
 */
import { ManifestError } from '../errors.js';
import { streamRecordKey } from '../layout.js';
import type { ManifestDb } from './context.js';
import { textToId, textToU64 } from './guid.js';
import { STREAM_COLUMNS, STREAM_FROM, type StreamDbRow, type VolumeDbRow, toStream, toVolume } from './rows.js';
import type { SnapshotRow, StreamRow, StreamWithVolumes, VolumeRow } from './types.js';

export class Streams {
  constructor(private readonly c: ManifestDb) {}

  /** One stream, or null. */
  stream(streamId: string): StreamRow | null {
    const r = this.c.db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE s.stream_id = ?`).get(streamId) as StreamDbRow | undefined;
    return r ? toStream(r) : null;
  }

  /** Streams in any state, of one dataset or all, in start order. */
  streams(dataset?: string): StreamRow[] {
    const { db } = this.c;
    const rows = (
      dataset === undefined
        ? db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} ORDER BY s.started_at, s.stream_id`).all()
        : db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? ORDER BY s.started_at, s.stream_id`).all(dataset)
    ) as StreamDbRow[];
    return rows.map(toStream);
  }

  /** The complete streams of `dataset`. */
  completeStreams(dataset: string): StreamRow[] {
    const rows = this.c.db
      .prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? AND s.state = 'complete'`)
      .all(dataset) as StreamDbRow[];
    return rows.map(toStream);
  }

  /** The dataset's uploading stream with its volumes (to resume), or null. */
  findInFlightStream(dataset: string): StreamWithVolumes | null {
    const r = this.c.db
      .prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? AND s.state = 'uploading'`)
      .get(dataset) as StreamDbRow | undefined;
    if (!r) return null;
    const s = toStream(r);
    return { ...s, volumes: this.volumes(s.streamId) };
  }

  /** The stream, which must be in `state`: UNKNOWN_STREAM or BAD_STATE otherwise. */
  requireStreamState(streamId: string, state: StreamRow['state']): StreamRow {
    const s = this.stream(streamId);
    if (!s) throw new ManifestError(`unknown stream ${streamId}`, 'UNKNOWN_STREAM');
    if (s.state !== state) throw new ManifestError(`stream ${streamId} is ${s.state}, not ${state}`, 'BAD_STATE');
    return s;
  }

  /** One volume, or null. */
  volume(streamId: string, index: number): VolumeRow | null {
    const r = this.c.db.prepare('SELECT * FROM volumes WHERE stream_id = ? AND volume_index = ?').get(streamId, index) as VolumeDbRow | undefined;
    return r ? toVolume(r) : null;
  }

  /** Volumes of a stream, by index. */
  volumes(streamId: string): VolumeRow[] {
    const rows = this.c.db.prepare('SELECT * FROM volumes WHERE stream_id = ? ORDER BY volume_index').all(streamId) as VolumeDbRow[];
    return rows.map(toVolume);
  }

  /**
   * The newest snapshot (highest createtxg) that a complete stream of
   * `dataset` ends at: the base for the next incremental. Null if none.
   */
  lastPushedSnapshot(dataset: string): SnapshotRow | null {
    // createtxg is decimal TEXT: order by length first to compare numerically.
    const r = this.c.db
      .prepare(
        `SELECT s.to_name, s.to_guid, s.to_createtxg, s.to_creation FROM ${STREAM_FROM}
         WHERE d.name = ? AND s.state = 'complete' ORDER BY length(s.to_createtxg) DESC, s.to_createtxg DESC LIMIT 1`,
      )
      .get(dataset) as { to_name: string; to_guid: string; to_createtxg: string; to_creation: number } | undefined;
    return r ? { dataset, name: r.to_name, guid: textToId(r.to_guid), createtxg: textToU64(r.to_createtxg), creation: r.to_creation } : null;
  }

  /** The stream an object key (a volume, or a stream record) belongs to, when the manifest knows it. */
  streamOfKey(key: string): string | null {
    const vol = this.c.db.prepare('SELECT stream_id FROM volumes WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
    if (vol) return vol.stream_id;
    const m = /^streams\/([0-9a-f]{32})\.zbks$/.exec(key);
    return m && key === streamRecordKey(m[1]!) && this.stream(m[1]!) ? m[1]! : null;
  }
}
