/**
 * Multipart staging as the manifest knows it: the parts acknowledged in
 * uploads not yet completed. AWS bills them ("S3 Glacier Deep Archive
 * Staging Storage") at S3 Standard storage rates until the upload is
 * completed or aborted (src/cost/prices.ts, `archiveStagingClass`).
 * `zbk status` shows it per in-flight upload, `zbk cost` in total; both
 * count it here.
 */
import { stagingRate, type StagingRate } from '../cost/model.js';
import type { PriceTable } from '../cost/prices.js';
import type { Manifest } from '../manifest/manifest.js';
import type { InFlightUpload } from '../manifest/types.js';
import { costClass } from './consolidate/schedule.js';

export interface UploadStaging extends StagingRate {
  /** Parts checkpointed so far. */
  parts: number;
}

/** The parts of `upload` acknowledged so far (sealed bytes, as stored) and what they cost per month, day and hour. */
export function uploadStaging(manifest: Manifest, upload: InFlightUpload, prices: PriceTable): UploadStaging {
  const parts = manifest.partsOf(upload.streamId, upload.volumeIndex);
  const bytes = parts.reduce((n, p) => n + p.sealedSize, 0);
  return { parts: parts.length, ...stagingRate(bytes, prices, costClass(upload.storageClass)) };
}

/** The sum of several uploads' staging. */
export function totalStaging(list: readonly UploadStaging[]): UploadStaging {
  const sum: UploadStaging = { parts: 0, bytes: 0, monthly: 0, daily: 0, hourly: 0 };
  for (const s of list) {
    sum.parts += s.parts;
    sum.bytes += s.bytes;
    sum.monthly += s.monthly;
    sum.daily += s.daily;
    sum.hourly += s.hourly;
  }
  return sum;
}
