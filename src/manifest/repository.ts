/**
 * The manifest's `repository` row: which store and key this manifest
 * belongs to.
 */
import { ManifestError } from '../errors.js';
import type { ManifestDb } from './context.js';
import { d } from './rows.js';
import type { RepositoryRow } from './types.js';

export class Repository {
  constructor(private readonly c: ManifestDb) {}

  /**
   * Record which store and key this manifest belongs to. Idempotent for the
   * same values; REPOSITORY_MISMATCH if it already records different ones.
   */
  initRepository(input: { storeUrl: string; keyId: string; createdAt?: Date }): RepositoryRow {
    const { db } = this.c;
    db.transaction(() => {
      const cur = this.repository();
      if (cur) {
        if (cur.storeUrl !== input.storeUrl || cur.keyId !== input.keyId) {
          throw new ManifestError(
            `this manifest belongs to ${cur.storeUrl} (key ${cur.keyId}), not ${input.storeUrl} (key ${input.keyId})`,
            'REPOSITORY_MISMATCH',
          );
        }
        return;
      }
      db
        .prepare('INSERT INTO repository (id, store_url, key_id, created_at) VALUES (1, ?, ?, ?)')
        .run(input.storeUrl, input.keyId, this.c.iso(input.createdAt));
    }).immediate();
    return this.repository()!;
  }

  /**
   * Record that the repository (same key) now lives at `storeUrl`: a bucket
   * copied or moved elsewhere (`cp -r` of a file:// store, `aws s3 sync`,
   * another endpoint). The key id is the repository's identity, not its URL.
   */
  relocateRepository(storeUrl: string, keyId: string): void {
    const cur = this.repository();
    if (!cur || cur.keyId !== keyId) throw new ManifestError(`cannot relocate: this manifest belongs to key ${cur?.keyId ?? '(none)'}, not ${keyId}`, 'REPOSITORY_MISMATCH');
    this.c.db.prepare('UPDATE repository SET store_url = ? WHERE id = 1').run(storeUrl);
  }

  /** The repository this manifest belongs to, or null before `initRepository`. */
  repository(): RepositoryRow | null {
    const r = this.c.db.prepare('SELECT store_url, key_id, created_at FROM repository WHERE id = 1').get() as
      | { store_url: string; key_id: string; created_at: string }
      | undefined;
    return r ? { storeUrl: r.store_url, keyId: r.key_id, createdAt: d(r.created_at) } : null;
  }
}
