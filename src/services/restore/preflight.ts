/**
 * The check before a restore's first request that costs money: every object
 * of the chain is looked at once — in the step's listing (./poll.ts: one
 * LIST per 1,000 objects), or with a HEAD where the store cannot list or
 * the listing lacks it — so a missing object (or one of the wrong size) is
 * named, and recorded as damaged (./damage.ts), before anything is spent on
 * a chain that cannot be restored.
 */
import { pollOf } from './poll.js';
import type { RestoreStep } from './step.js';

/** Look at every volume not yet received or known damaged; then the job records that it was done. */
export async function preflight(step: RestoreStep): Promise<void> {
  const poll = pollOf(step);
  const vols = step.job.volumes.filter((v) => v.phase !== 'received' && v.phase !== 'damaged');
  // Not in a listing: HEAD (in parallel); a missing object is damaged there.
  await poll.resolve(vols.filter((v) => !poll.listed(v)));
  for (const v of vols) {
    if (v.phase === 'damaged') continue;
    step.checkAbort();
    const size = poll.listed(v)?.size;
    if (size === undefined || size === v.storedSize) continue;
    const etag = await step.ctx.store.head(v.key).then(
      (i) => i.etag ?? null,
      () => null,
    );
    step.damaged(v, `is ${size} bytes in the store, the manifest says ${v.storedSize}`, etag);
  }
  step.job.preflightDone = true;
  step.save();
}
