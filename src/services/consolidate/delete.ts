/**
 * Deleting unneeded objects crash-safely.
 *
 * Order: (1) streams still `complete` are marked superseded (a complete
 * stream must be whole); (2) the batch is written to the manifest as a
 * pending deletion; (3) objects are deleted from the store; (4) the manifest
 * marks them deleted; (5) stream records of streams now wholly deleted
 * (recomputed from the manifest at this point, never taken from the
 * recorded batch alone) are deleted, so a rebuild from the bucket cannot
 * resurrect them; (6) the
 * pending entry is cleared. A process killed anywhere leaves the pending
 * entry, and the next run finishes it before doing anything else, so the
 * manifest never keeps claiming an object the store no longer has.
 */
import { ManifestError } from '../../errors.js';
import { KEY_FILE_KEY, streamRecordKey } from '../../layout.js';
import type { Manifest } from '../../manifest/manifest.js';
import { NotFoundError, PermanentStoreError } from '../../store/errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { crashPoint } from '../crash-point.js';
import type { ScheduledDeletion } from './schedule.js';

/** Manifest kv key of an unfinished deletion batch. */
export const PENDING_DELETE_KEY = 'consolidate:pending-delete';

interface PendingDelete {
  keys: string[];
  records: string[];
  at: string;
}

function isPending(v: unknown): v is PendingDelete {
  const p = v as PendingDelete | null;
  return !!p && Array.isArray(p.keys) && Array.isArray(p.records) && p.keys.every((k) => typeof k === 'string') && p.records.every((k) => typeof k === 'string');
}

/**
 * The stream records among `candidates` whose streams the manifest now has
 * wholly deleted (every volume deleted or aborted). Recomputed after the
 * volumes are marked: a batch finished later may have kept some of its keys
 * (retention grew meanwhile), and a stream whose volumes stay must keep its
 * record, or a rebuild from the bucket could not place them. Records of
 * streams the manifest does not know are never deleted.
 */
function recordsOfGoneStreams(manifest: Manifest, candidates: readonly string[]): string[] {
  const wanted = new Set(candidates);
  return manifest
    .streams()
    .filter((s) => wanted.has(streamRecordKey(s.streamId)))
    .filter((s) => manifest.volumes(s.streamId).every((v) => v.state === 'deleted' || v.state === 'aborted'))
    .map((s) => streamRecordKey(s.streamId));
}

/** Steps (3)–(6) for a recorded batch. */
async function carryOut(manifest: Manifest, store: ObjectStore, batch: PendingDelete, now: Date): Promise<void> {
  if (batch.keys.length > 0) await store.deleteMany(batch.keys);
  crashPoint('consolidate-objects-deleted');
  manifest.markVolumesDeleted(batch.keys, now);
  crashPoint('consolidate-volumes-marked');
  const records = recordsOfGoneStreams(manifest, batch.records);
  if (records.length > 0) await store.deleteMany(records);
  crashPoint('consolidate-records-deleted');
  manifest.setValue(PENDING_DELETE_KEY, undefined);
}

/**
 * Throws unless `store` answers for this repository (its key file HEADs
 * fine), so that a NotFound for a volume means the volume is gone, not that
 * the store is misconfigured. Nothing is recorded when it throws.
 */
async function requireRepositoryAnswers(store: ObjectStore): Promise<void> {
  try {
    await store.head(KEY_FILE_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) {
      // A HEAD 404 has no body; a listing names the cause (NoSuchBucket) where there is one.
      for await (const e of store.list('')) {
        void e;
        break;
      }
      throw new PermanentStoreError(
        `the store at ${store.url} does not hold this repository (key file ${KEY_FILE_KEY} not found): check the bucket, prefix and endpoint; ` +
          'the pending deletion was left as it is, nothing recorded',
        'NO_REPOSITORY_IN_STORE',
      );
    }
    throw err;
  }
}

/**
 * Finish a deletion batch an earlier run left unfinished. Keys that are
 * still unneeded (`stillUnneeded`) are deleted again (idempotent); a key
 * something now needs (retention changed meanwhile) is deleted from nothing:
 * it is marked deleted only if the store no longer has it — and "no longer
 * has it" is believed only when the store answers for the repository (its
 * key file is there), else this throws and records nothing. Returns the keys
 * finished.
 */
export async function finishPendingDeletion(manifest: Manifest, store: ObjectStore, stillUnneeded: ReadonlySet<string>, now: Date): Promise<string[]> {
  const raw = manifest.getValue(PENDING_DELETE_KEY);
  if (raw === undefined) return [];
  if (!isPending(raw)) throw new ManifestError(`the pending deletion record (${PENDING_DELETE_KEY}) is malformed`, 'PENDING_DELETE');
  // A missing bucket, a wrong prefix or endpoint also answers HEAD with a
  // bare 404: only a store that holds this repository may say "gone".
  if (raw.keys.length > 0) await requireRepositoryAnswers(store);
  const keys: string[] = [];
  for (const k of raw.keys) {
    if (stillUnneeded.has(k)) keys.push(k);
    else {
      const gone = await store.head(k).then(
        () => false,
        (err: unknown) => {
          if (err instanceof NotFoundError) return true;
          throw err;
        },
      );
      if (gone) keys.push(k);
    }
  }
  await carryOut(manifest, store, { ...raw, keys }, now);
  return keys;
}

/** Delete `items` (already checked to be unneeded and due) with steps (1)–(6). */
export async function deleteUnneeded(manifest: Manifest, store: ObjectStore, items: readonly ScheduledDeletion[], now: Date): Promise<void> {
  if (items.length === 0) return;
  const keys = new Set(items.map((i) => i.key));
  const streamIds = [...new Set(items.map((i) => i.streamId))];
  const stillComplete = streamIds.filter((id) => manifest.stream(id)?.state === 'complete');
  if (stillComplete.length > 0) manifest.markSuperseded(stillComplete, now);
  const records = streamIds
    .filter((id) => manifest.volumes(id).every((v) => v.state === 'deleted' || v.state === 'aborted' || keys.has(v.key)))
    .map(streamRecordKey);
  manifest.setValue(PENDING_DELETE_KEY, { keys: [...keys], records, at: now.toISOString() } satisfies PendingDelete);
  crashPoint('consolidate-delete-recorded');
  await carryOut(manifest, store, { keys: [...keys], records, at: now.toISOString() }, now);
}
