/**
 * Test instrumentation for crash-safety tests: with `ZBK_CRASH_AT=name` (or
 * `name:n`), the process kills itself with SIGKILL the n-th time (default the
 * first) it reaches the named point — exactly like a power cut there. Unset
 * in normal use, where this is a no-op.
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
