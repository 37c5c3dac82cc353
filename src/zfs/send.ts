/**
 * A running `zfs send` as a stream whose end means "complete".
 *
 * zfs's stdout is piped into a PassThrough whose end is withheld until zfs
 * has exited: exit 0 ends it, anything else destroys it with the ZfsError.
 * Without that, a send that dies halfway looks like a short but complete
 * stream to whoever reads it — the one mistake a backup tool cannot make.
 * Buffering is the pipe's plus the default highWaterMark: bounded.
 */
import { PassThrough } from 'node:stream';
import { classifyZfsFailure, ZfsError, type ZfsErrorDetails } from './errors.js';
import { spawnFailure, start } from './run.js';
import type { SendStream } from './types.js';

/** Spawn `argv` (a zfs send command) and wrap it. `what` names it in errors. */
export function spawnSend(argv: string[], what: string): SendStream {
  const stream = new PassThrough();
  let exited = false;
  let killedByUs = false;
  let resolveDone!: () => void;
  let rejectDone!: (e: ZfsError) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  // Mark handled: a caller who destroyed the stream may never look at `done`.
  done.catch(() => undefined);

  const fail = (err: ZfsError): void => {
    rejectDone(err);
    if (!stream.destroyed) stream.destroy(err);
  };

  let handle: ReturnType<typeof start>;
  try {
    handle = start(argv, 'ignore');
  } catch (err) {
    const e = spawnFailure(argv, err as NodeJS.ErrnoException);
    process.nextTick(() => fail(e));
    return { stream, done, kill: () => stream.destroy(), argv, pid: undefined };
  }
  const { child, stderr } = handle;
  const stdout = child.stdout!;
  // Read errors surface through the exit status; keep them from being uncaught.
  stdout.on('error', () => undefined);
  stdout.pipe(stream, { end: false });

  let spawnError: ZfsError | null = null;
  child.once('error', (err: NodeJS.ErrnoException) => {
    spawnError ??= spawnFailure(argv, err);
  });

  const killChild = (): void => {
    if (exited) return;
    killedByUs = true;
    stdout.unpipe(stream);
    stdout.destroy();
    child.kill('SIGTERM');
  };
  // The consumer destroyed (or finished early with) the stream: zfs must not linger.
  stream.once('close', killChild);

  child.once('close', (code, signal) => {
    exited = true;
    if (spawnError) return fail(spawnError);
    const details: ZfsErrorDetails = { argv, exitStatus: code, signal, stderrTail: stderr.toString() };
    if (code === 0) {
      resolveDone();
      if (!stream.destroyed) stream.end();
      return;
    }
    if (killedByUs) {
      return fail(new ZfsError(`${what} was stopped before it finished (the stream was closed)`, 'ZFS_KILLED', details));
    }
    fail(classifyZfsFailure(what, details));
  });

  return { stream, done, kill: () => stream.destroy(), argv, pid: child.pid };
}
