/**
 * The start-up manifest (oclif.manifest.json, written by `npm run build`):
 * it must list exactly the compiled commands with their flags, or a command
 * would be missing from `zbk help` and completion; and with it a run must not
 * import every command module to find the one asked for (that costs every
 * command ≈ 0.35 s of start-up).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Config } from '@oclif/core';
import { runZbk } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

/** Command id → sorted flag names, as a loaded config sees them. */
function shape(config: Config): Map<string, string> {
  return new Map(config.commands.map((c) => [c.id, Object.keys(c.flags).sort().join(' ')]));
}

test('the start-up manifest lists every compiled command with the flags its file defines', async () => {
  assert.ok(existsSync(join(repoRoot, 'oclif.manifest.json')), 'oclif.manifest.json exists (npm run build writes it)');
  const fromManifest = shape(await Config.load(repoRoot));
  const fromFiles = shape(await Config.load({ root: repoRoot, ignoreManifest: true }));
  assert.ok(fromFiles.size >= 20, `commands in dist/commands: ${fromFiles.size}`);
  assert.deepEqual([...fromManifest.keys()].sort(), [...fromFiles.keys()].sort());
  for (const [id, flags] of fromFiles) assert.equal(fromManifest.get(id), flags, `flags of ${id}`);
});

test('a run reads the manifest and imports no command module to find its command', async () => {
  const r = await runZbk(['lease', '--help'], { DEBUG: 'oclif:*' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /using manifest from .*oclif\.manifest\.json/);
  // Without the manifest oclif logs "(import) …/dist/commands/<each>.js" here.
  assert.doesNotMatch(r.stderr, /\(import\) .*dist\/commands\//);
});
