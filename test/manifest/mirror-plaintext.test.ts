/**
 * The mirror's plaintext (every dataset and snapshot name) never lands in a
 * file: not in TMPDIR, not beside the manifest. The copy is made in memory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { tempDir } from './helpers.js';

test('the compacted copy for a mirror is made without a temporary file (TMPDIR and the state dir stay as they were)', (t) => {
  const tmp = tempDir();
  t.after(() => tmp.cleanup());
  const state = join(tmp.dir, 'state');
  const tmpdir = join(tmp.dir, 'tmpdir');
  mkdirSync(state);
  mkdirSync(tmpdir);
  const manifestUrl = pathToFileURL(join(import.meta.dirname, '../../src/manifest/manifest.js')).href;
  const script = `
    const { Manifest } = await import(${JSON.stringify(manifestUrl)});
    const m = Manifest.open(${JSON.stringify(join(state, 'manifest.db'))});
    m.initRepository({ storeUrl: 'file:///x', keyId: '0123456789abcdef' });
    for (let i = 0; i < 200; i++) m.setValue('k' + i, 'x'.repeat(1000));
    for (let i = 0; i < 100; i++) m.setValue('k' + i, undefined);
    const fs = await import('node:fs');
    // Every file created (even if removed again) shows up as an event, in order: a sentinel
    // written after the copy tells when all events of the copy have arrived.
    const seen = [];
    let sentinelSeen;
    const done = new Promise((resolve) => { sentinelSeen = resolve; });
    const watchers = [${JSON.stringify(tmpdir)}, ${JSON.stringify(state)}].map((dir) =>
      fs.watch(dir, (ev, name) => { if (name === 'sentinel') sentinelSeen(); else if (!name.startsWith('manifest.db')) seen.push(dir + '/' + name); }));
    const bytes = m.compactedCopy();
    fs.writeFileSync(${JSON.stringify(join(tmpdir, 'sentinel'))}, '');
    await done;
    fs.writeFileSync(${JSON.stringify(join(state, 'sentinel'))}, '');
    let stateDone; const p2 = new Promise((r) => { stateDone = r; }); sentinelSeen = stateDone; await p2;
    for (const w of watchers) w.close();
    fs.rmSync(${JSON.stringify(join(tmpdir, 'sentinel'))}); fs.rmSync(${JSON.stringify(join(state, 'sentinel'))});
    if (seen.length > 0) throw new Error('files created during the copy: ' + seen.join(', '));
    if (Buffer.from(bytes.subarray(0, 15)).toString() !== 'SQLite format 3') throw new Error('not a database');
    process.stdout.write(String(bytes.length));
    m.close();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, TMPDIR: tmpdir, SQLITE_TMPDIR: tmpdir },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Number(r.stdout) > 0);
  assert.deepEqual(readdirSync(tmpdir), [], 'nothing was written to TMPDIR');
});
