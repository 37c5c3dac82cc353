/**
 * The manifest's `datasets` and `snapshots` tables: the datasets it knows,
 * and the snapshots at the ends of their complete streams.
 */
import { ManifestError } from '../errors.js';
import type { ManifestDb } from './context.js';
import { idToText, textToId, textToU64, u64ToText } from './guid.js';
import { d } from './rows.js';
import type { DatasetRow, SnapshotRow, StreamRow } from './types.js';

export class Datasets {
  constructor(private readonly c: ManifestDb) {}

  datasetId(name: string): number | null {
    const r = this.c.db.prepare('SELECT id FROM datasets WHERE name = ?').get(name) as { id: number } | undefined;
    return r ? r.id : null;
  }

  /** The dataset's id, recording the dataset when new. Must run inside a transaction. */
  ensureDataset(name: string, opaqueId?: string): number {
    if (!name) throw new ManifestError('dataset name is empty', 'BAD_INPUT');
    const { db } = this.c;
    const id = this.datasetId(name);
    if (id !== null) {
      if (opaqueId) db.prepare('UPDATE datasets SET opaque_id = ? WHERE id = ? AND opaque_id IS NULL').run(opaqueId, id);
      return id;
    }
    const res = db.prepare('INSERT INTO datasets (name, opaque_id, created_at) VALUES (?, ?, ?)').run(name, opaqueId ?? null, this.c.iso());
    return Number(res.lastInsertRowid);
  }

  /** Every dataset the manifest knows, by name. */
  datasets(): DatasetRow[] {
    const rows = this.c.db.prepare('SELECT name, opaque_id, created_at FROM datasets ORDER BY name').all() as {
      name: string;
      opaque_id: string | null;
      created_at: string;
    }[];
    return rows.map((r) => ({ name: r.name, opaqueId: r.opaque_id, createdAt: d(r.created_at) }));
  }

  /** Snapshots recorded for `dataset` (ends of complete streams and their bases), oldest first when createtxg is known. */
  snapshots(dataset: string): SnapshotRow[] {
    const rows = this.c.db
      .prepare(
        `SELECT sn.name, sn.guid, sn.createtxg, sn.creation FROM snapshots sn JOIN datasets d ON d.id = sn.dataset_id
         WHERE d.name = ? ORDER BY sn.createtxg IS NULL, length(sn.createtxg), sn.createtxg, sn.name`,
      )
      .all(dataset) as { name: string; guid: string; createtxg: string | null; creation: number | null }[];
    return rows
      .filter((r) => r.createtxg !== null)
      .map((r) => ({ dataset, name: r.name, guid: textToId(r.guid), createtxg: textToU64(r.createtxg!), creation: r.creation ?? 0 }));
  }

  /** Record the snapshots at both ends of a stream. Must run inside a transaction. */
  upsertSnapshots(s: StreamRow): void {
    const { db } = this.c;
    const dsId = this.datasetId(s.dataset)!;
    db.prepare(
      `INSERT INTO snapshots (dataset_id, name, guid, createtxg, creation) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (dataset_id, guid) DO UPDATE SET name = excluded.name, createtxg = excluded.createtxg, creation = excluded.creation`,
    ).run(dsId, s.to.name, idToText(s.to.guid), u64ToText(s.to.createtxg), s.to.creation);
    if (s.from) {
      db.prepare(`INSERT INTO snapshots (dataset_id, name, guid) VALUES (?, ?, ?) ON CONFLICT (dataset_id, guid) DO NOTHING`).run(
        dsId,
        s.from.name,
        idToText(s.from.guid),
      );
    }
  }
}
