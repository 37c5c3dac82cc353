/**
 * Spawning of zfs/zpool: argument arrays only (never a shell), stdin closed
 * unless a stream is given, stderr kept as a bounded tail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { childEnvironment } from '../child-env.js';
import { STDERR_TAIL_BYTES, ZfsError, ZfsMissingError } from './errors.js';

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

/** Result of a finished command. */
export interface RunResult {
  argv: string[];
  exitStatus: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** stderr kept by `run` (usage texts run to a few KiB); errors carry only the last STDERR_TAIL_BYTES. */
const RUN_STDERR_BYTES = 64 * 1024;

/** Largest stdout accepted from a listing command (a pool with 100k snapshots is ~10 MiB). */
const MAX_STDOUT = 256 * 1024 * 1024;

/** The error for a spawn that failed before the program ran (ENOENT, EACCES). */
export function spawnFailure(argv: string[], err: NodeJS.ErrnoException): ZfsError {
  const prog = JSON.stringify(argv[0]);
  if (err.code === 'ENOENT') {
    return new ZfsMissingError(
      `cannot run ${prog}: not found — install ZFS or set [zfs] zfs/zpool in the config to the right command`,
      { argv, cause: err },
    );
  }
  return new ZfsMissingError(`cannot run ${prog}: ${err.message} — check the [zfs] commands in the config`, { argv, cause: err });
}

/**
 * Start a process and attach a stderr tail of `stderrBytes` (the error tail by
 * default; more for probes whose answer is the usage text on stderr).
 */
export function start(argv: string[], stdin: 'ignore' | 'pipe', stderrBytes = STDERR_TAIL_BYTES): { child: ChildProcess; stderr: TailBuffer } {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: [stdin, 'pipe', 'pipe'],
    shell: false,
    // LC_ALL=C: messages are matched by their English text. No AWS credentials or passphrase.
    env: { ...childEnvironment(process.env), LC_ALL: 'C' },
  });
  const stderr = new TailBuffer(stderrBytes);
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  return { child, stderr };
}

/**
 * Run a command to completion, collecting stdout. Resolves for any exit
 * status (callers classify failures); rejects only when it cannot start.
 */
export function run(argv: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    let stderr: TailBuffer;
    try {
      ({ child, stderr } = start(argv, 'ignore', RUN_STDERR_BYTES));
    } catch (err) {
      reject(spawnFailure(argv, err as NodeJS.ErrnoException));
      return;
    }
    const out: Buffer[] = [];
    let outLen = 0;
    let failed: ZfsError | null = null;
    child.stdout!.on('data', (c: Buffer) => {
      outLen += c.length;
      if (outLen > MAX_STDOUT) {
        failed ??= new ZfsError(`${argv.join(' ')} printed more than ${MAX_STDOUT} bytes — aborted`, 'ZFS_FAILED', { argv });
        child.kill('SIGKILL');
        return;
      }
      out.push(c);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      failed ??= spawnFailure(argv, err);
    });
    child.once('close', (code, signal) => {
      if (failed) {
        reject(failed);
        return;
      }
      resolve({ argv, exitStatus: code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: stderr.toString() });
    });
  });
}
