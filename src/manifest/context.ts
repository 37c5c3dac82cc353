/**
 * What the manifest's concern modules (streams.ts, uploads.ts, …) share:
 * the one open database handle and the manifest's clock. `Manifest`
 * (`./manifest.ts`) makes it once per open database and hands it to each.
 */
import type Database from 'better-sqlite3';

export interface ManifestDb {
  readonly db: Database.Database;
  /** `at`, or the manifest's clock now, as the ISO text the tables store. */
  iso(at?: Date): string;
}
