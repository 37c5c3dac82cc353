/**
 * The check before a restore's first request that costs money: every object
 * of the chain is HEADed once, so a missing object (or one of the wrong size)
 * is named, and recorded as damaged (./damage.ts), before anything is spent
 * on a chain that cannot be restored.
 */
import type { RestoreStep } from './step.js';

/** HEAD every volume not yet received or known damaged; then the job records that it was done. */
export async function preflight(step: RestoreStep): Promise<void> {
  for (const v of step.job.volumes) {
    if (v.phase === 'received' || v.phase === 'damaged') continue;
    step.checkAbort();
    const info = await step.headOrDamaged(v);
    if (!info) continue;
    if (info.size !== v.storedSize) step.damaged(v, `is ${info.size} bytes in the store, the manifest says ${v.storedSize}`, info.etag ?? null);
  }
  step.job.preflightDone = true;
  step.save();
}
