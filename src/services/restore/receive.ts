/**
 * `zfs receive` of a restore's streams from their staged files, in chain
 * order, once every volume of the next stream is staged; and what follows any
 * receive, this one or a live one (./live-receive.ts): the snapshot checked by
 * guid and recorded, the staged files dropped. A staged file that fails
 * authentication while being received is found and kept aside (quarantine),
 * so the next run fetches only the damaged part again.
 */
import { copyFile, rename, rm, rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sealedPartSize } from '../../crypto/index.js';
import { IntegrityError } from '../../errors.js';
import { openVolumeFiles } from '../../pipeline/download.js';
import { clearMismatch } from './damage.js';
import { recordOf, type JobStream, type JobVolume } from './job.js';
import { removeStaged, verifyOffline } from './staging.js';
import type { RestoreStep } from './step.js';
import { receiveFlags, targetPort } from './target.js';

/** Receive every stream, in chain order, whose volumes are all staged. */
export async function receiveReady(step: RestoreStep): Promise<void> {
  const port = targetPort(step);
  for (let si = 0; si < step.job.streams.length; si++) {
    const s = step.job.streams[si]!;
    if (s.received) continue;
    const vols = step.job.volumes.filter((v) => v.streamId === s.streamId);
    if (!vols.every((v) => v.phase === 'staged')) return;
    step.checkAbort();
    const flags = await receiveFlags(step, si);
    const input = openVolumeFiles({
      keyring: step.keyring,
      opener: step.opener,
      streamId: Buffer.from(s.streamId, 'hex'),
      volumes: vols.map((v) => ({ record: recordOf(v), path: step.path(v) })),
      sealedSize: sealedPartSize,
    });
    step.ctx.log.info(`receiving @${s.to.name} into ${step.target}`);
    try {
      await port.receive(step, si, input, flags);
    } catch (err) {
      if (err instanceof IntegrityError) await quarantine(step, s, vols, err);
      throw explainReceiveFailure(step, err, si);
    }
    await finishReceive(step, s, vols);
  }
}

/** A receive's failure as the user should read it (./target-port.ts). */
export function explainReceiveFailure(step: RestoreStep, err: unknown, si: number): unknown {
  return targetPort(step).explainFailure(step, err, si);
}

/** After a receive of `s` succeeded: check the snapshot (and put it in place), record it, delete the staged files. */
export async function finishReceive(step: RestoreStep, s: JobStream, vols: JobVolume[]): Promise<void> {
  await targetPort(step).confirm(step, s);
  s.received = true;
  s.receivedAt = step.ctx.now().toISOString();
  for (const v of vols) {
    v.phase = 'received';
    clearMismatch(step.manifest, step.job.dataset, v.key); // authenticated and received: not damage
  }
  step.out.received.push(s.to.name);
  step.save();
  step.manifest.logEvent('restore-received', step.job.dataset, { target: step.target, snapshot: s.to.name, streamId: s.streamId });
  for (const v of vols) await removeStaged(step, v);
  await rmdir(dirname(step.path(vols[0]!))).catch(() => undefined);
}

/**
 * A staged file failed authentication during receive (zfs saw none of the
 * bad bytes: the receive was killed). Find which: each file is copied
 * aside, then verified in place (a bad part is fetched again on its own
 * when whole parts follow it, else the file is truncated there and the
 * rest fetched); copies of files that verify are dropped,
 * copies of bad ones are kept as `.bad`.
 */
async function quarantine(step: RestoreStep, s: JobStream, vols: JobVolume[], cause: IntegrityError): Promise<never> {
  const bad: string[] = [];
  for (const v of vols) {
    const path = step.path(v);
    const copy = `${path}.suspect`;
    await copyFile(path, copy);
    if (await verifyOffline(step, v, path)) {
      await rm(copy, { force: true });
      continue;
    }
    await rename(copy, `${path}.bad`);
    v.phase = 'downloading';
    v.lastError = `staged file failed authentication; kept as ${path}.bad`;
    bad.push(`${v.key} (kept as ${path}.bad)`);
    step.manifest.logEvent('restore-integrity', step.job.dataset, { key: v.key, staged: true });
  }
  step.save();
  if (bad.length === 0) throw cause;
  throw new IntegrityError(
    `staged data of @${s.to.name} failed authentication before zfs receive used it: ${bad.join(', ')}; the next "zbk restore run" fetches the damaged part again`,
    'STAGED_CORRUPT',
    { cause },
  );
}
