/**
 * Which unfinished multipart uploads are orphans, and which of them may be
 * aborted now. Parts of an unfinished upload are billed at Standard rates
 * until someone aborts it, so orphans must go — but only our own.
 *
 * - An upload the manifest records as in flight in a stream that is still
 *   `uploading` is resumable: not an orphan.
 * - Any other upload of a stream this manifest knows (a crash between
 *   CreateMultipartUpload and its checkpoint; an upload still recorded under
 *   an abandoned stream, which nothing will resume) is our orphan: abort it
 *   now (callers hold the manifest lock), and forget its id in the manifest.
 * - An upload of a stream this manifest does not know may belong to another
 *   machine pushing to the same repository: abort it only once it is older
 *   than `FOREIGN_GRACE_MS` (no upload of ours lives that long; the bucket's
 *   lifecycle rule is the last safety net).
 */
import { DATA_PREFIX, parseVolumeKey } from '../layout.js';
import type { Manifest } from '../manifest/manifest.js';
import type { MultipartUploadInfo, ObjectStore } from '../store/object-store.js';

export const FOREIGN_GRACE_MS = 48 * 3600 * 1000;

export interface OrphanUpload extends MultipartUploadInfo {
  /** `ours`: a stream of this manifest; `foreign`: unknown stream (another machine, or an old manifest). */
  owner: 'ours' | 'foreign';
  /** Safe to abort now. */
  abortable: boolean;
}

export async function findOrphanUploads(store: ObjectStore, manifest: Manifest, now: Date): Promise<OrphanUpload[]> {
  const inFlight = new Set(manifest.inFlightUploads().filter((u) => u.streamState === 'uploading').map((u) => u.uploadId));
  const out: OrphanUpload[] = [];
  for (const u of await store.listMultipartUploads(DATA_PREFIX)) {
    if (inFlight.has(u.uploadId)) continue;
    const parsed = parseVolumeKey(u.key);
    // One lookup per orphan (there are few), not every stream of the manifest read for each call.
    const ours = parsed !== null && manifest.stream(parsed.streamId) !== null;
    out.push({ ...u, owner: ours ? 'ours' : 'foreign', abortable: ours || now.getTime() - u.initiated.getTime() > FOREIGN_GRACE_MS });
  }
  return out;
}

/** Abort the abortable orphans; returns how many were aborted. Call under the manifest lock. */
export async function abortOrphanUploads(store: ObjectStore, manifest: Manifest, now: Date, by: string): Promise<{ aborted: number; waiting: number }> {
  let aborted = 0;
  let waiting = 0;
  for (const u of await findOrphanUploads(store, manifest, now)) {
    if (!u.abortable) {
      waiting++;
      continue;
    }
    await store.abortMultipartUpload(u.key, u.uploadId);
    manifest.recordUploadAborted(u.key, u.uploadId);
    manifest.logEvent('orphan-aborted', null, { key: u.key, owner: u.owner, initiated: u.initiated.toISOString(), by });
    aborted++;
  }
  return { aborted, waiting };
}
