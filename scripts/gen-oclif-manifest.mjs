#!/usr/bin/env node
// Part of `npm run build`, after tsc: writes oclif.manifest.json, the list of
// commands with their flags that oclif reads at start-up. Without it oclif
// imports every command module (and with them the AWS SDK, SQLite and
// libsodium) on every run, only to find the one that was asked for:
// ≈ 0.35 s of each command's start-up on this project's machines. With it,
// only the invoked command's module is imported.
//
// The file is generated, never committed (.gitignore). A stale one (commands
// added or removed and only `tsc` run since) hides new commands from oclif:
// run `npm run build`, which always regenerates it. Flags are always parsed
// from the loaded command class, so a stale file cannot change how flags
// are read, only what `zbk help` lists.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Plugin } from '@oclif/core';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'oclif.manifest.json');

rmSync(out, { force: true });
// ignoreManifest: build from the compiled command files; errorOnManifestCreate:
// a command that fails to load fails the build instead of vanishing from it.
const plugin = new Plugin({ root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true });
await plugin.load();
const count = Object.keys(plugin.manifest.commands).length;
if (count === 0) {
  console.error('gen-oclif-manifest: no commands found under dist/commands (run tsc first)');
  process.exit(1);
}
writeFileSync(`${out}.tmp`, `${JSON.stringify(plugin.manifest, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
