/**
 * `zbk verify` against a real push (ZFS test pool, file:// store): a good
 * repository verifies (exit 0); a deleted volume and a volume whose sealed
 * metadata was altered are each reported (exit 6, named in --json).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VerifyResult } from '../../src/services/verify.js';
import { createTestPool, requireZfs, writeRandomFiles, type TestPool } from '../helpers/pool.js';
import { createRepo, type TestRepo } from './helpers.js';

function volumeFiles(storeDir: string): string[] {
  const out: string[] = [];
  for (const stream of readdirSync(join(storeDir, 'data'))) {
    for (const f of readdirSync(join(storeDir, 'data', stream))) if (f.endsWith('.zbkv')) out.push(join(storeDir, 'data', stream, f));
  }
  return out.sort();
}

describe('zbk verify', () => {
  let pool: TestPool | null = null;
  let repo: TestRepo | null = null;
  let usable = false;

  before(async (t) => {
    if (!requireZfs(t as never)) return;
    pool = await createTestPool({ sizeMiB: 128 });
    const ds = `${pool.name}/photos`;
    await pool.zfs.createDataset(ds);
    const mnt = await pool.zfs.mountpoint(ds);
    writeRandomFiles(mnt!, { files: 3, bytesEach: 300_000, seed: 'verify' });
    await pool.zfs.snapshot(`${ds}@one`);
    repo = await createRepo({ datasets: [ds] });
    const push = await repo.run(['push']);
    assert.equal(push.code, 0, push.stderr);
    usable = true;
  });
  after(async () => {
    repo?.cleanup();
    await pool?.destroy();
  });

  it('verifies a good repository (exit 0)', async (t) => {
    if (!usable) return t.skip('no ZFS');
    const r = await repo!.runJson<VerifyResult>(['verify']);
    assert.equal(r.code, 0, JSON.stringify(r.json));
    assert.equal(r.json.ok, true);
    assert.ok(r.json.objectsChecked >= 1);
    assert.deepEqual(r.json.problems, []);
  });

  it('reports a missing object (exit 6)', async (t) => {
    if (!usable) return t.skip('no ZFS');
    const [vol] = volumeFiles(repo!.storeDir);
    renameSync(vol!, `${vol}.away`);
    renameSync(`${vol}.zbk-meta.json`, `${vol}.zbk-meta.json.away`);
    try {
      const r = await repo!.runJson<VerifyResult>(['verify']);
      assert.equal(r.code, 6);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.problems.length, 1);
      assert.match(r.json.problems[0]!.problem, /missing/);
      const human = await repo!.run(['verify']);
      assert.equal(human.code, 6);
      assert.match(human.stdout, /PROBLEM data\//);
    } finally {
      renameSync(`${vol}.away`, vol!);
      renameSync(`${vol}.zbk-meta.json.away`, `${vol}.zbk-meta.json`);
    }
  });

  it('an object whose user metadata a copy dropped (aws s3 sync, some migrations) but whose bytes are the pushed ones verifies (exit 0)', async (t) => {
    if (!usable) return t.skip('no ZFS');
    const [vol] = volumeFiles(repo!.storeDir);
    const sidecar = `${vol}.zbk-meta.json`;
    const original = readFileSync(sidecar, 'utf8');
    const doc = JSON.parse(original) as { metadata: Record<string, string> };
    doc.metadata = {};
    writeFileSync(sidecar, JSON.stringify(doc));
    try {
      const r = await repo!.runJson<VerifyResult>(['verify']);
      assert.equal(r.code, 0, JSON.stringify(r.json.problems));
      assert.deepEqual(r.json.problems, []);
    } finally {
      writeFileSync(sidecar, original);
    }
  });

  it("reports an object whose sealed metadata was altered (exit 6)", async (t) => {
    if (!usable) return t.skip('no ZFS');
    const [vol] = volumeFiles(repo!.storeDir);
    const sidecar = `${vol}.zbk-meta.json`;
    const original = readFileSync(sidecar, 'utf8');
    const doc = JSON.parse(original) as { metadata: Record<string, string> };
    const sealed = doc.metadata['zbk-meta']!;
    // Flip one character in the middle of the sealed value.
    const i = Math.floor(sealed.length / 2);
    doc.metadata['zbk-meta'] = sealed.slice(0, i) + (sealed[i] === 'A' ? 'B' : 'A') + sealed.slice(i + 1);
    writeFileSync(sidecar, JSON.stringify(doc));
    try {
      const r = await repo!.runJson<VerifyResult>(['verify']);
      assert.equal(r.code, 6);
      assert.equal(r.json.problems.length, 1);
      assert.match(r.json.problems[0]!.problem, /metadata does not decrypt/);
    } finally {
      writeFileSync(sidecar, original);
    }
    assert.equal((await repo!.run(['verify'])).code, 0, 'restored sidecar verifies again');
  });
});
