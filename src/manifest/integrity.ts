/**
 * The manifest database as a whole: its integrity check (SQLite's and zbk's
 * invariants) and the compacted in-memory copy the mirror uploads.
 */
import Database from 'better-sqlite3';
import { volumeKey } from '../layout.js';
import { resolveChain } from './chain.js';
import type { ManifestDb } from './context.js';
import type { Datasets } from './datasets.js';
import { STREAM_FROM, volumeSetProblem } from './rows.js';
import type { Streams } from './streams.js';
import type { IntegrityReport, VolumeRow } from './types.js';

/** What the integrity check reads of a volume. */
type VolumeFacts = Pick<VolumeRow, 'volumeIndex' | 'key' | 'state' | 'plaintextSize' | 'storedSize'>;

export class Integrity {
  constructor(
    private readonly c: ManifestDb,
    private readonly streams: Streams,
    private readonly datasets: Datasets,
  ) {}

  /** SQLite integrity_check + foreign_key_check + zbk invariants. */
  integrityCheck(): IntegrityReport {
    const { db } = this.c;
    const problems: string[] = [];
    const ic = (db.pragma('integrity_check') as Record<string, unknown>[]).map((r) => String(Object.values(r)[0]));
    if (!(ic.length === 1 && ic[0] === 'ok')) problems.push(...ic.map((m) => `integrity_check: ${m}`));
    if (problems.length > 0) return { ok: false, problems };
    for (const fk of db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]) {
      problems.push(`foreign key: ${fk.table} row ${fk.rowid} references a missing ${fk.parent}`);
    }
    // The columns the checks read, not whole volume rows (55,000 of them at 50,000 streams).
    const volumesOf = new Map<string, VolumeFacts[]>();
    const facts = this.c.db
      .prepare('SELECT stream_id, volume_index, object_key, state, plaintext_size, stored_size FROM volumes ORDER BY stream_id, volume_index')
      .raw()
      .all() as [string, number, string, VolumeFacts['state'], number | null, number | null][];
    for (const [streamId, volumeIndex, key, state, plaintextSize, storedSize] of facts) {
      const v: VolumeFacts = { volumeIndex, key, state, plaintextSize, storedSize };
      const list = volumesOf.get(streamId);
      if (list) list.push(v);
      else volumesOf.set(streamId, [v]);
    }
    for (const s of this.streams.streams()) {
      const vols = volumesOf.get(s.streamId) ?? [];
      for (const v of vols) {
        if (v.key !== volumeKey(s.streamId, v.volumeIndex)) problems.push(`volume ${v.key} does not match stream ${s.streamId} index ${v.volumeIndex}`);
      }
      // Superseded streams may be partly deleted mid-consolidation: only complete ones must be whole.
      if (s.state === 'complete') {
        const problem = volumeSetProblem(vols, { plaintextSize: s.plaintextSize ?? -1, storedSize: s.storedSize ?? -1 });
        if (problem) problems.push(`stream ${s.streamId} (${s.dataset}, ${s.state}): ${problem}`);
      }
    }
    const strayParts = db
      .prepare(`SELECT count(*) AS n FROM upload_parts p JOIN volumes v USING (stream_id, volume_index) WHERE v.state != 'uploading'`)
      .get() as { n: number };
    if (strayParts.n > 0) problems.push(`${strayParts.n} part checkpoints belong to volumes that are not uploading`);
    const multi = db
      .prepare(`SELECT d.name, count(*) AS n FROM ${STREAM_FROM} WHERE s.state = 'uploading' GROUP BY d.name HAVING n > 1`)
      .all() as { name: string; n: number }[];
    for (const m of multi) problems.push(`${m.name} has ${m.n} uploading streams`);
    for (const ds of this.datasets.datasets()) {
      const last = this.streams.lastPushedSnapshot(ds.name);
      if (!last) continue;
      try {
        resolveChain(ds.name, this.streams.completeStreams(ds.name), last.guid);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    return { ok: problems.length === 0, problems };
  }

  /**
   * A compacted, self-contained copy of the database, as bytes: a consistent
   * snapshot of committed state, for the mirror. Made in memory (serialize,
   * VACUUM the in-memory copy, serialize again): the plaintext never lands in
   * a temp file, in /tmp or elsewhere.
   */
  compactedCopy(): Uint8Array {
    const image = this.c.db.serialize();
    // The image says WAL mode (header bytes 18–19 = 2), which an in-memory database cannot
    // open; mark it as a rollback-journal database (1, 1) as VACUUM INTO's output would be.
    image[18] = 1;
    image[19] = 1;
    const mem = new Database(image);
    try {
      // VACUUM builds its copy in temp storage: keep that in memory too.
      mem.pragma('temp_store = MEMORY');
      mem.exec('VACUUM');
      return new Uint8Array(mem.serialize());
    } finally {
      mem.close();
    }
  }
}
