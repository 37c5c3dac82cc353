/**
 * A throwaway zbk repository for CLI tests: temp dir, 0600 passphrase file,
 * `zbk init --kdf min` (allowed by ZBK_TEST_ALLOW_WEAK_KDF=1 in the env) on a
 * file:// store, and a runner that spawns the real
 * CLI with the repository's environment. Everything is removed by `cleanup`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runZbk as runCli } from '../helpers/cli.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestRepo {
  dir: string;
  configPath: string;
  passphraseFile: string;
  storeDir: string;
  stateDir: string;
  env: Record<string, string>;
  /** Run `zbk args...` with the repo's env (plus `extraEnv`). */
  run(args: string[], extraEnv?: Record<string, string>): Promise<RunResult>;
  /** Run with --json and parse stdout. */
  runJson<T>(args: string[], extraEnv?: Record<string, string>): Promise<{ code: number; json: T; stderr: string }>;
  cleanup(): void;
}

export const PASSPHRASE = 'correct horse battery staple 42';

export async function runZbk(args: string[], env: Record<string, string>): Promise<RunResult> {
  const r = await runCli(args, env);
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Create the temp dir, passphrase and config env; `init` unless told not to. */
export async function createRepo(opts: { init?: boolean; datasets?: string[]; initArgs?: string[] } = {}): Promise<TestRepo> {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-ops-'));
  const configPath = join(dir, 'config.toml');
  const passphraseFile = join(dir, 'passphrase');
  writeFileSync(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  const storeDir = join(dir, 'store');
  const stateDir = join(dir, 'state');
  // --kdf min (cheap Argon2) is refused outside tests: this variable allows it.
  const env: Record<string, string> = { ZBK_CONFIG: configPath, ZBK_PASSPHRASE_FILE: passphraseFile, HOME: dir, ZBK_TEST_ALLOW_WEAK_KDF: '1' };
  const repo: TestRepo = {
    dir,
    configPath,
    passphraseFile,
    storeDir,
    stateDir,
    env,
    run: (args, extraEnv = {}) => runZbk(args, { ...env, ...extraEnv }),
    runJson: async <T>(args: string[], extraEnv: Record<string, string> = {}) => {
      const r = await runZbk([...args, '--json'], { ...env, ...extraEnv });
      let json: T;
      try {
        json = JSON.parse(r.stdout) as T;
      } catch {
        assert.fail(`stdout of zbk ${args.join(' ')} --json is not JSON (exit ${r.code}): ${r.stdout.slice(0, 300)} / ${r.stderr.slice(0, 300)}`);
      }
      return { code: r.code, json, stderr: r.stderr };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  if (opts.init ?? true) {
    const args = ['init', '--store', `file://${storeDir}`, '--state-dir', stateDir, '--kdf', 'min', '--part-size', '5MiB', '--volume-size', '5MiB'];
    for (const d of opts.datasets ?? []) args.push('--dataset', d);
    const r = await repo.run([...args, ...(opts.initArgs ?? [])]);
    assert.equal(r.code, 0, `init failed: ${r.stderr}`);
  }
  return repo;
}
