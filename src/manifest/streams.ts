/**
 * Reading streams and their volumes: one stream, a dataset's streams (all,
 * complete, in flight), volumes, the last pushed snapshot, the stream an
 * object key belongs to. Row mapping is in `./rows.ts`; which streams
 * restore a snapshot is `./restorable.ts`.
 */
import type Database from 'better-sqlite3';
import { ManifestError } from '../errors.js';
import { streamRecordKey } from '../layout.js';
import type { ManifestDb } from './context.js';
import { textToId, textToU64 } from './guid.js';
import { STREAM_COLUMNS, STREAM_FROM, type StreamDbRow, type VolumeDbRow, d, toStream, toVolume } from './rows.js';
import type { SnapshotRow, StoredVolume, StreamRow, StreamWithVolumes, VolumeRow } from './types.js';

/** `column IN (?, ?, …)` for `states` (at least one: an empty list matches nothing). */
function stateIn(column: string, states: readonly string[]): string {
  return states.length === 0 ? '0' : `${column} IN (${states.map(() => '?').join(', ')})`;
}

export class Streams {
  /** Statements run once per stream or volume (tens of thousands of times in a long-lived repository), prepared once. */
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(private readonly c: ManifestDb) {}

  private prepared(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.c.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  /** One stream, or null. */
  stream(streamId: string): StreamRow | null {
    const r = this.prepared(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE s.stream_id = ?`).get(streamId) as StreamDbRow | undefined;
    return r ? toStream(r) : null;
  }

  /**
   * Streams of one dataset or all, in start order; only those in `states`
   * when given (the query reads only those rows: a long-lived repository's
   * streams are mostly `deleted`, which most callers skip anyway).
   */
  streams(dataset?: string, states?: readonly StreamRow['state'][]): StreamRow[] {
    const where = [...(dataset === undefined ? [] : ['d.name = ?']), ...(states === undefined ? [] : [stateIn('s.state', states)])];
    const sql = `SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY s.started_at, s.stream_id`;
    const rows = this.prepared(sql).all(...(dataset === undefined ? [] : [dataset]), ...(states ?? [])) as StreamDbRow[];
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
    const r = this.prepared('SELECT * FROM volumes WHERE stream_id = ? AND volume_index = ?').get(streamId, index) as VolumeDbRow | undefined;
    return r ? toVolume(r) : null;
  }

  /** Volumes of a stream, by index. */
  volumes(streamId: string): VolumeRow[] {
    const rows = this.prepared('SELECT * FROM volumes WHERE stream_id = ? ORDER BY volume_index').all(streamId) as VolumeDbRow[];
    return rows.map(toVolume);
  }

  /**
   * The volumes of every stream (of `dataset`, or all; of streams in
   * `streamStates`, when given), by stream id, each list by index: one
   * query, for callers that would otherwise ask `volumes` once per stream.
   * Streams without volumes are absent.
   */
  volumesByStream(dataset?: string, streamStates?: readonly StreamRow['state'][]): Map<string, VolumeRow[]> {
    const where = [...(dataset === undefined ? [] : ['d.name = ?']), ...(streamStates === undefined ? [] : [stateIn('s.state', streamStates)])];
    const sql =
      where.length === 0
        ? 'SELECT v.* FROM volumes v ORDER BY v.stream_id, v.volume_index'
        : `SELECT v.* FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
           WHERE ${where.join(' AND ')} ORDER BY v.stream_id, v.volume_index`;
    const rows = this.prepared(sql).all(...(dataset === undefined ? [] : [dataset]), ...(streamStates ?? [])) as VolumeDbRow[];
    const out = new Map<string, VolumeRow[]>();
    for (const r of rows) {
      const v = toVolume(r);
      const list = out.get(v.streamId);
      if (list) list.push(v);
      else out.set(v.streamId, [v]);
    }
    return out;
  }

  /**
   * The complete volumes with a known stored size of the streams in
   * `streamStates` (of `dataset`, or all), in stream start order, then by
   * index: what is billed. One query of the few columns the cost model
   * reads, not whole stream and volume rows.
   */
  storedVolumes(dataset: string | undefined, streamStates: readonly StreamRow['state'][]): StoredVolume[] {
    const where = ["v.state = 'complete'", 'v.stored_size IS NOT NULL', stateIn('s.state', streamStates), ...(dataset === undefined ? [] : ['d.name = ?'])];
    const rows = this.prepared(
      `SELECT v.stream_id, d.name, s.kind, v.object_key, v.stored_size, v.storage_class, v.uploaded_at
       FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
       WHERE ${where.join(' AND ')} ORDER BY s.started_at, s.stream_id, v.volume_index`,
    )
      .raw()
      .all(...streamStates, ...(dataset === undefined ? [] : [dataset])) as [string, string, StreamRow['kind'], string, number, string, string | null][];
    return rows.map(([streamId, ds, kind, key, storedSize, storageClass, uploadedAt]) => ({
      streamId, dataset: ds, streamKind: kind, key, storedSize, storageClass, uploadedAt: d(uploadedAt),
    }));
  }

  /**
   * Ids of the streams of `dataset` in `state` whose volumes are all
   * complete (and that have at least one): wholly in the store. One query.
   */
  wholeStreamIds(dataset: string, state: StreamRow['state']): Set<string> {
    const rows = this.prepared(
      `SELECT v.stream_id FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
       WHERE d.name = ? AND s.state = ? GROUP BY v.stream_id HAVING sum(v.state <> 'complete') = 0`,
    ).all(dataset, state) as { stream_id: string }[];
    return new Set(rows.map((r) => r.stream_id));
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
