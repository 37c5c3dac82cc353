/**
 * The manifest's generic key/value table (`kv`): JSON values that belong to
 * no other table (restore jobs, the mirror sequence, pending deletions, …).
 */
import type { ManifestDb } from './context.js';
import { jsonText } from './rows.js';

export class KeyValues {
  constructor(private readonly c: ManifestDb) {}

  /** Read a JSON value from the generic key/value table (later features: restore plans). */
  getValue(key: string): unknown {
    const r = this.c.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as unknown) : undefined;
  }

  /** Write (or with `undefined`, delete) a JSON value in the key/value table. */
  setValue(key: string, value: unknown): void {
    const { db } = this.c;
    db.transaction(() => {
      if (value === undefined) db.prepare('DELETE FROM kv WHERE key = ?').run(key);
      else {
        db.prepare('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at').run(
          key,
          jsonText(value),
          this.c.iso(),
        );
      }
    }).immediate();
  }
}
