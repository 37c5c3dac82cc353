#!/usr/bin/env node
// Renders the zbk(1) man page from the compiled commands (the metadata
// `zbk help` shows: summary, description, flags, arguments, examples, exit
// codes) and the README's exit-code table, into dist/man/zbk.1. Run by
// `npm run build` after tsc, so the page always matches the commands that
// are built; no network, no dependency beyond @oclif/core.
//   node scripts/gen-man.mjs [OUT]     (default dist/man/zbk.1)
// The footer date is SOURCE_DATE_EPOCH's (reproducible builds), else today.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'dist', 'man', 'zbk.1'));

const { cliModel } = await import(join(root, 'dist', 'src', 'cli', 'command-model.js'));
const { renderMan, exitCodesFromReadme } = await import(join(root, 'dist', 'src', 'cli', 'man.js'));

const config = await Config.load(root);
const model = cliModel(config);
const expected = readdirCommands(join(root, 'dist', 'commands'));
const missing = expected.filter((id) => !model.commands.some((c) => c.id === id) && !config.findCommand(id.replaceAll(' ', ':'))?.hidden);
if (missing.length > 0) {
  console.error(`gen-man: ${missing.join(', ')} did not load (see the warnings above): no man page written`);
  process.exit(1);
}
const epoch = Number(process.env.SOURCE_DATE_EPOCH);
const date = (Number.isFinite(epoch) && process.env.SOURCE_DATE_EPOCH ? new Date(epoch * 1000) : new Date()).toISOString().slice(0, 10);
const page = renderMan(model, { date, exitStatus: exitCodesFromReadme(readFileSync(join(root, 'README.md'), 'utf8')) });

mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, page);
renameSync(`${out}.tmp`, out);

/** The command ids the compiled command files define (`restore/run.js` → `restore run`, `cost/index.js` → `cost`). */
function readdirCommands(dir, prefix = []) {
  const ids = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) ids.push(...readdirCommands(join(dir, entry.name), [...prefix, entry.name]));
    else if (entry.name.endsWith('.js')) {
      const name = entry.name.slice(0, -3);
      ids.push([...prefix, ...(name === 'index' ? [] : [name])].join(' '));
    }
  }
  return ids.filter(Boolean);
}
