/**
 * Test instrumentation for crash-safety tests: with `ZBK_CRASH_AT=name` (or
 * `name:n`), the process kills itself with SIGKILL the n-th time (default the
 * first) it reaches the named point — exactly like a power cut there. Unset
 * in normal use, where this is a no-op.
 *
 * Points, by where they are:
 * - push: `part-acked` (a part checkpointed), `volume-completed-in-store`
 *   (CompleteMultipartUpload verified, not yet recorded), `stream-record-written`,
 *   `stream-committed`, `holds-moved`, `holds-reconciled` (a run's holds made to
 *   match the manifest, before it resumes or sends), `target-prepared` (a new
 *   stream's target made sendable — on btrfs, pinned — before its stream row
 *   exists), `discard-uploads-aborted` (a discarded
 *   stream's uploads aborted in the store, the manifest not yet told).
 * - consolidate: `consolidate-intent-recorded`, `consolidate-verified`,
 *   `consolidate-superseded`, `consolidate-before-mirror`,
 *   `consolidate-objects-deleted`, `consolidate-volumes-marked`,
 *   `consolidate-records-deleted`, `consolidate-delete-recorded`.
 * - key passwd / key import: `key-next-confirmed` (zbk.key.next written and
 *   opened), `key-file-replaced` (zbk.key replaced, zbk.key.next not yet gone).
 */
const seen = new Map<string, number>();

export function crashPoint(name: string): void {
  const spec = process.env.ZBK_CRASH_AT;
  if (!spec) return;
  const [want, nth] = spec.split(':');
  if (want !== name) return;
  const count = (seen.get(name) ?? 0) + 1;
  seen.set(name, count);
  if (count === Number(nth ?? '1')) process.kill(process.pid, 'SIGKILL');
}
