/**
 * Process plumbing a snapshot source needs, independent of the tool:
 * argument arrays only (never a shell), an environment without zbk's
 * secrets, stderr kept as a bounded tail, a send whose stream ends only
 * after the tool exited 0, and a receive that feeds a stream into stdin
 * and kills the tool before closing stdin when the input fails.
 *
 * Each source supplies its typed errors through {@link ChildErrors}:
 * src/zfs (run.ts) and src/btrfs both spawn through this module.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { childEnvironment } from '../child-env.js';
import { STDERR_TAIL_BYTES } from './errors.js';
import type { SendStream } from './types.js';

/** Keeps only the last `max` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max = STDERR_TAIL_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0]!.length >= this.max) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

/** How a finished (or failed) process went. */
export interface ChildOutcome {
  argv: string[];
  exitStatus: number | null;
  signal: NodeJS.Signals | null;
  /** The last STDERR_TAIL_BYTES of stderr (more for `runChild`, see its doc). */
  stderrTail: string;
}

/** A finished command with its output. */
export interface ChildResult extends ChildOutcome {
  stdout: string;
  /** stderr (up to 64 KiB; usage texts are long). */
  stderr: string;
}

/** The source's typed errors, for the situations this module detects. */
export interface ChildErrors {
  /** The program could not be started (ENOENT, EACCES). */
  spawnFailed(argv: string[], err: NodeJS.ErrnoException): Error;
  /** It exited non-zero, or a signal we did not send killed it. `what` names the operation. */
  failed(what: string, outcome: ChildOutcome): Error;
  /** It was killed because its consumer (or its input) went away. */
  stopped(what: string, outcome: ChildOutcome): Error;
  /** Anything else (too much output; trailing input unless `trailingInput` is given), with the message to show. */
  other(message: string, outcome: Partial<ChildOutcome> & { cause?: unknown }): Error;
  /** It exited 0 before reading all of its input (`cause`: the write error); default: `other` with a generic message. */
  trailingInput?(what: string, outcome: ChildOutcome & { cause: unknown }): Error;
}

/** stderr kept by `runChild` (usage texts run to a few KiB); errors carry only the last STDERR_TAIL_BYTES. */
const RUN_STDERR_BYTES = 64 * 1024;
/** Largest stdout accepted from a listing command (a pool with 100k snapshots is ~10 MiB). */
const MAX_STDOUT = 256 * 1024 * 1024;

/**
 * The environment of a child: zbk's without its secrets, `LC_ALL=C` (its
 * messages are matched by their English text) plus `extra` (btrfs: `TZ`).
 */
export function toolEnvironment(extra: Record<string, string> = {}): Record<string, string> {
  return { ...childEnvironment(process.env), LC_ALL: 'C', ...extra };
}

/** Start `argv` with stdout and stderr piped; stderr goes into a tail of `stderrBytes`. Throws what spawn throws. */
export function startChild(
  argv: string[],
  stdin: 'ignore' | 'pipe',
  env: Record<string, string>,
  stderrBytes = STDERR_TAIL_BYTES,
): { child: ChildProcess; stderr: TailBuffer } {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, 'pipe', 'pipe'], shell: false, env });
  const stderr = new TailBuffer(stderrBytes);
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  return { child, stderr };
}

/** Run to completion, collecting stdout. Resolves for any exit status (callers classify); rejects only when it cannot start. */
export function runChild(argv: string[], env: Record<string, string>, errors: ChildErrors): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    let handle: ReturnType<typeof startChild>;
    try {
      handle = startChild(argv, 'ignore', env, RUN_STDERR_BYTES);
    } catch (err) {
      reject(errors.spawnFailed(argv, err as NodeJS.ErrnoException));
      return;
    }
    const { child, stderr } = handle;
    const out: Buffer[] = [];
    let outLen = 0;
    let failed: Error | null = null;
    child.stdout!.on('data', (c: Buffer) => {
      outLen += c.length;
      if (outLen > MAX_STDOUT) {
        failed ??= errors.other(`${argv.join(' ')} printed more than ${MAX_STDOUT} bytes — aborted`, { argv });
        child.kill('SIGKILL');
        return;
      }
      out.push(c);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      failed ??= errors.spawnFailed(argv, err);
    });
    child.once('close', (code, signal) => {
      if (failed) return reject(failed);
      const all = stderr.toString();
      resolve({ argv, exitStatus: code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: all, stderrTail: all.slice(-STDERR_TAIL_BYTES) });
    });
  });
}

/**
 * Spawn a send command and wrap it: its stdout is piped into a PassThrough
 * whose end is withheld until the tool exited 0; any other exit destroys it
 * with the typed error. Without that, a send that dies halfway looks like
 * a short but complete stream to whoever reads it — the one mistake a
 * backup tool cannot make. Buffering is the pipe's plus the default
 * highWaterMark: bounded. Destroying (or finishing early with) the stream
 * kills the tool.
 */
export function spawnCompleteStream(argv: string[], env: Record<string, string>, what: string, errors: ChildErrors): SendStream {
  const stream = new PassThrough();
  let exited = false;
  let killedByUs = false;
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  // Mark handled: a caller who destroyed the stream may never look at `done`.
  done.catch(() => undefined);
  const fail = (err: Error): void => {
    rejectDone(err);
    if (!stream.destroyed) stream.destroy(err);
  };

  let handle: ReturnType<typeof startChild>;
  try {
    handle = startChild(argv, 'ignore', env);
  } catch (err) {
    const e = errors.spawnFailed(argv, err as NodeJS.ErrnoException);
    process.nextTick(() => fail(e));
    return { stream, done, kill: () => stream.destroy(), argv, pid: undefined };
  }
  const { child, stderr } = handle;
  const stdout = child.stdout!;
  // Read errors surface through the exit status; keep them from being uncaught.
  stdout.on('error', () => undefined);
  stdout.pipe(stream, { end: false });
  let spawnError: Error | null = null;
  child.once('error', (err: NodeJS.ErrnoException) => {
    spawnError ??= errors.spawnFailed(argv, err);
  });
  // The consumer destroyed (or finished early with) the stream: the tool must not linger.
  stream.once('close', () => {
    if (exited) return;
    killedByUs = true;
    stdout.unpipe(stream);
    stdout.destroy();
    child.kill('SIGTERM');
  });
  child.once('close', (code, signal) => {
    exited = true;
    if (spawnError) return fail(spawnError);
    const outcome: ChildOutcome = { argv, exitStatus: code, signal, stderrTail: stderr.toString() };
    if (code === 0) {
      resolveDone();
      if (!stream.destroyed) stream.end();
      return;
    }
    fail(killedByUs ? errors.stopped(what, outcome) : errors.failed(what, outcome));
  });
  return { stream, done, kill: () => stream.destroy(), argv, pid: child.pid };
}

/**
 * Run `argv` with `input` piped into its stdin; resolves with its outcome
 * when it exited 0. Rejects with the input's own error when the input
 * fails (the tool is killed before its stdin closes), with `failed` for a
 * non-zero exit, and with `other` when the tool exited 0 before reading all
 * input (trailing data). `onWritten` as in SourceReceiveOptions. stdout
 * is read and its tail returned.
 */
export function pipeIntoChild(
  argv: string[],
  env: Record<string, string>,
  input: Readable,
  what: string,
  errors: ChildErrors,
  onWritten?: (bytes: number) => void,
): Promise<ChildOutcome & { stdoutTail: string }> {
  let handle: ReturnType<typeof startChild>;
  try {
    handle = startChild(argv, 'pipe', env);
  } catch (err) {
    input.destroy();
    return Promise.reject(errors.spawnFailed(argv, err as NodeJS.ErrnoException));
  }
  const { child, stderr } = handle;
  const stdin = child.stdin!;
  // Drained so the tool never blocks on a full pipe; the tail is kept (btrfs receive says there what it created).
  const stdout = new TailBuffer();
  child.stdout!.on('data', (c: Buffer) => stdout.push(c));
  return new Promise<ChildOutcome & { stdoutTail: string }>((resolve, reject) => {
    let inputError: unknown = null;
    let writeError: unknown = null;
    let spawnError: Error | null = null;
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError ??= errors.spawnFailed(argv, err);
    });
    const onInputError = (err: unknown): void => {
      inputError ??= err;
      // Kill before stdin closes, so the tool never takes a cut stream for a whole one.
      child.kill('SIGTERM');
      stdin.destroy();
    };
    input.once('error', onInputError);
    stdin.on('error', (err) => {
      writeError ??= err;
      input.unpipe(stdin);
      input.destroy();
    });
    if (onWritten) {
      input.on('data', (chunk: Buffer) => {
        if (stdin.destroyed) return;
        const n = chunk.length;
        if (!stdin.write(chunk, (err) => err || onWritten(n))) input.pause();
      });
      stdin.on('drain', () => input.resume());
      if (input.readableEnded) stdin.end();
      else input.once('end', () => stdin.end());
    } else {
      input.pipe(stdin);
    }
    child.once('close', (code, signal) => {
      input.off('error', onInputError);
      input.on('error', () => undefined);
      if (!input.readableEnded) input.destroy();
      if (spawnError) return reject(spawnError);
      if (inputError) return reject(inputError);
      const outcome: ChildOutcome = { argv, exitStatus: code, signal, stderrTail: stderr.toString() };
      if (code !== 0) return reject(errors.failed(what, outcome));
      if (writeError) {
        const o = { ...outcome, cause: writeError };
        return reject(errors.trailingInput ? errors.trailingInput(what, o) : errors.other(`${what}: the tool exited before reading all input — the stream has trailing data or is corrupt`, o));
      }
      resolve({ ...outcome, stdoutTail: stdout.toString() });
    });
  });
}
