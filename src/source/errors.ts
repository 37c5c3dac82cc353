/**
 * What the typed errors of the snapshot sources (ZfsError, BtrfsError)
 * share: the failed command's argv, exit status, signal and stderr tail,
 * and the one-line summary of a failure that their classifiers refine.
 */
import { ExitCode, ZbkError } from '../errors.js';

/** How much of a tool's stderr is kept on an error. */
export const STDERR_TAIL_BYTES = 2048;

/** What a source error knows about the command that failed. */
export interface ToolErrorDetails {
  argv?: string[];
  exitStatus?: number | null;
  signal?: NodeJS.Signals | null;
  stderrTail?: string;
  cause?: unknown;
}

/** A snapshot tool's command failed, or its output could not be understood. Exit code 7 (ExitCode.ZFS). */
export class ToolError<C extends string = string> extends ZbkError {
  override readonly code: C;
  /** The command line that was spawned (names, paths and flags only: never secrets). */
  readonly argv: string[];
  readonly exitStatus: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last {@link STDERR_TAIL_BYTES} bytes of stderr. */
  readonly stderrTail: string;

  constructor(message: string, code: C, details: ToolErrorDetails = {}) {
    super(message, code, ExitCode.ZFS, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.argv = details.argv ?? [];
    this.exitStatus = details.exitStatus ?? null;
    this.signal = details.signal ?? null;
    this.stderrTail = details.stderrTail ?? '';
  }
}

/** Collapse a tool's (multi-line) stderr to one line for a message. */
export function oneLine(stderr: string, max = 400): string {
  const s = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^usage:/i.test(l))
    .slice(0, 3)
    .join(' / ');
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** `<what> failed (exit status N|killed by SIG)[: <what stderr said>]`, the start of every classified failure's message. */
export function failureSummary(what: string, details: ToolErrorDetails): string {
  const said = oneLine(details.stderrTail ?? '');
  const how = details.signal ? `killed by ${details.signal}` : `exit status ${details.exitStatus ?? 'unknown'}`;
  return `${what} failed (${how})${said ? `: ${said}` : ''}`;
}
