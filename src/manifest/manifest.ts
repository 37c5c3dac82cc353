/**
 * The local manifest: what has been pushed, what is in flight, what can be
 * deleted. One SQLite database per repository (WAL, foreign keys on). Every
 * write runs in a transaction; readers see committed state only.
 *
 * Callers hold the process lock (`./lock.ts`) around any session that
 * writes; SQLite's own locking keeps concurrent readers safe.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ManifestError } from '../errors.js';
import { streamRecordKey, volumeKey } from '../layout.js';
import { bestChains, resolveChain } from './chain.js';
import { DamagedChainError, SnapshotNotPushedError } from './errors.js';
import { idToText, textToId, textToU64, u64ToText } from './guid.js';
import { createFresh, openExisting } from './open.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from './schema.js';
import type {
  BeginStreamInput,
  DamageKind,
  DamageRow,
  DamageSource,
  DatasetRow,
  EventRow,
  InFlightUpload,
  IntegrityReport,
  PartAckInput,
  PartCheckpoint,
  RepositoryRow,
  SnapshotRow,
  StreamRow,
  StreamWithVolumes,
  UnneededObject,
  VolumeCompletedInput,
  VolumeRow,
} from './types.js';

export interface ManifestOpenOptions {
  /** Open without writing (no migrations; refuses an outdated schema). */
  readonly?: boolean;
  /** Create the file if missing (default true unless readonly). */
  create?: boolean;
  /** Clock for default timestamps (tests). */
  now?: () => Date;
}

/** A complete stream as rebuild imports it (from a stream record + HEADs). */
export interface ImportStreamInput {
  streamId: string;
  dataset: string;
  from: { name: string; guid: bigint } | null;
  to: { name: string; guid: bigint; createtxg: bigint; creation: number };
  plaintextSize: number;
  storedSize: number;
  volumeSize: number;
  partSize: number;
  startedAt: Date;
  completedAt: Date;
  /** From the stream record; absent or null when the record does not say (written before flags were recorded). */
  sendFlags?: readonly string[] | null;
  volumes: {
    index: number;
    key: string;
    storageClass: string;
    storedSize: number;
    partCount: number;
    plaintextSize: number;
    plaintextSha256: string;
    /** From the stream record; absent in records written before zbk kept ETags. */
    etag?: string | null;
    uploadedAt: Date;
  }[];
}

interface StreamDbRow {
  stream_id: string;
  dataset: string;
  kind: 'full' | 'incremental';
  from_guid: string | null;
  from_name: string | null;
  to_guid: string;
  to_name: string;
  to_createtxg: string;
  to_creation: number;
  plaintext_size: number | null;
  stored_size: number | null;
  state: StreamRow['state'];
  volume_size: number;
  part_size: number;
  started_at: string;
  completed_at: string | null;
  superseded_at: string | null;
  abandoned_at: string | null;
  abandon_reason: string | null;
  send_flags: string | null;
}

interface VolumeDbRow {
  stream_id: string;
  volume_index: number;
  object_key: string;
  state: VolumeRow['state'];
  upload_id: string | null;
  storage_class: string;
  stored_size: number | null;
  part_count: number | null;
  plaintext_size: number | null;
  plaintext_sha256: string | null;
  etag: string | null;
  started_at: string;
  uploaded_at: string | null;
  deleted_at: string | null;
}

const STREAM_COLUMNS = `s.stream_id, d.name AS dataset, s.kind, s.from_guid, s.from_name, s.to_guid, s.to_name,
  s.to_createtxg, s.to_creation, s.plaintext_size, s.stored_size, s.state, s.volume_size, s.part_size,
  s.started_at, s.completed_at, s.superseded_at, s.abandoned_at, s.abandon_reason, s.send_flags`;
const STREAM_FROM = `streams s JOIN datasets d ON d.id = s.dataset_id`;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** One send option as recorded: `zfs send -w`, `btrfs send --proto=2` (long spellings, with a simple value). */
const SEND_FLAG = /^--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9.-]+)?$/;

function d(s: string): Date;
function d(s: string | null): Date | null;
function d(s: string | null): Date | null {
  return s === null ? null : new Date(s);
}

function toStream(r: StreamDbRow): StreamRow {
  return {
    streamId: r.stream_id,
    dataset: r.dataset,
    kind: r.kind,
    from: r.from_guid === null ? null : { name: r.from_name!, guid: textToId(r.from_guid, 'from guid') },
    to: { name: r.to_name, guid: textToId(r.to_guid, 'to guid'), createtxg: textToU64(r.to_createtxg, 'createtxg'), creation: r.to_creation },
    plaintextSize: r.plaintext_size,
    storedSize: r.stored_size,
    state: r.state,
    volumeSize: r.volume_size,
    partSize: r.part_size,
    startedAt: d(r.started_at),
    completedAt: d(r.completed_at),
    supersededAt: d(r.superseded_at),
    abandonedAt: d(r.abandoned_at),
    abandonReason: r.abandon_reason,
    sendFlags: r.send_flags === null ? null : sendFlagsFromText(r.send_flags, r.stream_id),
  };
}

function sendFlagsFromText(text: string, streamId: string): string[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string' && SEND_FLAG.test(f))) {
    throw new ManifestError(`stream ${streamId} records send flags that are not a list of send options: ${text}`, 'MANIFEST_CORRUPT');
  }
  return v as string[];
}

/** The JSON text of a flag list for the send_flags column (null stays null). */
function sendFlagsText(flags: readonly string[] | null | undefined): string | null {
  if (flags === null || flags === undefined) return null;
  if (!flags.every((f) => typeof f === 'string' && SEND_FLAG.test(f))) {
    throw new ManifestError(`send flags must be send options like "-w" or "--proto=2", got ${JSON.stringify(flags)}`, 'BAD_INPUT');
  }
  return JSON.stringify(flags);
}

function toVolume(r: VolumeDbRow): VolumeRow {
  return {
    streamId: r.stream_id,
    volumeIndex: r.volume_index,
    key: r.object_key,
    state: r.state,
    uploadId: r.upload_id,
    storageClass: r.storage_class,
    storedSize: r.stored_size,
    partCount: r.part_count,
    plaintextSize: r.plaintext_size,
    plaintextSha256: r.plaintext_sha256,
    etag: r.etag ?? null,
    startedAt: d(r.started_at),
    uploadedAt: d(r.uploaded_at),
    deletedAt: d(r.deleted_at),
  };
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ManifestError(`${what} must be a non-negative safe integer, got ${n}`, 'BAD_INPUT');
}

function checkStreamId(id: string): void {
  if (!HEX32.test(id)) throw new ManifestError(`stream id must be 32 lower-case hex chars, got ${JSON.stringify(id)}`, 'BAD_INPUT');
}

export class Manifest {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly ackStmt: Database.Statement;
  private readonly ackTx: Database.Transaction<(p: PartAckInput, at: string) => void>;

  private constructor(path: string, db: Database.Database, now: () => Date) {
    this.path = path;
    this.db = db;
    this.now = now;
    // Prepared once: recordPartAcknowledged runs once per part and must stay cheap.
    // The INSERT ... SELECT only matches a volume that is still uploading.
    this.ackStmt = db.prepare(`
      INSERT INTO upload_parts (stream_id, volume_index, part_number, plaintext_size, plaintext_sha256, sealed_size, etag, checksum_sha256, acked_at)
      SELECT v.stream_id, v.volume_index, ?, ?, ?, ?, ?, ?, ? FROM volumes v
        WHERE v.stream_id = ? AND v.volume_index = ? AND v.state = 'uploading'
      ON CONFLICT (stream_id, volume_index, part_number) DO UPDATE SET
        plaintext_size = excluded.plaintext_size, plaintext_sha256 = excluded.plaintext_sha256,
        sealed_size = excluded.sealed_size, etag = excluded.etag, checksum_sha256 = excluded.checksum_sha256,
        acked_at = excluded.acked_at`);
    this.ackTx = db.transaction((p: PartAckInput, at: string) => {
      const res = this.ackStmt.run(
        p.partNumber, p.plaintextSize, p.plaintextSha256, p.sealedSize, p.etag, p.checksumSha256 ?? null, at, p.streamId, p.volumeIndex,
      );
      if (res.changes !== 1) {
        throw new ManifestError(`part ${p.partNumber} acknowledged for volume ${p.volumeIndex} of stream ${p.streamId}, which is not uploading`, 'NOT_UPLOADING');
      }
    });
  }

  /**
   * Open (or create) the manifest at `path`. An existing file is checked
   * first (header, quick_check) and refused with MANIFEST_CORRUPT if damaged;
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

  private iso(at?: Date): string {
    return (at ?? this.now()).toISOString();
  }

  // ---------------------------------------------------------------- repository

  /**
   * Record which store and key this manifest belongs to. Idempotent for the
   * same values; REPOSITORY_MISMATCH if it already records different ones.
   */
  initRepository(input: { storeUrl: string; keyId: string; createdAt?: Date }): RepositoryRow {
    this.db.transaction(() => {
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
      this.db
        .prepare('INSERT INTO repository (id, store_url, key_id, created_at) VALUES (1, ?, ?, ?)')
        .run(input.storeUrl, input.keyId, this.iso(input.createdAt));
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
    this.db.prepare('UPDATE repository SET store_url = ? WHERE id = 1').run(storeUrl);
  }

  /** The repository this manifest belongs to, or null before `initRepository`. */
  repository(): RepositoryRow | null {
    const r = this.db.prepare('SELECT store_url, key_id, created_at FROM repository WHERE id = 1').get() as
      | { store_url: string; key_id: string; created_at: string }
      | undefined;
    return r ? { storeUrl: r.store_url, keyId: r.key_id, createdAt: d(r.created_at) } : null;
  }

  // ------------------------------------------------------------------ datasets

  private datasetId(name: string): number | null {
    const r = this.db.prepare('SELECT id FROM datasets WHERE name = ?').get(name) as { id: number } | undefined;
    return r ? r.id : null;
  }

  /** Must run inside a transaction. */
  private ensureDataset(name: string, opaqueId?: string): number {
    if (!name) throw new ManifestError('dataset name is empty', 'BAD_INPUT');
    const id = this.datasetId(name);
    if (id !== null) {
      if (opaqueId) this.db.prepare('UPDATE datasets SET opaque_id = ? WHERE id = ? AND opaque_id IS NULL').run(opaqueId, id);
      return id;
    }
    const res = this.db
      .prepare('INSERT INTO datasets (name, opaque_id, created_at) VALUES (?, ?, ?)')
      .run(name, opaqueId ?? null, this.iso());
    return Number(res.lastInsertRowid);
  }

  /** Every dataset the manifest knows, by name. */
  datasets(): DatasetRow[] {
    const rows = this.db.prepare('SELECT name, opaque_id, created_at FROM datasets ORDER BY name').all() as {
      name: string;
      opaque_id: string | null;
      created_at: string;
    }[];
    return rows.map((r) => ({ name: r.name, opaqueId: r.opaque_id, createdAt: d(r.created_at) }));
  }

  /** Snapshots recorded for `dataset` (ends of complete streams and their bases), oldest first when createtxg is known. */
  snapshots(dataset: string): SnapshotRow[] {
    const rows = this.db
      .prepare(
        `SELECT sn.name, sn.guid, sn.createtxg, sn.creation FROM snapshots sn JOIN datasets d ON d.id = sn.dataset_id
         WHERE d.name = ? ORDER BY sn.createtxg IS NULL, length(sn.createtxg), sn.createtxg, sn.name`,
      )
      .all(dataset) as { name: string; guid: string; createtxg: string | null; creation: number | null }[];
    return rows
      .filter((r) => r.createtxg !== null)
      .map((r) => ({ dataset, name: r.name, guid: textToId(r.guid), createtxg: textToU64(r.createtxg!), creation: r.creation ?? 0 }));
  }

  // ----------------------------------------------------------- push lifecycle

  /**
   * Start recording a push of `input.to` (incremental from `input.from`, or
   * full when null). Refuses (STREAM_IN_FLIGHT) while the dataset has an
   * uploading stream — resume it or abandon it first — and refuses
   * (BASE_NOT_PUSHED) an incremental whose base no complete stream ends at,
   * since such a stream could never be restored.
   */
  beginStream(input: BeginStreamInput): StreamRow {
    checkStreamId(input.streamId);
    checkSize(input.volumeSize, 'volumeSize');
    checkSize(input.partSize, 'partSize');
    const toGuid = idToText(input.to.guid, 'to guid');
    const createtxg = u64ToText(input.to.createtxg, 'createtxg');
    const fromGuid = input.from ? idToText(input.from.guid, 'from guid') : null;
    const flags = sendFlagsText(input.sendFlags);
    this.db.transaction(() => {
      const dsId = this.ensureDataset(input.dataset, input.datasetOpaqueId);
      const inflight = this.db.prepare(`SELECT stream_id FROM streams WHERE dataset_id = ? AND state = 'uploading'`).get(dsId) as
        | { stream_id: string }
        | undefined;
      if (inflight) {
        throw new ManifestError(`${input.dataset} already has a push in flight (stream ${inflight.stream_id}): resume or abandon it`, 'STREAM_IN_FLIGHT');
      }
      if (fromGuid !== null) {
        const base = this.db
          .prepare(`SELECT 1 FROM streams WHERE dataset_id = ? AND to_guid = ? AND state = 'complete' LIMIT 1`)
          .get(dsId, fromGuid);
        if (!base) {
          throw new ManifestError(
            `${input.dataset}: base snapshot ${input.from!.name} (guid ${fromGuid}) is not the end of any complete stream; push a full stream`,
            'BASE_NOT_PUSHED',
          );
        }
      }
      this.db
        .prepare(
          `INSERT INTO streams (stream_id, dataset_id, kind, from_guid, from_name, to_guid, to_name, to_createtxg, to_creation,
             state, volume_size, part_size, started_at, send_flags)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?, ?, ?)`,
        )
        .run(
          input.streamId, dsId, fromGuid === null ? 'full' : 'incremental', fromGuid, input.from?.name ?? null,
          toGuid, input.to.name, createtxg, input.to.creation, input.volumeSize, input.partSize, this.iso(input.startedAt), flags,
        );
    }).immediate();
    return this.stream(input.streamId)!;
  }

  /** The dataset's uploading stream with its volumes (to resume), or null. */
  findInFlightStream(dataset: string): StreamWithVolumes | null {
    const r = this.db
      .prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? AND s.state = 'uploading'`)
      .get(dataset) as StreamDbRow | undefined;
    if (!r) return null;
    const s = toStream(r);
    return { ...s, volumes: this.volumes(s.streamId) };
  }

  /**
   * A volume's multipart upload was created. Re-recording an existing
   * uploading volume (the old upload id was lost: NoSuchUpload) replaces its
   * upload id and drops its part checkpoints, which belonged to the old upload.
   */
  recordVolumeStarted(streamId: string, volumeIndex: number, key: string, uploadId: string, storageClass: string): VolumeRow {
    if (key !== volumeKey(streamId, volumeIndex)) {
      throw new ManifestError(`volume key ${key} does not match stream ${streamId} volume ${volumeIndex}`, 'BAD_INPUT');
    }
    if (!uploadId) throw new ManifestError('upload id is empty', 'BAD_INPUT');
    this.db.transaction(() => {
      this.requireStreamState(streamId, 'uploading');
      const cur = this.db.prepare('SELECT state FROM volumes WHERE stream_id = ? AND volume_index = ?').get(streamId, volumeIndex) as
        | { state: string }
        | undefined;
      if (cur) {
        if (cur.state !== 'uploading') throw new ManifestError(`volume ${volumeIndex} of stream ${streamId} is already ${cur.state}`, 'BAD_STATE');
        this.db.prepare('DELETE FROM upload_parts WHERE stream_id = ? AND volume_index = ?').run(streamId, volumeIndex);
        this.db
          .prepare('UPDATE volumes SET upload_id = ?, storage_class = ?, started_at = ? WHERE stream_id = ? AND volume_index = ?')
          .run(uploadId, storageClass, this.iso(), streamId, volumeIndex);
      } else {
        this.db
          .prepare(
            `INSERT INTO volumes (stream_id, volume_index, object_key, state, upload_id, storage_class, started_at)
             VALUES (?, ?, ?, 'uploading', ?, ?, ?)`,
          )
          .run(streamId, volumeIndex, key, uploadId, storageClass, this.iso());
      }
    }).immediate();
    return this.volume(streamId, volumeIndex)!;
  }

  /**
   * The store acknowledged a part: one small transaction, one statement.
   * Idempotent per part number (a re-upload replaces the checkpoint).
   * NOT_UPLOADING if the volume is not an uploading volume.
   */
  recordPartAcknowledged(part: PartAckInput): void {
    this.ackTx.immediate(part, this.iso());
  }

  /** Acknowledged parts of an uploading volume, ascending part number. */
  partsOf(streamId: string, volumeIndex: number): PartCheckpoint[] {
    const rows = this.db
      .prepare('SELECT * FROM upload_parts WHERE stream_id = ? AND volume_index = ? ORDER BY part_number')
      .all(streamId, volumeIndex) as {
      part_number: number;
      plaintext_size: number;
      plaintext_sha256: string;
      sealed_size: number;
      etag: string;
      checksum_sha256: string | null;
      acked_at: string;
    }[];
    return rows.map((r) => ({
      streamId,
      volumeIndex,
      partNumber: r.part_number,
      plaintextSize: r.plaintext_size,
      plaintextSha256: r.plaintext_sha256,
      sealedSize: r.sealed_size,
      etag: r.etag,
      checksumSha256: r.checksum_sha256,
      ackedAt: d(r.acked_at),
    }));
  }

  /**
   * The store confirmed a volume (CompleteMultipartUpload succeeded and was
   * verified). Clears the upload id and the volume's part checkpoints.
   */
  recordVolumeCompleted(input: VolumeCompletedInput): VolumeRow {
    checkSize(input.storedSize, 'storedSize');
    checkSize(input.plaintextSize, 'plaintextSize');
    if (!Number.isInteger(input.partCount) || input.partCount < 1 || input.partCount > 10000) {
      throw new ManifestError(`partCount out of range: ${input.partCount}`, 'BAD_INPUT');
    }
    if (!HEX64.test(input.plaintextSha256)) throw new ManifestError('plaintextSha256 must be 64 lower-case hex chars', 'BAD_INPUT');
    this.db.transaction(() => {
      this.requireStreamState(input.streamId, 'uploading');
      const res = this.db
        .prepare(
          `UPDATE volumes SET state = 'complete', upload_id = NULL, stored_size = ?, part_count = ?, plaintext_size = ?,
             plaintext_sha256 = ?, etag = ?, uploaded_at = ? WHERE stream_id = ? AND volume_index = ? AND state = 'uploading'`,
        )
        .run(
          input.storedSize, input.partCount, input.plaintextSize, input.plaintextSha256, etagText(input.etag), this.iso(input.uploadedAt),
          input.streamId, input.volumeIndex,
        );
      if (res.changes !== 1) throw new ManifestError(`volume ${input.volumeIndex} of stream ${input.streamId} is not uploading`, 'NOT_UPLOADING');
      this.db.prepare('DELETE FROM upload_parts WHERE stream_id = ? AND volume_index = ?').run(input.streamId, input.volumeIndex);
    }).immediate();
    return this.volume(input.streamId, input.volumeIndex)!;
  }

  /** A multipart upload was aborted in the store (cleanup, or restart): forget its id. */
  recordUploadAborted(key: string, uploadId: string): void {
    this.db.transaction(() => this.markUploadAborted(key, uploadId)).immediate();
  }

  /**
   * Mark the volume holding upload `uploadId` of `key` aborted and drop its
   * checkpoints; false if no volume (of `streamId`, when given) holds it.
   * Must run inside a transaction.
   */
  private markUploadAborted(key: string, uploadId: string, streamId?: string): boolean {
    const v = this.db.prepare('SELECT stream_id, volume_index FROM volumes WHERE object_key = ? AND upload_id = ?').get(key, uploadId) as
      | { stream_id: string; volume_index: number }
      | undefined;
    if (!v || (streamId !== undefined && v.stream_id !== streamId)) return false;
    this.db.prepare('DELETE FROM upload_parts WHERE stream_id = ? AND volume_index = ?').run(v.stream_id, v.volume_index);
    this.db
      .prepare(`UPDATE volumes SET state = 'aborted', upload_id = NULL, deleted_at = ? WHERE stream_id = ? AND volume_index = ?`)
      .run(this.iso(), v.stream_id, v.volume_index);
    return true;
  }

  /**
   * Every volume is confirmed and the stream record is in the store: mark
   * the stream complete, record its snapshots and drop its checkpoints, in
   * one transaction. Refuses (INCOMPLETE_STREAM) if volumes are missing,
   * not complete, not numbered 0..n-1, or do not add up to the given sizes.
   * `totals.sendFlags` records the flags of a stream begun without them (a
   * resume of a stream an older zbk started, now known from the re-send its
   * checkpoints matched); it must equal flags that were recorded (BAD_INPUT).
   */
  completeStream(
    streamId: string,
    totals: { plaintextSize: number; storedSize: number; completedAt?: Date; sendFlags?: readonly string[] | null },
  ): StreamWithVolumes {
    checkSize(totals.plaintextSize, 'plaintextSize');
    checkSize(totals.storedSize, 'storedSize');
    const flags = sendFlagsText(totals.sendFlags);
    this.db.transaction(() => {
      const s = this.requireStreamState(streamId, 'uploading');
      if (flags !== null && s.sendFlags !== null && JSON.stringify(s.sendFlags) !== flags) {
        throw new ManifestError(`stream ${streamId} was begun with send flags ${JSON.stringify(s.sendFlags)}, not ${flags}`, 'BAD_INPUT');
      }
      const vols = this.volumes(streamId);
      const problem = volumeSetProblem(vols, totals);
      if (problem) throw new ManifestError(`stream ${streamId} cannot be completed: ${problem}`, 'INCOMPLETE_STREAM');
      this.db
        .prepare(
          `UPDATE streams SET state = 'complete', plaintext_size = ?, stored_size = ?, completed_at = ?, send_flags = coalesce(send_flags, ?)
           WHERE stream_id = ?`,
        )
        .run(totals.plaintextSize, totals.storedSize, this.iso(totals.completedAt), flags, streamId);
      this.upsertSnapshots(s);
      this.db.prepare('DELETE FROM upload_parts WHERE stream_id = ?').run(streamId);
    }).immediate();
    return { ...this.stream(streamId)!, volumes: this.volumes(streamId) };
  }

  /** Record the snapshots at both ends of a stream. Must run inside a transaction. */
  private upsertSnapshots(s: StreamRow): void {
    const dsId = this.datasetId(s.dataset)!;
    this.db
      .prepare(
        `INSERT INTO snapshots (dataset_id, name, guid, createtxg, creation) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (dataset_id, guid) DO UPDATE SET name = excluded.name, createtxg = excluded.createtxg, creation = excluded.creation`,
      )
      .run(dsId, s.to.name, idToText(s.to.guid), u64ToText(s.to.createtxg), s.to.creation);
    if (s.from) {
      this.db
        .prepare(`INSERT INTO snapshots (dataset_id, name, guid) VALUES (?, ?, ?) ON CONFLICT (dataset_id, guid) DO NOTHING`)
        .run(dsId, s.from.name, idToText(s.from.guid));
    }
  }

  /**
   * Give up an uploading stream (restart from scratch), in one transaction:
   * the volumes of `abortedUploads` (multipart uploads of this stream the
   * caller has already aborted in the store) are marked aborted, and the
   * stream abandoned. Any other upload id of the stream stays recorded (an
   * orphan: the orphan check aborts uploads of streams that are not
   * uploading), and its completed volumes become `unneededObjects` candidates.
   *
   * Abort in the store first, then call this once: a crash in between leaves
   * the stream uploading with upload ids that are gone, which the next resume
   * replaces (recordVolumeStarted accepts only uploading volumes).
   */
  abandonStream(streamId: string, reason: string, abortedUploads: readonly { key: string; uploadId: string }[] = []): void {
    this.db.transaction(() => {
      const s = this.requireStreamState(streamId, 'uploading');
      for (const u of abortedUploads) {
        if (!this.markUploadAborted(u.key, u.uploadId, streamId)) {
          throw new ManifestError(`upload ${u.uploadId} of ${u.key} is not in flight in stream ${streamId}`, 'BAD_INPUT');
        }
      }
      this.db
        .prepare(`UPDATE streams SET state = 'abandoned', abandoned_at = ?, abandon_reason = ? WHERE stream_id = ?`)
        .run(this.iso(), reason, streamId);
      this.db.prepare('DELETE FROM upload_parts WHERE stream_id = ?').run(streamId);
      this.insertEvent('stream-abandoned', s.dataset, { streamId, reason });
    }).immediate();
  }

  /**
   * Rebuild: insert a complete stream with its volumes and snapshots as the
   * stream record and the store describe it. Returns false (and changes
   * nothing) if the stream is already known as complete, superseded or
   * deleted; an `uploading`/`abandoned` copy (from a mirror taken mid-push)
   * is replaced, since the stream record proves the push finished.
   */
  importCompleteStream(input: ImportStreamInput): boolean {
    checkStreamId(input.streamId);
    return this.db.transaction((): boolean => {
      const existing = this.stream(input.streamId);
      if (existing && existing.state !== 'uploading' && existing.state !== 'abandoned') return false;
      if (existing) this.db.prepare('DELETE FROM streams WHERE stream_id = ?').run(input.streamId);
      const dsId = this.ensureDataset(input.dataset);
      const fromGuid = input.from ? idToText(input.from.guid, 'from guid') : null;
      this.db
        .prepare(
          `INSERT INTO streams (stream_id, dataset_id, kind, from_guid, from_name, to_guid, to_name, to_createtxg, to_creation,
             plaintext_size, stored_size, state, volume_size, part_size, started_at, completed_at, send_flags)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?)`,
        )
        .run(
          input.streamId, dsId, fromGuid === null ? 'full' : 'incremental', fromGuid, input.from?.name ?? null,
          idToText(input.to.guid, 'to guid'), input.to.name, u64ToText(input.to.createtxg, 'createtxg'), input.to.creation,
          input.plaintextSize, input.storedSize, input.volumeSize, input.partSize, input.startedAt.toISOString(), input.completedAt.toISOString(),
          sendFlagsText(input.sendFlags),
        );
      const ins = this.db.prepare(
        `INSERT INTO volumes (stream_id, volume_index, object_key, state, storage_class, stored_size, part_count, plaintext_size,
           plaintext_sha256, etag, started_at, uploaded_at) VALUES (?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const v of input.volumes) {
        ins.run(input.streamId, v.index, v.key, v.storageClass, v.storedSize, v.partCount, v.plaintextSize, v.plaintextSha256,
          etagText(v.etag), input.startedAt.toISOString(), v.uploadedAt.toISOString());
      }
      const problem = volumeSetProblem(this.volumes(input.streamId), input);
      if (problem) throw new ManifestError(`stream ${input.streamId} cannot be imported: ${problem}`, 'INCOMPLETE_STREAM');
      this.upsertSnapshots(this.stream(input.streamId)!);
      return true;
    }).immediate();
  }

  private requireStreamState(streamId: string, state: StreamRow['state']): StreamRow {
    const s = this.stream(streamId);
    if (!s) throw new ManifestError(`unknown stream ${streamId}`, 'UNKNOWN_STREAM');
    if (s.state !== state) throw new ManifestError(`stream ${streamId} is ${s.state}, not ${state}`, 'BAD_STATE');
    return s;
  }

  // ------------------------------------------------------------------ queries

  /** One stream, or null. */
  stream(streamId: string): StreamRow | null {
    const r = this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE s.stream_id = ?`).get(streamId) as StreamDbRow | undefined;
    return r ? toStream(r) : null;
  }

  /** Streams in any state, of one dataset or all, in start order. */
  streams(dataset?: string): StreamRow[] {
    const rows = (
      dataset === undefined
        ? this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} ORDER BY s.started_at, s.stream_id`).all()
        : this.db.prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? ORDER BY s.started_at, s.stream_id`).all(dataset)
    ) as StreamDbRow[];
    return rows.map(toStream);
  }

  private completeStreams(dataset: string): StreamRow[] {
    const rows = this.db
      .prepare(`SELECT ${STREAM_COLUMNS} FROM ${STREAM_FROM} WHERE d.name = ? AND s.state = 'complete'`)
      .all(dataset) as StreamDbRow[];
    return rows.map(toStream);
  }

  private volume(streamId: string, index: number): VolumeRow | null {
    const r = this.db.prepare('SELECT * FROM volumes WHERE stream_id = ? AND volume_index = ?').get(streamId, index) as VolumeDbRow | undefined;
    return r ? toVolume(r) : null;
  }

  /** Volumes of a stream, by index. */
  volumes(streamId: string): VolumeRow[] {
    const rows = this.db.prepare('SELECT * FROM volumes WHERE stream_id = ? ORDER BY volume_index').all(streamId) as VolumeDbRow[];
    return rows.map(toVolume);
  }

  /**
   * The newest snapshot (highest createtxg) that a complete stream of
   * `dataset` ends at: the base for the next incremental. Null if none.
   */
  lastPushedSnapshot(dataset: string): SnapshotRow | null {
    // createtxg is decimal TEXT: order by length first to compare numerically.
    const r = this.db
      .prepare(
        `SELECT s.to_name, s.to_guid, s.to_createtxg, s.to_creation FROM ${STREAM_FROM}
         WHERE d.name = ? AND s.state = 'complete' ORDER BY length(s.to_createtxg) DESC, s.to_createtxg DESC LIMIT 1`,
      )
      .get(dataset) as { to_name: string; to_guid: string; to_createtxg: string; to_creation: number } | undefined;
    return r ? { dataset, name: r.to_name, guid: textToId(r.to_guid), createtxg: textToU64(r.to_createtxg), creation: r.to_creation } : null;
  }

  /**
   * The streams of `dataset` that can restore something: complete streams,
   * and superseded streams still wholly in the store (every volume
   * complete) that a full stream among them still leads to. The one
   * definition shared by `chainFor`, `unneededObjects` and retention (which
   * snapshots are pushed, which may be kept), so a snapshot retention keeps
   * is exactly one restore can reach.
   */
  restorableStreams(dataset: string): StreamRow[] {
    const candidates = this.streams(dataset).filter((s) => {
      if (s.state === 'complete') return true;
      if (s.state !== 'superseded') return false;
      const vols = this.volumes(s.streamId);
      return vols.length > 0 && vols.every((v) => v.state === 'complete');
    });
    // A superseded incremental whose base chain lost objects restores nothing.
    // (Complete streams always stay, so a broken chain is reported as such.)
    const reached = bestChains(candidates);
    return candidates.filter((s) => s.state === 'complete' || s.from === null || reached.has(s.from.guid));
  }

  /**
   * The chain restoring `target`: over complete streams when they reach it
   * (after consolidation: the new full), else over the restorable streams
   * (an older snapshot reachable only through a superseded chain still
   * wholly stored). Throws the error of the wider resolution.
   */
  private resolveRestorable(dataset: string, target: bigint, complete: readonly StreamRow[], restorable: readonly StreamRow[], best?: ReturnType<typeof bestChains>): StreamRow[] {
    try {
      return resolveChain(dataset, complete, target);
    } catch {
      return resolveChain(dataset, restorable, target, best);
    }
  }

  /**
   * The streams (with volumes) that restore `snapshotGuid` (default: the
   * last pushed snapshot), full first, each incremental's base equal to the
   * previous link's target. Complete streams are preferred; a snapshot they
   * do not reach resolves through superseded streams still wholly stored
   * (see `restorableStreams`). Throws SnapshotNotPushedError, or
   * BrokenChainError naming the missing base snapshot.
   */
  chainFor(dataset: string, snapshotGuid?: bigint, opts: { includeDamaged?: boolean } = {}): StreamWithVolumes[] {
    const target = snapshotGuid ?? this.lastPushedSnapshot(dataset)?.guid;
    if (target === undefined) throw new SnapshotNotPushedError(dataset);
    const complete = this.completeStreams(dataset);
    const restorable = this.restorableStreams(dataset);
    const damaged = opts.includeDamaged ? new Set<string>() : this.damagedStreamIds(dataset);
    const chain = this.resolveHealthy(dataset, target, complete, restorable, damaged);
    return chain.map((s) => ({ ...s, volumes: this.volumes(s.streamId) }));
  }

  /**
   * `resolveRestorable` over the streams without a damaged volume. When only
   * a chain through damaged streams reaches `target`, DamagedChainError names
   * the damaged objects of that chain; other failures are thrown as they are.
   */
  private resolveHealthy(
    dataset: string,
    target: bigint,
    complete: readonly StreamRow[],
    restorable: readonly StreamRow[],
    damaged: ReadonlySet<string>,
    best?: ReturnType<typeof bestChains>,
  ): StreamRow[] {
    if (damaged.size === 0) return this.resolveRestorable(dataset, target, complete, restorable, best);
    const healthy = (s: StreamRow): boolean => !damaged.has(s.streamId);
    try {
      return this.resolveRestorable(dataset, target, complete.filter(healthy), restorable.filter(healthy));
    } catch (err) {
      let through: StreamRow[];
      try {
        through = this.resolveRestorable(dataset, target, complete, restorable, best);
      } catch {
        throw err;
      }
      const ids = new Set(through.map((s) => s.streamId));
      const objects = this.damagedObjects(dataset).filter((o) => o.volumeIndex !== null && ids.has(o.streamId));
      const name = through[through.length - 1]!.to.name;
      throw new DamagedChainError(dataset, name, objects.map((o) => ({ key: o.key, snapshot: o.snapshot, problem: o.problem })));
    }
  }

  /**
   * Volumes no chain of a kept snapshot needs: deletion candidates.
   * `keepSnapshotGuids` holds decimal guids; the last pushed snapshot of every
   * dataset is always kept as well. Kept guids the manifest does not know
   * are ignored. Every kept snapshot's chain is the one `chainFor` returns
   * (complete streams preferred, else superseded streams still wholly
   * stored), so what is kept is exactly what a restore reads. Only objects of
   * complete, superseded or abandoned streams that exist in the store
   * (volume state complete) are returned; uploading streams are never
   * touched. Throws BrokenChainError if a kept snapshot's chain is broken
   * (deciding deletions then would be guesswork).
   */
  unneededObjects(keepSnapshotGuids: Set<string>): UnneededObject[] {
    const needed = new Set<string>();
    for (const ds of this.datasets()) {
      const complete = this.completeStreams(ds.name);
      const restorable = this.restorableStreams(ds.name);
      const best = bestChains(restorable);
      const damaged = this.damagedStreamIds(ds.name);
      const targets = new Set<bigint>();
      const last = this.lastPushedSnapshot(ds.name);
      if (last) targets.add(last.guid);
      for (const s of restorable) if (keepSnapshotGuids.has(s.to.guid.toString())) targets.add(s.to.guid);
      for (const t of targets) {
        // The chain a restore reads (healthy streams preferred); a snapshot only a damaged chain
        // reaches keeps that chain (the damage may be repaired), never guesses.
        let chain: StreamRow[];
        try {
          chain = this.resolveHealthy(ds.name, t, complete, restorable, damaged, best);
        } catch (err) {
          if (!(err instanceof DamagedChainError)) throw err;
          chain = this.resolveRestorable(ds.name, t, complete, restorable, best);
        }
        for (const s of chain) needed.add(s.streamId);
      }
    }
    const rows = this.db
      .prepare(
        `SELECT v.object_key, v.stream_id, d.name AS dataset, s.state AS stream_state, v.stored_size, v.storage_class, v.uploaded_at
         FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
         WHERE v.state = 'complete' AND s.state IN ('complete', 'superseded', 'abandoned')
         ORDER BY v.object_key`,
      )
      .all() as {
      object_key: string;
      stream_id: string;
      dataset: string;
      stream_state: StreamRow['state'];
      stored_size: number | null;
      storage_class: string;
      uploaded_at: string | null;
    }[];
    return rows
      .filter((r) => !needed.has(r.stream_id))
      .map((r) => ({
        key: r.object_key,
        streamId: r.stream_id,
        dataset: r.dataset,
        streamState: r.stream_state,
        storedSize: r.stored_size,
        storageClass: r.storage_class,
        uploadedAt: d(r.uploaded_at),
      }));
  }

  /** Multipart uploads the manifest knows to be open (to resume, or abort when abandoned). */
  inFlightUploads(): InFlightUpload[] {
    const rows = this.db
      .prepare(
        `SELECT v.stream_id, d.name AS dataset, s.state AS stream_state, v.volume_index, v.object_key, v.upload_id, v.storage_class, v.started_at
         FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
         WHERE v.upload_id IS NOT NULL AND v.state = 'uploading' ORDER BY v.object_key`,
      )
      .all() as {
      stream_id: string;
      dataset: string;
      stream_state: StreamRow['state'];
      volume_index: number;
      object_key: string;
      upload_id: string;
      storage_class: string;
      started_at: string;
    }[];
    return rows.map((r) => ({
      streamId: r.stream_id,
      dataset: r.dataset,
      streamState: r.stream_state,
      volumeIndex: r.volume_index,
      key: r.object_key,
      uploadId: r.upload_id,
      storageClass: r.storage_class,
      startedAt: d(r.started_at),
    }));
  }

  // ------------------------------------------------------------ consolidation

  /**
   * Mark complete streams superseded (replaced by consolidation). Rolled back
   * with LAST_SNAPSHOT_UNRESTORABLE if afterwards the last pushed snapshot of
   * an affected dataset would no longer resolve to a chain.
   */
  markSuperseded(streamIds: readonly string[], at?: Date): void {
    this.db.transaction(() => {
      const touched = new Set<string>();
      for (const id of streamIds) {
        const s = this.requireStreamState(id, 'complete');
        this.db.prepare(`UPDATE streams SET state = 'superseded', superseded_at = ? WHERE stream_id = ?`).run(this.iso(at), id);
        touched.add(s.dataset);
      }
      for (const ds of touched) {
        const last = this.lastPushedSnapshot(ds);
        try {
          if (!last) throw new SnapshotNotPushedError(ds);
          resolveChain(ds, this.completeStreams(ds), last.guid);
        } catch (err) {
          throw new ManifestError(
            `refusing to supersede: ${ds} would have no restorable latest snapshot (${(err as Error).message})`,
            'LAST_SNAPSHOT_UNRESTORABLE',
          );
        }
      }
      this.insertEvent('streams-superseded', null, { streamIds: [...streamIds] });
    }).immediate();
  }

  /**
   * Objects were deleted from the store. A stream whose volumes are all gone
   * becomes `deleted`. Unknown keys are ignored.
   */
  markVolumesDeleted(keys: readonly string[], at?: Date): void {
    const when = this.iso(at);
    this.db.transaction(() => {
      const streams = new Set<string>();
      for (const key of keys) {
        const v = this.db.prepare('SELECT stream_id FROM volumes WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
        if (!v) continue;
        this.db.prepare(`UPDATE volumes SET state = 'deleted', deleted_at = ?, upload_id = NULL WHERE object_key = ?`).run(when, key);
        streams.add(v.stream_id);
      }
      for (const id of streams) {
        const left = this.db.prepare(`SELECT count(*) AS n FROM volumes WHERE stream_id = ? AND state NOT IN ('deleted', 'aborted')`).get(id) as { n: number };
        if (left.n === 0) this.db.prepare(`UPDATE streams SET state = 'deleted' WHERE stream_id = ? AND state != 'uploading'`).run(id);
      }
      this.insertEvent('volumes-deleted', null, { count: keys.length });
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
    const when = this.iso(at);
    const missing: { streamId: string; dataset: string; key: string; streamState: StreamRow['state'] }[] = [];
    this.db.transaction(() => {
      const rows = this.db
        .prepare(
          `SELECT v.object_key, v.stream_id, d.name AS dataset FROM volumes v JOIN streams s ON s.stream_id = v.stream_id JOIN datasets d ON d.id = s.dataset_id
           WHERE v.state = 'complete' AND s.state IN ('complete', 'superseded', 'abandoned') ORDER BY v.object_key`,
        )
        .all() as { object_key: string; stream_id: string; dataset: string }[];
      const gone = rows.filter((r) => !stored(r.object_key));
      const touched = new Set<string>();
      for (const r of gone) {
        this.db.prepare(`UPDATE volumes SET state = 'deleted', deleted_at = ?, upload_id = NULL WHERE object_key = ?`).run(when, r.object_key);
        touched.add(r.stream_id);
      }
      for (const id of touched) {
        const left = this.db.prepare(`SELECT count(*) AS n FROM volumes WHERE stream_id = ? AND state NOT IN ('deleted', 'aborted')`).get(id) as { n: number };
        if (left.n === 0) this.db.prepare(`UPDATE streams SET state = 'deleted' WHERE stream_id = ?`).run(id);
        else this.db.prepare(`UPDATE streams SET state = 'superseded', superseded_at = coalesce(superseded_at, ?) WHERE stream_id = ? AND state = 'complete'`).run(when, id);
      }
      for (const r of gone) missing.push({ streamId: r.stream_id, dataset: r.dataset, key: r.object_key, streamState: this.stream(r.stream_id)!.state });
      if (gone.length > 0) this.insertEvent('volumes-missing', null, { count: gone.length, streams: touched.size });
    }).immediate();
    return missing;
  }

  // ------------------------------------------------------------------ damage

  /**
   * Record that the object at `key` (a volume or a stream record the manifest
   * knows) is damaged: missing, replaced, failing authentication. Replaces an
   * earlier record of the same key. BAD_INPUT for a key the manifest does not know.
   */
  recordDamage(input: { key: string; problem: string; foundBy: DamageSource; etagSeen?: string | null; kind?: DamageKind; at?: Date }): void {
    const streamId = this.streamOfKey(input.key);
    if (!streamId) throw new ManifestError(`${input.key} is not an object of a stream this manifest knows`, 'BAD_INPUT');
    this.db.transaction(() => {
      const prev = this.db.prepare('SELECT problem, found_by FROM damage WHERE object_key = ?').get(input.key) as { problem: string; found_by: string } | undefined;
      this.db
        .prepare(
          `INSERT INTO damage (object_key, stream_id, problem, found_by, found_at, etag_seen, kind) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (object_key) DO UPDATE SET problem = excluded.problem, found_by = excluded.found_by,
             found_at = excluded.found_at, etag_seen = excluded.etag_seen, kind = excluded.kind`,
        )
        .run(input.key, streamId, input.problem, input.foundBy, this.iso(input.at), input.etagSeen ?? null, input.kind ?? 'bad');
      if (prev?.problem !== input.problem || prev.found_by !== input.foundBy) {
        const s = this.stream(streamId)!;
        this.insertEvent('object-damaged', s.dataset, { key: input.key, problem: input.problem, foundBy: input.foundBy });
      }
    }).immediate();
  }

  /** Forget the damage recorded for `key` (it was found intact again). True when there was a record. */
  clearDamage(key: string): boolean {
    return this.db.transaction((): boolean => {
      const row = this.db.prepare('SELECT stream_id FROM damage WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
      if (!row) return false;
      this.db.prepare('DELETE FROM damage WHERE object_key = ?').run(key);
      this.insertEvent('object-damage-cleared', this.stream(row.stream_id)?.dataset ?? null, { key });
      return true;
    }).immediate();
  }

  /**
   * Damage recorded for objects still in the store as far as the manifest
   * knows (volumes not deleted or aborted, stream records of streams not
   * deleted), of `dataset` or all, by key.
   */
  damagedObjects(dataset?: string): DamageRow[] {
    const rows = this.db
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
  private damagedStreamIds(dataset: string): Set<string> {
    return new Set(this.damagedVolumes(dataset).filter((o) => o.kind === 'bad').map((o) => o.streamId));
  }

  /** The stream an object key belongs to, when the manifest knows it. */
  private streamOfKey(key: string): string | null {
    const vol = this.db.prepare('SELECT stream_id FROM volumes WHERE object_key = ?').get(key) as { stream_id: string } | undefined;
    if (vol) return vol.stream_id;
    const m = /^streams\/([0-9a-f]{32})\.zbks$/.exec(key);
    return m && key === streamRecordKey(m[1]!) && this.stream(m[1]!) ? m[1]! : null;
  }

  // ------------------------------------------------------------------ events

  private insertEvent(kind: string, dataset: string | null, detail: unknown): void {
    this.db.prepare('INSERT INTO events (at, kind, dataset, detail) VALUES (?, ?, ?, ?)').run(this.iso(), kind, dataset, jsonText(detail));
  }

  /** Append to the event log. `detail` is JSON; never put secrets in it. */
  logEvent(kind: string, dataset: string | null, detail: unknown): void {
    this.db.transaction(() => this.insertEvent(kind, dataset, detail)).immediate();
  }

  /** The newest `limit` events, newest first. */
  events(limit = 100): EventRow[] {
    const rows = this.db.prepare('SELECT id, at, kind, dataset, detail FROM events ORDER BY id DESC LIMIT ?').all(limit) as {
      id: number;
      at: string;
      kind: string;
      dataset: string | null;
      detail: string;
    }[];
    return rows.map((r) => ({ id: r.id, at: d(r.at), kind: r.kind, dataset: r.dataset, detail: JSON.parse(r.detail) as unknown }));
  }

  /** The newest `limit` events of `kind`, newest first (e.g. the last `verified`, however many other events came since). */
  eventsOfKind(kind: string, limit = 100): EventRow[] {
    const rows = this.db.prepare('SELECT id, at, kind, dataset, detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?').all(kind, limit) as {
      id: number;
      at: string;
      kind: string;
      dataset: string | null;
      detail: string;
    }[];
    return rows.map((r) => ({ id: r.id, at: d(r.at), kind: r.kind, dataset: r.dataset, detail: JSON.parse(r.detail) as unknown }));
  }

  // ---------------------------------------------------------------------- kv

  /** Read a JSON value from the generic key/value table (later features: restore plans). */
  getValue(key: string): unknown {
    const r = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as unknown) : undefined;
  }

  /** Write (or with `undefined`, delete) a JSON value in the key/value table. */
  setValue(key: string, value: unknown): void {
    this.db.transaction(() => {
      if (value === undefined) this.db.prepare('DELETE FROM kv WHERE key = ?').run(key);
      else {
        this.db
          .prepare('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at')
          .run(key, jsonText(value), this.iso());
      }
    }).immediate();
  }

  // --------------------------------------------------------------- integrity

  /** SQLite integrity_check + foreign_key_check + zbk invariants. */
  integrityCheck(): IntegrityReport {
    const problems: string[] = [];
    const ic = (this.db.pragma('integrity_check') as Record<string, unknown>[]).map((r) => String(Object.values(r)[0]));
    if (!(ic.length === 1 && ic[0] === 'ok')) problems.push(...ic.map((m) => `integrity_check: ${m}`));
    if (problems.length > 0) return { ok: false, problems };
    for (const fk of this.db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]) {
      problems.push(`foreign key: ${fk.table} row ${fk.rowid} references a missing ${fk.parent}`);
    }
    for (const s of this.streams()) {
      const vols = this.volumes(s.streamId);
      for (const v of vols) {
        if (v.key !== volumeKey(s.streamId, v.volumeIndex)) problems.push(`volume ${v.key} does not match stream ${s.streamId} index ${v.volumeIndex}`);
      }
      // Superseded streams may be partly deleted mid-consolidation: only complete ones must be whole.
      if (s.state === 'complete') {
        const problem = volumeSetProblem(vols, { plaintextSize: s.plaintextSize ?? -1, storedSize: s.storedSize ?? -1 });
        if (problem) problems.push(`stream ${s.streamId} (${s.dataset}, ${s.state}): ${problem}`);
      }
    }
    const strayParts = this.db
      .prepare(`SELECT count(*) AS n FROM upload_parts p JOIN volumes v USING (stream_id, volume_index) WHERE v.state != 'uploading'`)
      .get() as { n: number };
    if (strayParts.n > 0) problems.push(`${strayParts.n} part checkpoints belong to volumes that are not uploading`);
    const multi = this.db
      .prepare(`SELECT d.name, count(*) AS n FROM ${STREAM_FROM} WHERE s.state = 'uploading' GROUP BY d.name HAVING n > 1`)
      .all() as { name: string; n: number }[];
    for (const m of multi) problems.push(`${m.name} has ${m.n} uploading streams`);
    for (const ds of this.datasets()) {
      const last = this.lastPushedSnapshot(ds.name);
      if (!last) continue;
      try {
        resolveChain(ds.name, this.completeStreams(ds.name), last.guid);
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
    const image = this.db.serialize();
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

/** An ETag as stored: without quotes, null when absent or empty. */
function etagText(etag: string | null | undefined): string | null {
  if (etag === null || etag === undefined) return null;
  const t = etag.replace(/"/g, '');
  return t === '' ? null : t;
}

/** JSON with bigints (guids) as decimal strings. */
function jsonText(value: unknown): string {
  return JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Why a stream's volumes do not form a complete set for `totals`, or null. */
function volumeSetProblem(vols: readonly VolumeRow[], totals: { plaintextSize: number; storedSize: number }): string | null {
  if (vols.length === 0) return 'it has no volumes';
  let plain = 0;
  let stored = 0;
  for (let i = 0; i < vols.length; i++) {
    const v = vols[i]!;
    if (v.volumeIndex !== i) return `volume ${i} is missing`;
    if (v.state !== 'complete') return `volume ${i} is ${v.state}`;
    plain += v.plaintextSize ?? 0;
    stored += v.storedSize ?? 0;
  }
  if (plain !== totals.plaintextSize) return `volumes hold ${plain} plaintext bytes, the stream ${totals.plaintextSize}`;
  if (stored !== totals.storedSize) return `volumes hold ${stored} stored bytes, the stream ${totals.storedSize}`;
  return null;
}
