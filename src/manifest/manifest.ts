/**
 * The local manifest: what has been pushed, what is in flight, what can be
 * deleted. One SQLite database per repository (WAL, foreign keys on). Every
 * write runs in a transaction; readers see committed state only.
 *
 * Callers hold the process lock (`./lock.ts`) around any session that
 * writes; SQLite's own locking keeps concurrent readers safe.
 *
 * `Manifest` opens and closes the database and is the API the rest of zbk
 * uses; each method hands over to the module of its concern, all sharing
 * the one database handle (`./context.ts`):
 *
 * - `./repository.ts`: the repository row (store URL, key id)
 * - `./datasets.ts`: datasets and the snapshots they pushed
 * - `./streams.ts`: streams and volumes as they are recorded
 * - `./uploads.ts`: the push lifecycle (begin, volumes, part checkpoints,
 *   complete, abort, abandon) and rebuild's import
 * - `./restorable.ts`: restorable streams, `chainFor`, `unneededObjects`
 * - `./consolidation.ts`: superseded streams, deleted and missing volumes
 * - `./damage.ts`: damaged objects
 * - `./events.ts`, `./kv.ts`: the event log, the key/value table
 * - `./integrity.ts`: integrity check, the compacted copy for the mirror
 * - `./rows.ts`: row ↔ object mapping and input validators
 */
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { ManifestError } from '../errors.js';
import { Consolidation } from './consolidation.js';
import type { ManifestDb } from './context.js';
import { Damage } from './damage.js';
import { Datasets } from './datasets.js';
import { Events } from './events.js';
import { Integrity } from './integrity.js';
import { KeyValues } from './kv.js';
import { createFresh, openExisting } from './open.js';
import { Repository } from './repository.js';
import { Restorable } from './restorable.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from './schema.js';
import { Streams } from './streams.js';
import type {
  BeginStreamInput,
  DamageKind,
  DamageRow,
  DamageSource,
  DatasetRow,
  EventRow,
  ImportStreamInput,
  InFlightUpload,
  IntegrityReport,
  PartAckInput,
  PartCheckpoint,
  RepositoryRow,
  SnapshotRow,
  StoredVolume,
  StreamRow,
  StreamWithVolumes,
  UnneededObject,
  VolumeCompletedInput,
  VolumeRow,
} from './types.js';
import { Uploads } from './uploads.js';

export type { ImportStreamInput } from './types.js';

export interface ManifestOpenOptions {
  /** Open without writing (no migrations; refuses an outdated schema). */
  readonly?: boolean;
  /** Create the file if missing (default true unless readonly). */
  create?: boolean;
  /** Clock for default timestamps (tests). */
  now?: () => Date;
}

export class Manifest {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly repo: Repository;
  private readonly ds: Datasets;
  private readonly st: Streams;
  private readonly ev: Events;
  private readonly kv: KeyValues;
  private readonly dmg: Damage;
  private readonly up: Uploads;
  private readonly rs: Restorable;
  private readonly cons: Consolidation;
  private readonly integ: Integrity;

  private constructor(path: string, db: Database.Database, now: () => Date) {
    this.path = path;
    this.db = db;
    const c: ManifestDb = { db, iso: (at?: Date) => (at ?? now()).toISOString() };
    this.repo = new Repository(c);
    this.ds = new Datasets(c);
    this.st = new Streams(c);
    this.ev = new Events(c);
    this.kv = new KeyValues(c);
    this.dmg = new Damage(c, this.st, this.ev);
    this.up = new Uploads(c, this.st, this.ds, this.ev);
    this.rs = new Restorable(c, this.st, this.ds, this.dmg);
    this.cons = new Consolidation(c, this.st, this.ev);
    this.integ = new Integrity(c, this.st, this.ds);
  }

  /**
   * Open (or create) the manifest at `path`. An existing file is checked
   * first (header, quick_check unless it passed within the hour on the same
   * file state: check-stamp.ts) and refused with MANIFEST_CORRUPT if damaged;
   * a newer schema is refused with MANIFEST_TOO_NEW; an older one is migrated
   * (not when readonly: MANIFEST_OUTDATED). A missing file is created unless
   * `readonly` or `create: false` (then NO_MANIFEST).
   */
  static open(path: string, opts: ManifestOpenOptions = {}): Manifest {
    const readonly = opts.readonly ?? false;
    if (!existsSync(path)) {
      if (readonly || opts.create === false) {
        throw new ManifestError(`no manifest at ${path}: run "zbk init", or "zbk manifest rebuild" to recover it from the bucket`, 'NO_MANIFEST');
      }
      createFresh(path);
    }
    const db = openExisting(path, readonly);
    try {
      db.pragma('foreign_keys = ON');
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        // FULL: a committed "stream complete" must survive a power cut, not only a crash.
        db.pragma('synchronous = FULL');
        migrate(db);
      } else {
        const v = schemaVersion(db);
        if (v > SCHEMA_VERSION) migrate(db); // throws MANIFEST_TOO_NEW
        if (v < SCHEMA_VERSION) {
          throw new ManifestError(`the manifest at ${path} uses an older schema (${v}); run any writing zbk command to upgrade it`, 'MANIFEST_OUTDATED');
        }
      }
      return new Manifest(path, db, opts.now ?? (() => new Date()));
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Close the database (checkpoints the WAL). Idempotent. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Schema version of the open database. */
  get schemaVersion(): number {
    return schemaVersion(this.db);
  }

  // Each method below is documented where it is implemented (the module named in its comment).

  // ---------------------------------------------------- repository.ts, datasets.ts

  /** Record the store and key this manifest belongs to (REPOSITORY_MISMATCH if it records others). */
  initRepository(input: { storeUrl: string; keyId: string; createdAt?: Date }): RepositoryRow {
    return this.repo.initRepository(input);
  }

  /** Record that the repository (same key) now lives at `storeUrl`. */
  relocateRepository(storeUrl: string, keyId: string): void {
    this.repo.relocateRepository(storeUrl, keyId);
  }

  /** The repository this manifest belongs to, or null before `initRepository`. */
  repository(): RepositoryRow | null {
    return this.repo.repository();
  }

  /** Every dataset the manifest knows, by name. */
  datasets(): DatasetRow[] {
    return this.ds.datasets();
  }

  /** Snapshots recorded for `dataset`, oldest first. */
  snapshots(dataset: string): SnapshotRow[] {
    return this.ds.snapshots(dataset);
  }

  // ------------------------------------------------------------------ uploads.ts

  /** Start recording a push (STREAM_IN_FLIGHT, BASE_NOT_PUSHED). */
  beginStream(input: BeginStreamInput): StreamRow {
    return this.up.beginStream(input);
  }

  /** A volume's multipart upload was created (or re-created: its checkpoints dropped). BAD_STATE if the volume is not uploading. */
  recordVolumeStarted(streamId: string, volumeIndex: number, key: string, uploadId: string, storageClass: string): VolumeRow {
    return this.up.recordVolumeStarted(streamId, volumeIndex, key, uploadId, storageClass);
  }

  /** The store acknowledged a part: the checkpoint (one prepared statement, one small transaction). NOT_UPLOADING. */
  recordPartAcknowledged(part: PartAckInput): void {
    this.up.recordPartAcknowledged(part);
  }

  /** Acknowledged parts of an uploading volume, ascending part number. */
  partsOf(streamId: string, volumeIndex: number): PartCheckpoint[] {
    return this.up.partsOf(streamId, volumeIndex);
  }

  /** The store confirmed a volume: its upload id and checkpoints cleared. NOT_UPLOADING. */
  recordVolumeCompleted(input: VolumeCompletedInput): VolumeRow {
    return this.up.recordVolumeCompleted(input);
  }

  /** A multipart upload was aborted in the store: forget its id. */
  recordUploadAborted(key: string, uploadId: string): void {
    this.up.recordUploadAborted(key, uploadId);
  }

  /** Every volume is confirmed and the stream record stored: the stream is complete (INCOMPLETE_STREAM). */
  completeStream(
    streamId: string,
    totals: { plaintextSize: number; storedSize: number; completedAt?: Date; sendFlags?: readonly string[] | null },
  ): StreamWithVolumes {
    return this.up.completeStream(streamId, totals);
  }

  /** Give up an uploading stream (its aborted uploads marked), in one transaction. */
  abandonStream(streamId: string, reason: string, abortedUploads: readonly { key: string; uploadId: string }[] = []): void {
    this.up.abandonStream(streamId, reason, abortedUploads);
  }

  /** Rebuild: insert a complete stream as its record describes it; false if already known. */
  importCompleteStream(input: ImportStreamInput): boolean {
    return this.up.importCompleteStream(input);
  }

  /** Rebuild: import many complete streams in one transaction; a refused one goes to `refused`, the rest stay. Returns how many were added. */
  importCompleteStreams(inputs: readonly ImportStreamInput[], refused: (input: ImportStreamInput, err: ManifestError) => void): number {
    return this.up.importCompleteStreams(inputs, refused, (input) => this.importCompleteStream(input));
  }

  /** Multipart uploads the manifest knows to be open. */
  inFlightUploads(): InFlightUpload[] {
    return this.up.inFlightUploads();
  }

  // ------------------------------------------------------------------ streams.ts

  /** The dataset's uploading stream with its volumes (to resume), or null. */
  findInFlightStream(dataset: string): StreamWithVolumes | null {
    return this.st.findInFlightStream(dataset);
  }

  /** One stream, or null. */
  stream(streamId: string): StreamRow | null {
    return this.st.stream(streamId);
  }

  /** Streams of one dataset or all, in start order; only those in `states` when given. */
  streams(dataset?: string, states?: readonly StreamRow['state'][]): StreamRow[] {
    return this.st.streams(dataset, states);
  }

  /** Volumes of a stream, by index. */
  volumes(streamId: string): VolumeRow[] {
    return this.st.volumes(streamId);
  }

  /** The volumes of every stream (of `dataset`, or all; of streams in `streamStates` when given) by stream id, each list by index, in one query. */
  volumesByStream(dataset?: string, streamStates?: readonly StreamRow['state'][]): Map<string, VolumeRow[]> {
    return this.st.volumesByStream(dataset, streamStates);
  }

  /** Complete volumes (stored size known) of the streams in `streamStates`, of `dataset` or all, in stream start order: one light query for the cost model. */
  storedVolumes(dataset: string | undefined, streamStates: readonly StreamRow['state'][]): StoredVolume[] {
    return this.st.storedVolumes(dataset, streamStates);
  }

  /** The newest snapshot a complete stream of `dataset` ends at (the next incremental's base), or null. */
  lastPushedSnapshot(dataset: string): SnapshotRow | null {
    return this.st.lastPushedSnapshot(dataset);
  }

  // --------------------------------------------------------------- restorable.ts

  /** The streams of `dataset` that can restore something. */
  restorableStreams(dataset: string): StreamRow[] {
    return this.rs.restorableStreams(dataset);
  }

  /**
   * The streams (with volumes) that restore `snapshotGuid` (default: the last
   * pushed), full first. SnapshotNotPushedError, BrokenChainError, DamagedChainError.
   */
  chainFor(dataset: string, snapshotGuid?: bigint, opts: { includeDamaged?: boolean } = {}): StreamWithVolumes[] {
    return this.rs.chainFor(dataset, snapshotGuid, opts);
  }

  /** Volumes no chain of a kept snapshot needs: deletion candidates. BrokenChainError if a kept chain is broken. */
  unneededObjects(keepSnapshotGuids: Set<string>): UnneededObject[] {
    return this.rs.unneededObjects(keepSnapshotGuids);
  }

  // ------------------------------------------------------------ consolidation.ts

  /** Mark complete streams superseded (LAST_SNAPSHOT_UNRESTORABLE). */
  markSuperseded(streamIds: readonly string[], at?: Date): void {
    this.cons.markSuperseded(streamIds, at);
  }

  /** Objects were deleted from the store. */
  markVolumesDeleted(keys: readonly string[], at?: Date): void {
    this.cons.markVolumesDeleted(keys, at);
  }

  /** Reconcile with a listing of the store: volumes it no longer shows are marked deleted. */
  markMissingVolumes(stored: (key: string) => boolean, at?: Date): { streamId: string; dataset: string; key: string; streamState: StreamRow['state'] }[] {
    return this.cons.markMissingVolumes(stored, at);
  }

  // ------------------------------------------------------------------- damage.ts

  /** Record that the object at `key` is damaged (BAD_INPUT for a key the manifest does not know). */
  recordDamage(input: { key: string; problem: string; foundBy: DamageSource; etagSeen?: string | null; kind?: DamageKind; at?: Date }): void {
    this.dmg.recordDamage(input);
  }

  /** Forget the damage recorded for `key`. True when there was a record. */
  clearDamage(key: string): boolean {
    return this.dmg.clearDamage(key);
  }

  /** Damage recorded for objects still in the store, of `dataset` or all, by key. */
  damagedObjects(dataset?: string): DamageRow[] {
    return this.dmg.damagedObjects(dataset);
  }

  /** Damaged volumes of `dataset`. */
  damagedVolumes(dataset: string): DamageRow[] {
    return this.dmg.damagedVolumes(dataset);
  }

  // ---------------------------------------------------------------- events.ts, kv.ts

  /** Append to the event log. `detail` is JSON; never put secrets in it. */
  logEvent(kind: string, dataset: string | null, detail: unknown): void {
    this.ev.logEvent(kind, dataset, detail);
  }

  /** The newest `limit` events, newest first. */
  events(limit = 100): EventRow[] {
    return this.ev.events(limit);
  }

  /** The newest `limit` events of `kind`, newest first. */
  eventsOfKind(kind: string, limit = 100): EventRow[] {
    return this.ev.eventsOfKind(kind, limit);
  }

  /** Read a JSON value from the key/value table. */
  getValue(key: string): unknown {
    return this.kv.getValue(key);
  }

  /** Write (or with `undefined`, delete) a JSON value in the key/value table. */
  setValue(key: string, value: unknown): void {
    this.kv.setValue(key, value);
  }

  // ---------------------------------------------------------------- integrity.ts

  /** SQLite integrity_check + foreign_key_check + zbk invariants. */
  integrityCheck(): IntegrityReport {
    return this.integ.integrityCheck();
  }

  /** A compacted, self-contained copy of the database, as bytes, made in memory (for the mirror). */
  compactedCopy(): Uint8Array {
    return this.integ.compactedCopy();
  }
}
