#!/usr/bin/env node
// Fails (exit 1) when a runtime import cycle exists among src/ and commands/
// (type-only imports are erased and do not count). Run by `npm run lint`.
// A cycle makes module load order matter and hides a layer mistake; the
// layers are in docs/ARCHITECTURE.md.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? '.');
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
  }
};
for (const r of ['src', 'commands']) walk(join(root, r));
const edges = new Map();
for (const f of files) {
  const deps = [];
  for (const m of readFileSync(f, 'utf8').matchAll(/^(?:import|export)\s+(type\s+)?[^'"]*?from\s+'(\.[^']+)'/gm)) {
    if (!m[1]) deps.push(resolve(dirname(f), m[2].replace(/\.js$/, '.ts')));
  }
  edges.set(f, deps);
}
const state = new Map();
const stack = [];
const cycles = [];
const visit = (f) => {
  state.set(f, 'open');
  stack.push(f);
  for (const g of edges.get(f) ?? []) {
    if (!edges.has(g)) continue;
    if (state.get(g) === 'open') cycles.push([...stack.slice(stack.indexOf(g)), g].map((x) => relative(root, x)).join(' → '));
    else if (!state.has(g)) visit(g);
  }
  stack.pop();
  state.set(f, 'done');
};
for (const f of files) if (!state.has(f)) visit(f);
if (cycles.length > 0) {
  console.error(`import cycles (make one side import a shared module instead):\n${cycles.join('\n')}`);
  process.exit(1);
}
