/**
 * Damage the manifest records (`damage`): objects that `zbk verify` or a
 * restore found missing, replaced or failing authentication. Restore chains
 * (`./restorable.ts`) avoid streams with a volume proven bad;
 * src/services/chain-health.ts reports the rest.
 */
import { ManifestError } from '../errors.js';
import type { ManifestDb } from './context.js';
import type { Events } from './events.js';
import { d } from './rows.js';
import type { Streams } from './streams.js';
import type { DamageKind, DamageRow, DamageSource, StreamRow, VolumeRow } from './types.js';

export class Damage {
  constructor(
    private readonly c: ManifestDb,
    private readonly streams: Streams,
    private readonly events: Events,
  ) {}

  /**
   * Record that the object at `key` (a volume or a stream record the manifest
   * knows) is damaged: missing, replaced, failing authentication. Replaces an
   * earlier record of the same key. BAD_INPUT for a key the manifest does not know.
   */
  recordDamage(input: { key: string; problem: string; foundBy: DamageSource; etagSeen?: string | null; kind?: DamageKind; at?: Date }): void {
    const { db } = this.c;
    const streamId = this.streams.streamOfKey(input.key);
    if (!streamId) throw new ManifestError(`${input.key} is not an object of a stream this manifest knows`, 'BAD_INPUT');
    db.transaction(() => {
      const prev = db.prepare('SELECT problem, found_by FROM damage WHERE object_key = ?').get(input.key) as { problem: string; found_by: string } | undefined;
      db.prepare(
        `INSERT INTO damage (object_key, stream_id, problem, found_by, found_at, etag_seen, kind) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (object_key) DO UPDATE SET problem = excluded.problem, found_by = excluded.found_by,
           found_at = excluded.found_at, etag_seen = excluded.etag_seen, kind = excluded.kind`,
      ).run(input.key, streamId, input.problem, input.foundBy, this.c.iso(input.at), input.etagSeen ?? null, input.kind ?? 'bad');
      if (prev?.problem !== input.problem || prev.found_by !== input.foundBy) {
        const s = this.streams.stream(streamId)!;
        this.events.insertEvent('object-damaged', s.dataset, { key: input.key, problem: input.problem, foundBy: input.foundBy });
      }
    }).immediate();
  }

  /** Forget the damage recorded for `key` (it was found intact again). True when there was a record. */
  clearDamage(key: string): boolean {
    const { db } = this.c;
    return db.transaction((): boolean => {
      const row = db.prepare('SELECT stream_id FROM damage WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
      if (!row) return false;
      db.prepare('DELETE FROM damage WHERE object_key = ?').run(key);
      this.events.insertEvent('object-damage-cleared', this.streams.stream(row.stream_id)?.dataset ?? null, { key });
      return true;
    }).immediate();
  }

  /**
   * Damage recorded for objects still in the store as far as the manifest
   * knows (volumes not deleted or aborted, stream records of streams not
   * deleted), of `dataset` or all, by key.
   */
  damagedObjects(dataset?: string): DamageRow[] {
    const rows = this.c.db
      .prepare(
        `SELECT g.object_key, g.stream_id, d.name AS dataset, s.to_name, s.state AS stream_state, v.volume_index, v.state AS volume_state,
                g.problem, g.found_by, g.found_at, g.etag_seen, g.kind
         FROM damage g JOIN streams s ON s.stream_id = g.stream_id JOIN datasets d ON d.id = s.dataset_id
         LEFT JOIN volumes v ON v.object_key = g.object_key
         WHERE (? IS NULL OR d.name = ?) ORDER BY g.object_key`,
      )
      .all(dataset ?? null, dataset ?? null) as {
      object_key: string;
      stream_id: string;
      dataset: string;
      to_name: string;
      stream_state: StreamRow['state'];
      volume_index: number | null;
      volume_state: VolumeRow['state'] | null;
      problem: string;
      found_by: DamageSource;
      found_at: string;
      etag_seen: string | null;
      kind: DamageKind;
    }[];
    return rows
      .filter((r) => (r.volume_index !== null ? r.volume_state === 'complete' : r.stream_state !== 'deleted'))
      .map((r) => ({
        key: r.object_key,
        streamId: r.stream_id,
        dataset: r.dataset,
        snapshot: r.to_name,
        volumeIndex: r.volume_index,
        problem: r.problem,
        foundBy: r.found_by,
        foundAt: d(r.found_at),
        etagSeen: r.etag_seen,
        kind: r.kind,
      }));
  }

  /**
   * Damaged volumes of `dataset` (stream records left out: they do not stop
   * a restore from this manifest). Any such volume in a snapshot's chain
   * makes the snapshot unrestorable through that chain; `zbk check` goes
   * CRITICAL on them via `chainHealth` (src/services/chain-health.ts).
   */
  damagedVolumes(dataset: string): DamageRow[] {
    return this.damagedObjects(dataset).filter((o) => o.volumeIndex !== null);
  }

  /**
   * Streams of `dataset` with a volume missing or proven bad (kind `bad`):
   * the ones restore chains avoid. A `mismatch` (ETag or class differs, size
   * and sealed metadata right) does not count here: a restore tries it and
   * authentication decides; `chainHealth` still reports it.
   */
  damagedStreamIds(dataset: string): Set<string> {
    return new Set(this.damagedVolumes(dataset).filter((o) => o.kind === 'bad').map((o) => o.streamId));
  }
}
