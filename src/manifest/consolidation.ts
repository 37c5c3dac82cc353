/**
 * What consolidation and deletion record in the manifest: streams
 * superseded by a new chain, objects deleted from the store, and volumes a
 * listing of the store no longer shows (rebuild from an older mirror).
 */
import { ManifestError } from '../errors.js';
import { resolveChain } from './chain.js';
import type { ManifestDb } from './context.js';
import { SnapshotNotPushedError } from './errors.js';
import type { Events } from './events.js';
import type { Streams } from './streams.js';
import type { StreamRow } from './types.js';

export class Consolidation {
  constructor(
    private readonly c: ManifestDb,
    private readonly streams: Streams,
    private readonly events: Events,
  ) {}

  /**
   * Mark complete streams superseded (replaced by consolidation). Rolled back
   * with LAST_SNAPSHOT_UNRESTORABLE if afterwards the last pushed snapshot of
   * an affected dataset would no longer resolve to a chain.
   */
  markSuperseded(streamIds: readonly string[], at?: Date): void {
    const { db } = this.c;
    db.transaction(() => {
      const touched = new Set<string>();
      for (const id of streamIds) {
        const s = this.streams.requireStreamState(id, 'complete');
        db.prepare(`UPDATE streams SET state = 'superseded', superseded_at = ? WHERE stream_id = ?`).run(this.c.iso(at), id);
        touched.add(s.dataset);
      }
      for (const ds of touched) {
        const last = this.streams.lastPushedSnapshot(ds);
        try {
          if (!last) throw new SnapshotNotPushedError(ds);
          resolveChain(ds, this.streams.completeStreams(ds), last.guid);
        } catch (err) {
          throw new ManifestError(
            `refusing to supersede: ${ds} would have no restorable latest snapshot (${(err as Error).message})`,
            'LAST_SNAPSHOT_UNRESTORABLE',
          );
        }
      }
      this.events.insertEvent('streams-superseded', null, { streamIds: [...streamIds] });
    }).immediate();
  }

  /**
   * Objects were deleted from the store. A stream whose volumes are all gone
   * becomes `deleted`. Unknown keys are ignored.
   */
  markVolumesDeleted(keys: readonly string[], at?: Date): void {
    const when = this.c.iso(at);
    const { db } = this.c;
    db.transaction(() => {
      const streams = new Set<string>();
      for (const key of keys) {
        const v = db.prepare('SELECT stream_id FROM volumes WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
        if (!v) continue;
        db.prepare(`UPDATE volumes SET state = 'deleted', deleted_at = ?, upload_id = NULL WHERE object_key = ?`).run(when, key);
        streams.add(v.stream_id);
      }
      for (const id of streams) {
        const left = db.prepare(`SELECT count(*) AS n FROM volumes WHERE stream_id = ? AND state NOT IN ('deleted', 'aborted')`).get(id) as { n: number };
        if (left.n === 0) db.prepare(`UPDATE streams SET state = 'deleted' WHERE stream_id = ? AND state != 'uploading'`).run(id);
      }
      this.events.insertEvent('volumes-deleted', null, { count: keys.length });
    }).immediate();
  }

  /**
   * Reconcile with a listing of the store (manifest rebuild from a mirror
   * that may predate deletions): every complete volume of a complete,
   * superseded or abandoned stream whose object `stored` says is gone is
   * marked deleted; a stream left with no volumes becomes `deleted`, a
   * complete stream left partial becomes `superseded` (no longer whole, so
   * no longer a restore candidate). Uploading streams are left to push's
   * resume logic. Returns the volumes marked, by stream.
   */
  markMissingVolumes(stored: (key: string) => boolean, at?: Date): { streamId: string; dataset: string; key: string; streamState: StreamRow['state'] }[] {
    const when = this.c.iso(at);
    const { db } = this.c;
    const missing: { streamId: string; dataset: string; key: string; streamState: StreamRow['state'] }[] = [];
    db.transaction(() => {
      const rows = db
        .prepare(
          `SELECT v.object_key, v.stream_id, d.name AS dataset FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
           WHERE v.state = 'complete' AND s.state IN ('complete', 'superseded', 'abandoned') ORDER BY v.object_key`,
        )
        .all() as { object_key: string; stream_id: string; dataset: string }[];
      const gone = rows.filter((r) => !stored(r.object_key));
      const touched = new Set<string>();
      for (const r of gone) {
        db.prepare(`UPDATE volumes SET state = 'deleted', deleted_at = ?, upload_id = NULL WHERE object_key = ?`).run(when, r.object_key);
        touched.add(r.stream_id);
      }
      for (const id of touched) {
        const left = db.prepare(`SELECT count(*) AS n FROM volumes WHERE stream_id = ? AND state NOT IN ('deleted', 'aborted')`).get(id) as { n: number };
        if (left.n === 0) db.prepare(`UPDATE streams SET state = 'deleted' WHERE stream_id = ?`).run(id);
        else db.prepare(`UPDATE streams SET state = 'superseded', superseded_at = coalesce(superseded_at, ?) WHERE stream_id = ? AND state = 'complete'`).run(when, id);
      }
      for (const r of gone) missing.push({ streamId: r.stream_id, dataset: r.dataset, key: r.object_key, streamState: this.streams.stream(r.stream_id)!.state });
      if (gone.length > 0) this.events.insertEvent('volumes-missing', null, { count: gone.length, streams: touched.size });
    }).immediate();
    return missing;
  }
}
