/**
 * Manifest schema and its forward-only migrations.
 *
 * The schema version lives in SQLite's `user_version`. `MIGRATIONS[i]` takes
 * a database from version `i` to `i + 1`; a fresh database runs them all.
 * Migrations are append-only: never edit one that has shipped, add a new one.
 *
 * Conventions the queries rely on:
 * - ZFS guids and createtxg are 64-bit unsigned: stored as TEXT holding the
 *   canonical decimal form (no sign, no leading zeros), never as INTEGER, so
 *   no layer can round them through a JS number.
 * - Times are ISO-8601 UTC strings (`Date#toISOString`), which sort correctly.
 * - Byte counts are INTEGER (exact below 2^53).
 */
import type Database from 'better-sqlite3';
import { ManifestError } from '../errors.js';

/** One migration step; runs inside the caller's transaction. */
export type Migration = (db: Database.Database) => void;

const V1_CORE = `
CREATE TABLE repository (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  store_url   TEXT NOT NULL,
  key_id      TEXT NOT NULL,
  created_at  TEXT NOT NULL
);

CREATE TABLE datasets (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  opaque_id   TEXT UNIQUE,
  created_at  TEXT NOT NULL
);

CREATE TABLE snapshots (
  id          INTEGER PRIMARY KEY,
  dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
  name        TEXT NOT NULL,
  guid        TEXT NOT NULL CHECK (guid GLOB '[0-9]*' AND guid NOT GLOB '*[^0-9]*'),
  createtxg   TEXT CHECK (createtxg IS NULL OR (createtxg GLOB '[0-9]*' AND createtxg NOT GLOB '*[^0-9]*')),
  creation    INTEGER,
  UNIQUE (dataset_id, guid)
);

CREATE TABLE streams (
  stream_id        TEXT PRIMARY KEY CHECK (length(stream_id) = 32 AND stream_id NOT GLOB '*[^0-9a-f]*'),
  dataset_id       INTEGER NOT NULL REFERENCES datasets(id),
  kind             TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
  from_guid        TEXT,
  from_name        TEXT,
  to_guid          TEXT NOT NULL,
  to_name          TEXT NOT NULL,
  to_createtxg     TEXT NOT NULL,
  to_creation      INTEGER NOT NULL,
  plaintext_size   INTEGER,
  stored_size      INTEGER,
  state            TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'superseded', 'deleted', 'abandoned')),
  volume_size      INTEGER NOT NULL,
  part_size        INTEGER NOT NULL,
  started_at       TEXT NOT NULL,
  completed_at     TEXT,
  superseded_at    TEXT,
  abandoned_at     TEXT,
  abandon_reason   TEXT,
  CHECK ((kind = 'full') = (from_guid IS NULL)),
  CHECK ((from_guid IS NULL) = (from_name IS NULL))
);
CREATE INDEX streams_dataset ON streams(dataset_id, state);
CREATE INDEX streams_to ON streams(dataset_id, to_guid);

CREATE TABLE volumes (
  stream_id         TEXT NOT NULL REFERENCES streams(stream_id) ON DELETE CASCADE,
  volume_index      INTEGER NOT NULL CHECK (volume_index >= 0),
  object_key        TEXT NOT NULL UNIQUE,
  state             TEXT NOT NULL CHECK (state IN ('uploading', 'complete', 'aborted', 'deleted')),
  upload_id         TEXT,
  storage_class     TEXT NOT NULL,
  stored_size       INTEGER,
  part_count        INTEGER,
  plaintext_size    INTEGER,
  plaintext_sha256  TEXT,
  started_at        TEXT NOT NULL,
  uploaded_at       TEXT,
  deleted_at        TEXT,
  PRIMARY KEY (stream_id, volume_index)
);

CREATE TABLE upload_parts (
  stream_id         TEXT NOT NULL,
  volume_index      INTEGER NOT NULL,
  part_number       INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
  plaintext_size    INTEGER NOT NULL,
  plaintext_sha256  TEXT NOT NULL,
  sealed_size       INTEGER NOT NULL,
  etag              TEXT NOT NULL,
  checksum_sha256   TEXT,
  acked_at          TEXT NOT NULL,
  PRIMARY KEY (stream_id, volume_index, part_number),
  FOREIGN KEY (stream_id, volume_index) REFERENCES volumes(stream_id, volume_index) ON DELETE CASCADE
);
`;

const V2_EVENTS = `
CREATE TABLE events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at       TEXT NOT NULL,
  kind     TEXT NOT NULL,
  dataset  TEXT,
  detail   TEXT NOT NULL CHECK (json_valid(detail))
);
CREATE INDEX events_at ON events(at);
`;

/**
 * Generic JSON key/value table for later features (restore plans, consolidation
 * state) that need persistence before they deserve their own tables.
 */
const V3_KV = `
CREATE TABLE kv (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL CHECK (json_valid(value)),
  updated_at  TEXT NOT NULL
);
CREATE INDEX volumes_in_flight ON volumes(upload_id) WHERE upload_id IS NOT NULL;
`;

/**
 * The `zfs send` flags a stream was made with, as a JSON array of strings in
 * argument order (e.g. `["-w","-c","-L","-e"]`; `-i <base>` not included), so
 * a resume re-sends the same bytes whatever the ZFS can do by then. NULL for
 * streams recorded before this column: their flags are unknown (zbk then sent
 * `-c -L -e` where the ZFS supported them).
 */
const V4_SEND_FLAGS = `
ALTER TABLE streams ADD COLUMN send_flags TEXT CHECK (send_flags IS NULL OR (json_valid(send_flags) AND json_type(send_flags) = 'array'));
`;

/**
 * Integrity evidence:
 * - `volumes.etag`: the ETag the store reported for the completed object
 *   (HeadObject after CompleteMultipartUpload; for S3 the MD5 of the part
 *   MD5s + "-<parts>"), so `zbk verify` can tell an object overwritten with
 *   other bytes of the same size. NULL for volumes recorded before this
 *   column (checked for size and metadata only) or when the store reports none.
 * - `damage`: what `zbk verify` or a restore found wrong with an object the
 *   manifest relies on (a volume, or a stream record), by object key. A
 *   stream with a damaged volume restores nothing: chains avoid it, and
 *   `zbk status` / `zbk check` show the chain broken. `etag_seen` is the
 *   ETag the store reported when the damage was found (NULL: unknown or missing).
 */
const V5_INTEGRITY = `
ALTER TABLE volumes ADD COLUMN etag TEXT;
CREATE TABLE damage (
  object_key  TEXT PRIMARY KEY,
  stream_id   TEXT NOT NULL REFERENCES streams(stream_id) ON DELETE CASCADE,
  problem     TEXT NOT NULL,
  found_by    TEXT NOT NULL CHECK (found_by IN ('verify', 'restore')),
  found_at    TEXT NOT NULL,
  etag_seen   TEXT
);
CREATE INDEX damage_stream ON damage(stream_id);
`;

/**
 * What a damage record's evidence is:
 * - `bad`: the object is missing, or proven bad (wrong size, incomplete,
 *   sealed metadata wrong, or its bytes failed authentication in a restore).
 *   Restores skip it.
 * - `mismatch`: the size matches and the sealed metadata opens and names the
 *   right stream/volume, but the ETag or storage class differs from the push
 *   (an in-place copy, a bucket migrated with other chunk sizes, a lifecycle
 *   rule, or other bytes) or the store no longer reports an ETag. Verify and
 *   check still report it, but restores try the volume: authentication
 *   decides, and a volume that authenticates clears its record.
 * Records from before this column are `bad` (what they meant then).
 */
const V6_DAMAGE_KIND = `
ALTER TABLE damage ADD COLUMN kind TEXT NOT NULL DEFAULT 'bad' CHECK (kind IN ('bad', 'mismatch'));
`;

/** Ordered migrations: index i upgrades version i to i + 1. Append only. */
export const MIGRATIONS: readonly Migration[] = [
  (db) => db.exec(V1_CORE),
  (db) => db.exec(V2_EVENTS),
  (db) => db.exec(V3_KV),
  (db) => db.exec(V4_SEND_FLAGS),
  (db) => db.exec(V5_INTEGRITY),
  (db) => db.exec(V6_DAMAGE_KIND),
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Current `user_version` of an open database. */
export function schemaVersion(db: Database.Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/**
 * Bring `db` up to `target` (default: latest), each step in its own
 * transaction so a crash leaves a consistent earlier version. Refuses a
 * database newer than this build knows (MANIFEST_TOO_NEW): an old zbk must
 * never write into a schema it does not understand.
 */
export function migrate(db: Database.Database, target: number = SCHEMA_VERSION): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new ManifestError(
      `the manifest was written by a newer zbk (schema ${current}, this zbk knows up to ${SCHEMA_VERSION}): upgrade zbk`,
      'MANIFEST_TOO_NEW',
    );
  }
  if (target > SCHEMA_VERSION || target < current) throw new RangeError(`cannot migrate from ${current} to ${target}`);
  for (let v = current; v < target; v++) {
    const step = MIGRATIONS[v]!;
    db.transaction(() => {
      step(db);
      // user_version is part of the database header, so it commits atomically with the step.
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
