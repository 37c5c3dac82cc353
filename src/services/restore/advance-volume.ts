/**
 * One volume's next move in the restore state machine, decided from what is
 * staged on disk and what the store says of the object now (the step's
 * listing of restore states, or a HEAD: ./poll.ts): verify what is
 * staged, wait for its request time, request a thaw (within the allowance,
 * ./thaw.ts), wait for a running one, or download it within the month's
 * egress (./egress.ts, ./staging.ts). The job is saved after each change, so
 * a crash at any point leaves a state the next run continues from.
 */
import { existsSync } from 'node:fs';
import type { PlaintextSink } from '../../pipeline/download.js';
import { mayDownload, unmetered } from './egress.js';
import type { JobVolume } from './job.js';
import { pollOf } from './poll.js';
import { download, verifyOffline } from './staging.js';
import type { RestoreStep } from './step.js';
import { beforeRequestTime, deferThaw, keepCopy, mayRequest, requestRestore } from './thaw.js';

/** Take `v` as far as this run can; `sink` feeds its parts to a live receive (./live-receive.ts). */
export async function advanceVolume(step: RestoreStep, v: JobVolume, sink?: PlaintextSink): Promise<void> {
  const path = step.path(v);
  // A volume still waiting (thaw running, download not allowed yet) is saved only when that changed:
  // a poll of thousands of volumes writes the job once, not once per volume.
  const was = { phase: v.phase, expiry: v.restoreExpiry };
  const saveIfChanged = (): void => {
    if (v.phase !== was.phase || v.restoreExpiry !== was.expiry) step.save();
  };
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
  if (beforeRequestTime(step, v)) {
    if (v.phase !== 'downloading') v.phase = 'scheduled';
    return;
  }
  const info = await pollOf(step).stateOf(v);
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
      saveIfChanged();
      return;
    case 'archived': {
      // Every thaw is checked against the month's cap, also one on its plan's schedule: each
      // plan was made as if it had the allowance to itself.
      if (!asap && !(await mayRequest(step, v, path))) {
        deferThaw(step, v);
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
    saveIfChanged();
    return;
  }
  await download(step, v, path, sink);
}
