/**
 * A file:// store is a plain copy of a bucket: `cp -r` of it to another
 * place (nothing preserved: no hard links, inodes or times) is the same
 * repository. From the copy alone — a new state dir, the manifest rebuilt
 * from it — zbk verifies every object and restores identical files.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { jsonOf, runZbk } from '../helpers/cli.js';
import { requireZfs, writeRandomFiles } from '../helpers/pool.js';
import { restoreLatestDirect } from '../helpers/restore-direct.js';
import { hashTree } from '../helpers/tree-hash.js';
import { datasetRepo, mountOf } from './fixture.js';

test('cp -r of a file:// store to another place: rebuilt from the copy alone, it verifies and restores identical files', async (t) => {
  if (!requireZfs(t)) return;
  const { pool, ds, mnt, repo } = await datasetRepo(t, { name: 'copied' });
  writeRandomFiles(mnt, { files: 3, bytesEach: 4 * 1024 * 1024, seed: 'copy-a' }); // several volumes (10 MiB each)
  await pool.zfs.snapshot(`${ds}@s1`);
  assert.equal((await repo.zbk(['push', ds])).code, 0);
  writeRandomFiles(join(mnt, 'more'), { files: 1, bytesEach: 512 * 1024, seed: 'copy-b' });
  await pool.zfs.snapshot(`${ds}@s2`);
  assert.equal((await repo.zbk(['push', ds])).code, 0);

  const copy = join(repo.dir, 'copied-store');
  cpSync(join(repo.dir, 'store'), copy, { recursive: true, preserveTimestamps: false, dereference: true });
  const configPath = join(repo.dir, 'copy.toml');
  const text = readFileSync(repo.configPath, 'utf8');
  const stateDir = join(repo.dir, 'copy-state');
  writeFileSync(
    configPath,
    text.replace(/^url = .*$/m, `url = "file://${copy}"`).replace(/^state_dir = .*$/m, `state_dir = "${stateDir}"`),
    { mode: 0o600 },
  );
  assert.notEqual(readFileSync(configPath, 'utf8'), text);
  const env = { ...repo.env, ZBK_CONFIG: configPath };
  const rebuilt = await runZbk(['manifest', 'rebuild', '--json'], env);
  assert.equal(rebuilt.code, 0, rebuilt.stderr + rebuilt.stdout);
  const report = jsonOf<{ source: string; warnings: string[] }>(rebuilt);
  assert.equal(report.source, 'mirror');
  assert.match(report.warnings.join('\n'), /this repository was at file:\/\/.*\/store; it is now recorded at file:\/\/.*copied-store/, 'the mirror of the original location is used, not refused');
  const verify = await runZbk(['verify', '--json'], env);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.deepEqual(jsonOf<{ problems: unknown[] }>(verify).problems, []);

  await restoreLatestDirect(configPath, repo.env.ZBK_PASSPHRASE_FILE!, ds, `${pool.name}/fromcopy`, pool.zfs);
  const dst = await pool.zfs.mount(`${pool.name}/fromcopy`).catch(() => mountOf(pool, `${pool.name}/fromcopy`));
  assert.deepEqual(await hashTree(dst), await hashTree(mnt), 'files restored from the copy differ from the source');
});
