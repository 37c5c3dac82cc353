/**
 * What a restore says when it receives a stream again after an interrupted
 * `zfs receive` of it.
 *
 * OpenZFS can continue a receive cut off under `zfs receive -s`, but only
 * with the stream `zfs send -t <receive_resume_token>` makes on the source
 * pool. A restore from the bucket has only the stream as it was pushed, and
 * the source may be gone (that is why one restores), so the token could never
 * be used: zbk receives without `-s` (a cut receive is discarded by ZFS) and
 * feeds the stream again from its first byte, from the volumes already
 * staged or still readable, which costs no new thaw and no new egress for
 * what was staged.
 */
import type { Zfs } from '../../zfs/zfs.js';
import type { JobStream } from './job.js';

/** The note for `stream` about to be received into `target`, or null on its first attempt. */
export function receiveRestartNote(stream: JobStream, target: string, why: string): string | null {
  if (stream.received || !stream.receiveStartedAt) return null;
  return (
    `receiving @${stream.to.name} into ${target} again from its first byte: its earlier receive (${stream.receiveStartedAt}) was interrupted, ` +
    `and ${why}; the stream is read again from staged volumes`
  );
}

/** Record that the receive of `stream` starts now (kept in the job, so a later run knows). */
export function markReceiveStarted(stream: JobStream, now: Date): void {
  stream.receiveStartedAt ??= now.toISOString();
}

/**
 * What to say when the finished restore's target cannot be mounted. A raw
 * stream of a natively encrypted dataset arrives still locked: the user's
 * own ZFS key opens it, and zbk says how instead of a bare mount error.
 */
export async function mountAdvice(zfs: Pick<Zfs, 'isEncrypted' | 'getProperties'>, target: string, err: unknown): Promise<string> {
  const why = err instanceof Error ? err.message : String(err);
  const locked = await zfs
    .isEncrypted(target)
    .then(async (enc) => enc && (await zfs.getProperties(target, ['keystatus'])).get('keystatus') !== 'available')
    .catch(() => false);
  if (locked) {
    return `${target} is restored, still natively encrypted (the backup was a raw send): open it with "zfs load-key ${target}" and its original ZFS key, then "zfs mount ${target}"`;
  }
  return `could not mount ${target}: ${why}`;
}
