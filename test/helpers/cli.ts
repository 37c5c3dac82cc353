/** Run the zbk CLI as a separate process, as users and timers do. */
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { zbkBin } from './paths.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/**
 * Start `zbk args...` with a clean environment (PATH, HOME and `env` only, so
 * no developer AWS profile or ZBK_* setting leaks into a test); stdin is
 * closed (no prompts).
 */
export function startZbk(args: string[], env: Record<string, string>): CliRun {
  const child = spawn(process.execPath, [zbkBin, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: env.HOME ?? tmpdir(), NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runZbk(args: string[], env: Record<string, string>): Promise<CliResult> {
  return startZbk(args, env).done;
}

/** Parse the JSON a `--json` run printed on stdout (the whole of stdout). */
export function jsonOf<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} / stderr: ${r.stderr.slice(0, 500)}`);
  }
}
