/**
 * One volume's next move in the restore state machine, decided from what is
 * staged on disk and what HEAD says of the object now: verify what is
 * staged, wait for its request time, request a thaw (within the allowance,
 * ./thaw.ts), wait for a running one, or download it within the month's
 * egress (./egress.ts, ./staging.ts). The job is saved after each change, so
 * a crash at any point leaves a state the next run continues from.
 */
import { existsSync } from 'node:fs';
import { addDays } from '../../cost/model.js';
import type { PlaintextSink } from '../../pipeline/download.js';
import { mayDownload, unmetered } from './egress.js';
import type { JobVolume } from './job.js';
import { download, verifyOffline } from './staging.js';
import type { RestoreStep } from './step.js';
import { keepCopy, LEAD_DAYS, mayRequest, requestRestore } from './thaw.js';

/** Take `v` as far as this run can; `sink` feeds its parts to a live receive (./live-receive.ts). */
export async function advanceVolume(step: RestoreStep, v: JobVolume, sink?: PlaintextSink): Promise<void> {
  const path = step.path(v);
  if (v.phase === 'staged' && existsSync(path) && !sink) return;
  if (existsSync(path) || existsSync(`${path}.partial`)) {
    if (await verifyOffline(step, v, path, sink)) {
      v.phase = 'staged';
      step.save();
      return;
    }
    v.phase = 'downloading';
  } else if (v.phase === 'staged' || v.phase === 'downloading') {
    v.phase = 'scheduled'; // the staged file vanished
  }
  const asap = unmetered(step);
  const month = step.planMonth(v);
  if (!asap && ((month && step.now.getTime() < Date.parse(month.requestAt)) || (v.notBefore && step.now.getTime() < Date.parse(v.notBefore)))) {
    if (v.phase !== 'downloading') v.phase = 'scheduled';
    return;
  }
  const info = await step.headOrDamaged(v);
  if (!info) return;
  let readable: boolean;
  switch (info.restore.state) {
    case 'not-archived':
      readable = true;
      break;
    case 'restored':
      v.restoreExpiry = info.restore.expiry.toISOString();
      readable = (await mayDownload(step, v, path)) ? await keepCopy(step, v, info.restore.expiry) : true;
      break;
    case 'in-progress':
      v.phase = 'restoring'; // a partial download stays on disk and is resumed
      step.save();
      return;
    case 'archived': {
      // Every thaw is checked against the month's cap, also one on its plan's schedule: each
      // plan was made as if it had the allowance to itself.
      if (!asap && !(await mayRequest(step, v, path))) {
        // The allowance of the month its copy would be
        // downloaded in is used up: a copy thawed now would expire unused, so
        // ask again just before the month after that one.
        const lead = LEAD_DAYS[step.job.options.tier];
        const d = addDays(step.now, lead);
        v.notBefore = addDays(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)), -lead).toISOString();
        if (v.phase !== 'downloading') v.phase = 'scheduled';
        step.save();
        return;
      }
      readable = await requestRestore(step, v);
      break;
    }
  }
  if (!readable) return;
  if (!(await mayDownload(step, v, path))) {
    if (v.phase !== 'downloading') v.phase = 'ready';
    step.save();
    return;
  }
  await download(step, v, path, sink);
}
