/**
 * A throwaway zbk repository for end-to-end tests: config, passphrase file,
 * state dir and (for file:// stores) the store directory, all in one temp
 * dir, initialised through the CLI with cheap Argon2 parameters (`--kdf min`,
 * allowed by ZBK_TEST_ALLOW_WEAK_KDF=1 in its environment). The passphrase is
 * one the strength estimator accepts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runZbk, type CliResult } from './cli.js';

export interface TestRepo {
  dir: string;
  configPath: string;
  stateDir: string;
  /** Environment for every zbk run against this repository. */
  env: Record<string, string>;
  zbk(args: string[]): Promise<CliResult>;
  cleanup(): void;
}

export interface TestRepoOptions {
  /** Default: a file:// store inside the temp dir. */
  storeUrl?: string;
  endpoint?: string;
  datasets?: string[];
  partSize?: string;
  volumeSize?: string;
  extraEnv?: Record<string, string>;
}

export async function createTestRepo(opts: TestRepoOptions = {}): Promise<TestRepo> {
  const dir = mkdtempSync(join(tmpdir(), 'zbk-repo-'));
  const configPath = join(dir, 'config.toml');
  const stateDir = join(dir, 'state');
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'correct horse battery staple\n', { mode: 0o600 });
  // --kdf min (cheap Argon2) is refused outside tests: this variable allows it.
  const env: Record<string, string> = { ZBK_CONFIG: configPath, ZBK_PASSPHRASE_FILE: pass, ZBK_TEST_ALLOW_WEAK_KDF: '1', ...opts.extraEnv };
  const storeUrl = opts.storeUrl ?? `file://${join(dir, 'store')}`;
  const args = ['init', '--store', storeUrl, '--state-dir', stateDir, '--kdf', 'min', '--part-size', opts.partSize ?? '5MiB', '--volume-size', opts.volumeSize ?? '10MiB'];
  if (opts.endpoint) args.push('--endpoint', opts.endpoint, '--path-style', '--region', 'us-east-1');
  for (const d of opts.datasets ?? []) args.push('--dataset', d);
  const r = await runZbk(args, env);
  assert.equal(r.code, 0, `zbk init failed: ${r.stderr}`);
  return {
    dir,
    configPath,
    stateDir,
    env,
    zbk: (a) => runZbk(a, env),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
